"""``run_sweep``: a sweep's trials as parallel Flyte tasks, proposed by the W&B server (through the agents of
``_sweep_agent``) or by the offline engine of ``_local_sweep``, from inside a driver task; and what a trial reads
of its sweep (``get_wandb_sweep_id``, ``sweep_should_stop``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .. import _keys as keys
from ..planning import TRIAL_FIELDS, WandbConfig, cleared, decode_config
from ..run import MissingApiKeyError, api_key, wandb_base_url
from ._agent import AgentPolicy, run_agents
from ._config import SweepConfig, SweepContext, decode_sweep_config
from ._engine import LocalSweep, should_stop
from ._server import SweepServer, SweepServerAuthError, SweepServerError
from ._trials import SweepResult, Trial, best_trial

__all__ = [
    "SweepHome",
    "get_wandb_sweep_context",
    "get_wandb_sweep_id",
    "offline_sweep_id",
    "run_sweep",
    "sweep_should_stop",
]

logger = logging.getLogger("flyteplugins_wandb")

# Run-context entries that make every run launched beneath offline, whatever WANDB_MODE says.
FORCE_OFFLINE: Final = WandbConfig(mode="offline").to_context()


@dataclass(frozen=True)
class SweepHome:
    """The sweep that ``@wandb_sweep`` opened for driver action ``action``: on a W&B server (``online``), or
    offline for the local engine."""

    action: str
    sweep_id: str
    online: bool
    base_url: str | None = None
    entity: str | None = None
    project: str | None = None
    url: str | None = None
    strict: bool = False
    """Raise, rather than go offline, when the server fails the sweep (``@wandb_sweep(strict=True)``)."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_context(cls, context: Mapping[str, str], action: str) -> SweepHome | None:
        """The home set for ``action`` itself (a trial that drives a sweep of its own does not inherit one)."""
        raw = context.get(keys.SWEEP_HOME_KEY)
        if not raw:
            return None
        try:
            home = cls(**json.loads(raw))
        except (TypeError, ValueError) as e:
            raise ValueError(f"run-context key {keys.SWEEP_HOME_KEY!r} is malformed: {raw!r} ({e})") from None
        return home if home.action == action else None


def offline_sweep_id(run_name: str, action_name: str) -> str:
    """The id of an offline sweep driven by action ``action_name`` of run ``run_name``."""
    return f"{run_name}-{action_name}-sweep"


def _context() -> dict[str, str]:
    import flyte

    ctx = flyte.ctx()
    return dict(ctx.custom_context or {}) if ctx else {}


def get_wandb_sweep_id() -> str | None:
    """The id of the sweep the current task belongs to, or None: set by ``@wandb_sweep`` for its driver and
    everything the driver launches, and by ``run_sweep`` for each trial and its children."""
    return _context().get(keys.SWEEP_ID_KEY)


def get_wandb_sweep_context() -> SweepConfig | None:
    """The sweep configuration in force for the current task (the one ``@wandb_sweep`` opened its sweep with, in
    the driver and everything it launches), or None outside a task or without one. Attributes: ``method``,
    ``metric``, ``parameters``, ``early_terminate``, ``name``, ``project``, ``entity``, ``run_cap``, ..."""
    return decode_sweep_config(_context())


def sweep_should_stop(step: int, value: float) -> bool:
    """For a trial that reports its metric as it goes: whether ``value`` at ``step`` (1-based) falls below the
    sweep's hyperband bar there, so the trial should stop now and return the values it has. The bars come from
    the trials of earlier rounds; False outside a sweep, without ``early_terminate``, or between brackets."""
    raw = _context().get(keys.SWEEP_STOP_KEY)
    if raw is None:
        return False
    spec = json.loads(raw)
    thresholds = {int(k): float(v) for k, v in spec["thresholds"].items()}
    return should_stop(thresholds, spec["goal"], step, value)


def _trial_run(sweep_id: str, trial: Trial, **fields: Any) -> dict[str, str]:
    """The run-context entries that make a trial's ``@wandb_init`` open the trial's own run: one run per trial
    (``auto``: a distributed trial's processes share it), grouped under the sweep, its parameters in its config."""
    inherited = decode_config(_context()).config or {}
    run = WandbConfig(
        name=f"{sweep_id}-trial-{trial.number}",
        group=sweep_id,
        run_mode="auto",
        config={**inherited, **trial.params, "sweep_id": sweep_id, "sweep_trial": trial.number},
        **fields,
    ).to_context()
    # A driver with a run of its own hands it to its children; a trial is not part of it.
    # A driver with a run id of its own names its run with it, not its trials'.
    return {**cleared("parent_run_id", "parent_group", "id", *TRIAL_FIELDS), **run, keys.SWEEP_ID_KEY: sweep_id}


def _trial_context(sweep: LocalSweep, trial: Trial, thresholds: Mapping[int, float]) -> dict[str, str]:
    stop = {"goal": sweep.config.goal, "thresholds": {str(k): v for k, v in thresholds.items()}}
    return {**_trial_run(sweep.sweep_id, trial), keys.SWEEP_STOP_KEY: json.dumps(stop)}


