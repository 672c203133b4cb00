"""Option vocabularies (``Literal`` types with their runtime tuples) and the checks of option values."""

from __future__ import annotations

import math
from typing import Final, Literal, get_args

RunMode = Literal["auto", "new", "shared"]
"""How runs are laid out over the processes of a task (see the layout tables in the README)."""

RankScope = Literal["global", "worker"]
"""Whether a multi-node task is one unit (``global``) or one unit per worker/node (``worker``)."""

WandbMode = Literal["online", "offline", "disabled"]
"""W&B's own ``mode``: where a run's data goes."""

RUN_MODES: Final[tuple[str, ...]] = get_args(RunMode)
RANK_SCOPES: Final[tuple[str, ...]] = get_args(RankScope)
WANDB_MODES: Final[tuple[str, ...]] = get_args(WandbMode)


def check_choice(field: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ValueError naming field, value and choices."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{field} must be one of {choices}, got {value!r}")
    return value


def check_seconds(field: str, value: object) -> float:
    """Return ``value`` as float seconds if it is a finite positive number (not a bool); otherwise raise a
    ValueError naming field and value."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{field} must be a positive number of seconds, got {value!r}")
    return float(value)
