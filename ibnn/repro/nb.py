"""Small helpers for the notebooks: the run profile and the common set-up."""
from __future__ import annotations

import os

from ..validate import check_choice

PROFILES = ("full", "fast")


def resolve_profile(profile: str) -> str:
    """The run profile: 'full' (make figures) or 'fast' (make figures FAST=1, and make test).

    The environment variable IBNN_PROFILE, when set, overrides the notebook parameter (make test sets it).
    """
    from . import provenance

    env = os.environ.get("IBNN_PROFILE")
    if env:
        profile = check_choice("IBNN_PROFILE", env, PROFILES)
    else:
        profile = check_choice("profile", profile, PROFILES)
    provenance.set_profile(profile)
    return profile


def setup() -> None:
    """Plot style for the notebook."""
    from .style import use_style
    use_style()