def _online_trial_context(home: SweepHome, trial: Trial) -> dict[str, str]:
    # The server judges early termination online; a bar left over from an enclosing offline sweep must not apply.
    entries = _trial_run(
        home.sweep_id,
        trial,
        project=home.project,
        entity=home.entity,
        trial_run_id=trial.run_id,
        trial_sweep_id=home.sweep_id,
    )
    return {**entries, keys.SWEEP_STOP_KEY: json.dumps({"goal": "minimize", "thresholds": {}})}


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
    policy: AgentPolicy | None = None,
) -> SweepResult:
    """Run a sweep from inside a Flyte driver task: ``parallel`` trials at a time, each a Flyte task of
    ``objective``, until ``count`` trials (or ``run_cap``, or the whole grid) were run.

    - Trials get the suggested parameters as keyword inputs (``objective(lr=..., batch_size=...)``), so the
      objective's signature names the sweep's parameters. It returns the metric's final value, or its values at
      steps 1..n (a list, the last being the result) so that ``early_terminate`` can judge it; it may call
      :func:`sweep_should_stop` after each step to stop early.
    - Each trial's ``@wandb_init`` opens one run for the trial (named ``{sweep_id}-trial-{n}``, grouped under the
      sweep id, with the parameters, ``sweep_id`` and ``sweep_trial`` in its config); ``get_wandb_sweep_id()``
      returns the id inside the trial. ``config`` defaults to the sweep configuration in the run context
      (``wandb_sweep_config(...)``, or the one ``@wandb_sweep`` was given).
    - Where the driver is decorated with ``@wandb_sweep`` and its sweep is online, the W&B server proposes the
      trials: ``parallel`` agents are registered with it, each runs one trial at a time, and each trial's run is
      the run the server assigned (so it appears in the sweep). ``policy`` sets their heartbeat and patience.
    - Otherwise the search runs here, offline, with no server call (see ``_local_sweep``): the sweep id is
      ``{run_name}-{action}-sweep`` of this driver; with ``state_path`` the state is saved after every round and a
      restarted driver resumes it instead of starting over (trials that finished are never run again, trials cut
      off mid-round are launched again with the same parameters).
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
    total = min(count, config.run_cap or count)
    home = SweepHome.from_context(_context(), ctx.action.name)
    if home is not None and home.online:
        if state_path:
            logger.info("sweep %s is online: its state lives on the W&B server, state_path is not used", home.sweep_id)
        trials = await _run_online(objective, home, parallel, total, policy or AgentPolicy(), ctx.action.name)
        if trials is not None:
            return SweepResult(home.sweep_id, best_trial(trials, config.goal), trials, online=True, url=home.url)
    local_id = offline_sweep_id(ctx.action.run_name or "local", ctx.action.name)
    if home is None or not home.online:
        sweep_id = home.sweep_id if home else local_id
        return await _run_local(objective, config, sweep_id, parallel, total, state_path, seed)
    # The server took no agent: the trials run offline (their runs could not reach it either), under an id of
    # this driver's rather than that of a server sweep they are not part of.
    with flyte.custom_context(**FORCE_OFFLINE):
        return await _run_local(objective, config, local_id, parallel, total, state_path, seed)


async def _run_online(
    objective: Any, home: SweepHome, parallel: int, total: int, policy: AgentPolicy, label: str
) -> list[Trial] | None:
    """The trials of an online sweep, or None when its server could not take agents (the caller goes offline)."""
    base_url = home.base_url or wandb_base_url(os.environ)
    key = api_key(os.environ, base_url)
    if key is None:
        raise MissingApiKeyError(f"sweep {home.sweep_id} is on {base_url}, but this driver has no W&B API key")
    server = SweepServer(base_url, key, timeout=policy.call_timeout)
    try:
        return await run_agents(
            server,
            home.sweep_id,
            entity=home.entity,
            project=home.project,
            parallel=parallel,
            count=total,
            launch=lambda trial: _launch(objective, trial, _online_trial_context(home, trial)),
            policy=policy,
            label=label,
        )
    except SweepServerAuthError:
        raise
    except (SweepServerError, TimeoutError) as e:
        if home.strict:
            raise RuntimeError(f"sweep {home.sweep_id}: no agent could register ({e}) and strict=True") from e
        logger.warning("sweep %s: no agent could register (%s); running the sweep offline instead", home.sweep_id, e)
        return None


async def _run_local(
    objective: Any,
    config: SweepConfig,
    sweep_id: str,
    parallel: int,
    total: int,
    state_path: str | None,
    seed: int,
) -> SweepResult:
    sweep = (
        LocalSweep.open(state_path, config, sweep_id=sweep_id, seed=seed)
        if state_path
        else LocalSweep(config, sweep_id=sweep_id, seed=seed)
    )
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
