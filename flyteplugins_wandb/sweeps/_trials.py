"""A sweep's trials and its result: the data model shared by the offline engine and the online agents."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["SweepResult", "Trial", "TrialStatus", "best_trial", "store_outcome"]

TrialStatus = Literal["running", "complete", "stopped", "failed"]


@dataclass
class Trial:
    """One proposed point of the sweep and, once known, its outcome.

    ``raw`` is the point in the sampler's space (indices for categorical values, exponents or quantiles for
    transformed distributions); ``params`` are the values the objective receives. ``history`` holds the metric's
    intermediate values at steps 1, 2, ... when the objective reports them; ``value`` is the final (last) value.
    """

    number: int
    params: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)
    status: TrialStatus = "running"
    value: float | None = None
    history: list[float] = field(default_factory=list)
    error: str | None = None
    run_id: str | None = None
    """The run id the W&B sweep server assigned (online sweeps); None offline, where the trial's task names it."""

    @property
    def finished(self) -> bool:
        return self.status != "running"


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: its id, every trial (in the order they were proposed, or started online) and the best one
    (None if no trial succeeded). ``online`` sweeps live on a W&B server, whose page ``url`` shows them."""

    sweep_id: str
    best: Trial | None
    trials: list[Trial]
    online: bool = False
    url: str | None = None


def store_outcome(trial: Trial, outcome: float | Sequence[float]) -> None:
    """Set a trial's ``value`` (and ``history``, for a list) from what its objective returned; a ValueError
    says why an outcome is unusable (not numbers, none finite)."""
    try:
        history = [float(outcome)] if isinstance(outcome, int | float) else [float(v) for v in outcome]
    except (TypeError, ValueError):
        raise ValueError(f"the objective must return a number or a list of numbers, got {outcome!r}") from None
    if not history or not all(math.isfinite(v) for v in history):
        raise ValueError(f"the objective returned no finite metric values: {outcome!r}")
    trial.history = history if not isinstance(outcome, int | float) else []
    trial.value = history[-1]


def best_trial(trials: Sequence[Trial], goal: str) -> Trial | None:
    """The best complete trial by ``goal`` (a stopped trial only if none completed); ties go to the earlier."""
    for status in ("complete", "stopped"):
        scored = [t for t in trials if t.status == status and t.value is not None]
        if scored:
            pick = min if goal == "minimize" else max
            return pick(scored, key=lambda t: (t.value, t.number) if pick is min else (t.value, -t.number))
    return None
