"""``run_sweep``: a sweep's trials as parallel Flyte tasks, driven by the offline engine inside a driver task."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ._config import decode_config, wandb_config
from ._local_sweep import LocalSweep, Trial, should_stop
from ._sweep_config import SWEEP_CONTEXT_PREFIX, SweepConfig, SweepContext, decode_sweep_config

__all__ = ["SweepResult", "get_wandb_sweep_id", "offline_sweep_id", "run_sweep", "sweep_should_stop"]

logger = logging.getLogger("flyteplugins_wandb")

SWEEP_ID_KEY: Final = SWEEP_CONTEXT_PREFIX + "id"
# The bracket bars a trial runs with, and the goal they are read against (JSON), for sweep_should_stop.
SWEEP_STOP_KEY: Final = SWEEP_CONTEXT_PREFIX + "stop"


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: its id, every trial (in proposal order) and the best one (None if no trial succeeded)."""

    sweep_id: str
    best: Trial | None
    trials: list[Trial]


def offline_sweep_id(run_name: str, action_name: str) -> str:
    """The id of an offline sweep driven by action ``action_name`` of run ``run_name``."""
    return f"{run_name}-{action_name}-sweep"


def _context() -> dict[str, str]:
    import flyte

    ctx = flyte.ctx()
    return dict(ctx.custom_context or {}) if ctx else {}


def get_wandb_sweep_id() -> str | None:
    """The sweep the current task is a trial of (set by ``run_sweep`` for each trial and its children), or None."""
    return _context().get(SWEEP_ID_KEY)


def sweep_should_stop(step: int, value: float) -> bool:
    """For a trial that reports its metric as it goes: whether ``value`` at ``step`` (1-based) falls below the
    sweep's hyperband bar there, so the trial should stop now and return the values it has. The bars come from
    the trials of earlier rounds; False outside a sweep, without ``early_terminate``, or between brackets."""
    raw = _context().get(SWEEP_STOP_KEY)
    if raw is None:
        return False
    spec = json.loads(raw)
    thresholds = {int(k): float(v) for k, v in spec["thresholds"].items()}
    return should_stop(thresholds, spec["goal"], step, value)


def _trial_context(sweep: LocalSweep, trial: Trial, thresholds: Mapping[int, float]) -> dict[str, str]:
    inherited = decode_config(_context()).config or {}
    run = wandb_config(
        name=f"{sweep.sweep_id}-trial-{trial.number}",
        group=sweep.sweep_id,
        run_mode="new",
        config={**inherited, **trial.params, "sweep_id": sweep.sweep_id, "sweep_trial": trial.number},
    )
    stop = {"goal": sweep.config.goal, "thresholds": {str(k): v for k, v in thresholds.items()}}
    return {**run, SWEEP_ID_KEY: sweep.sweep_id, SWEEP_STOP_KEY: json.dumps(stop)}


async def _launch(objective: Any, trial: Trial, entries: Mapping[str, str]) -> Any:
    import flyte

    # Each gathered coroutine runs in its own asyncio task (its own context copy), so this block is the trial's.
    with flyte.custom_context(**entries):
        return await objective.aio(**trial.params)


async def run_sweep(
    objective: Any,
    config: SweepConfig | SweepContext | None = None,
    *,
    parallel: int,
    count: int,
    state_path: str | None = None,
    seed: int = 0,
) -> SweepResult:
    """Run a sweep from inside a Flyte driver task: each round proposes ``parallel`` trials and launches them as
    parallel Flyte tasks of ``objective``, until ``count`` trials (or ``run_cap``, or the whole grid) are done.

    - Trials get the suggested parameters as keyword inputs (``objective(lr=..., batch_size=...)``), so the
      objective's signature names the sweep's parameters. It returns the metric's final value, or its values at
      steps 1..n (a list, the last being the result) so that ``early_terminate`` can judge it; it may call
      :func:`sweep_should_stop` after each step to stop early.
    - Each trial's run context makes its ``@wandb_init`` run a new run named ``{sweep_id}-trial-{n}`` in group
      ``sweep_id`` whose config holds the parameters, ``sweep_id`` and ``sweep_trial``; ``get_wandb_sweep_id()``
      returns the id inside the trial. ``config`` defaults to ``wandb_sweep_config(...)`` from the run context.
    - The search runs here, offline, with no W&B server call (see ``_local_sweep``). The sweep id is
      ``{run_name}-{action}-sweep`` of this driver; with ``state_path`` the state is saved after every round and a
      restarted driver resumes it (keeping its first sweep id) instead of starting over: trials that finished are
      never run again, trials cut off mid-round are launched again with the same parameters.
    - A trial that raises is recorded as failed (the sweep goes on); it still counts towards ``count``.
    """
    import flyte

    if parallel < 1 or count < 1:
        raise ValueError(f"parallel and count must be >= 1, got parallel={parallel!r} count={count!r}")
    if isinstance(config, SweepContext):
        config = config.config
    if config is None:
        config = decode_sweep_config(_context())
        if config is None:
            raise ValueError("run_sweep needs a config, or wandb_sweep_config(...) in the run context; got neither")
    ctx = flyte.ctx()
    if not ctx:
        raise RuntimeError("run_sweep must be called inside a Flyte task (the driver)")
    sweep_id = offline_sweep_id(ctx.action.run_name or "local", ctx.action.name)
    sweep = (
        LocalSweep.open(state_path, config, sweep_id=sweep_id, seed=seed)
        if state_path
        else LocalSweep(config, sweep_id=sweep_id, seed=seed)
    )
    total = min(count, config.run_cap or count)
    while True:
        batch = sweep.pending[:parallel]
        room = total - len(sweep.trials)
        if len(batch) < parallel and room > 0:
            batch += sweep.propose(min(parallel - len(batch), room))
        if not batch:
            break
        thresholds = sweep.thresholds()
        if state_path:
            sweep.save(state_path)  # the proposals, so a restart relaunches these very trials
        outcomes: Sequence[Any] = await asyncio.gather(
            *(_launch(objective, t, _trial_context(sweep, t, thresholds)) for t in batch), return_exceptions=True
        )
        for trial, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                logger.warning("sweep %s: trial %d failed: %s", sweep.sweep_id, trial.number, outcome)
                sweep.fail(trial.number, f"{type(outcome).__name__}: {outcome}")
            else:
                sweep.record(trial.number, outcome, thresholds)
        if state_path:
            sweep.save(state_path)
    return SweepResult(sweep_id=sweep.sweep_id, best=sweep.best(), trials=list(sweep.trials))
