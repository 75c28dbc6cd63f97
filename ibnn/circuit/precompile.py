"""Compile the chip's numba loops once, before many processes need them: `python -m ibnn.circuit.precompile
[kernel|tables|all]` (the Makefile runs kernel and tables in two processes at once).

numba caches what it compiles next to the modules (`cache=True`), so only the first process of a checkout
compiles; processes that start together before that (pytest-xdist workers, notebooks run side by side) would each
compile the same loops (tens of seconds on two cores). `kernel`: the classify cycle (ibnn.circuit.kernel);
`tables`: the drawing's per-row factors and cell tables (ibnn.circuit.factored).
"""
from __future__ import annotations

import sys
import time


def main(argv=None) -> int:
    """Compile (or load) the loops of `part` (the first argument; default all) and say how long it took."""
    args = sys.argv[1:] if argv is None else argv
    part = args[0] if args else "all"
    if part not in ("kernel", "tables", "all") or len(args) > 1:
        raise SystemExit(f"precompile: part={' '.join(args)!r} is not accepted; accepted: kernel, tables or all")
    t = time.perf_counter()
    if part in ("kernel", "all"):
        from . import kernel
        kernel.precompile()
    if part in ("tables", "all"):
        from . import factored
        factored.precompile()
    print(f"[ibnn] numba loops ({part}) compiled or loaded in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
