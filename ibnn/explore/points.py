"""From a ParamSet figure function to the engine's point function.

The physics evaluates figures of one parameter set: ``figures(P, seed=..., **choices) -> dict``. A sweep point
mixes parameter values (names of the ParamSet) with discrete choices (anything else: supply corner, ops
convention, area scope...). `ParamPoint` splits the point, makes ``P.replace(**parameters)`` (which re-derives
every derived value and checks each value's domain) and calls the figure function with the choices.

Its `fingerprint()` enters the cache key: the base set's values and the figure function's id (and the figure
function's own fingerprint() where it has one, e.g. to name the mapped network and the image set it carries).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .keys import canonical_json, function_id


def paramset_digest(P) -> str:
    """sha256 of every entry of a ParamSet (name, value, unit, kind, range): what a figure may depend on."""
    rows = {n: [e.value, e.unit, e.kind, e.low, e.high] for n, e in P.entries.items()}
    return hashlib.sha256(canonical_json(rows).encode()).hexdigest()


@dataclass(frozen=True)
class ParamPoint:
    """A point function built from a ParamSet and a figure function.

    Attributes:
        P: the base parameter set (the defaults every point starts from).
        figures: ``figures(P_point, seed=seed, **choices) -> dict of figures``; module-level (or an object
            with a fingerprint()) so dask workers can import it and the cache can name it.
    """

    P: Any
    figures: Callable[..., Mapping[str, Any]]

    def split(self, point: Mapping[str, Any]) -> tuple[dict, dict]:
        """(parameter values, choices) of a point: entries naming a parameter of P, and the rest."""
        params = {k: v for k, v in point.items() if k in self.P}
        choices = {k: v for k, v in point.items() if k not in self.P}
        return params, choices

    def __call__(self, point: Mapping[str, Any], seed: int) -> Mapping[str, Any]:
        params, choices = self.split(point)
        return self.figures(self.P.replace(**params), seed=seed, **choices)

    def fingerprint(self) -> str:
        """Digest of the base set and the figure function's id (enters every cache key)."""
        return hashlib.sha256(f"{paramset_digest(self.P)}|{function_id(self.figures)}".encode()).hexdigest()[:16]
