"""One import cost the notebook runners need not pay: importing this module (a pytest plugin for nbval, `-p
ibnn.repro.lean`, and the first thing `ibnn.repro.execute` does before papermill) stops jsonschema from loading
rfc3987_syntax.

nbformat validates notebooks with jsonschema, and jsonschema imports rfc3987_syntax where it is installed (it is:
jupyter-events, under JupyterLab, asks for jsonschema's format extras) only to check the "iri" string formats.
rfc3987_syntax builds its lark grammar at import: 1.9 s of the 3.0 s that `import papermill` takes on two cores,
paid by every pipeline run, nbval process and test worker. No notebook schema uses those formats. Marking the module
absent (`sys.modules[name] = None`, so that its import raises ImportError, which jsonschema expects where it is not
installed) skips it; where it was already imported, nothing changes.
"""
from __future__ import annotations

import sys

SKIPPED = "rfc3987_syntax"

sys.modules.setdefault(SKIPPED, None)
