"""The life of one task's run in one process: resolve, plan, open, expose, finish. wandb is imported only by
processes whose plan opens a run."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._config import TRIAL_FIELDS, WandbConfig, cleared, decode_config
from ._coordination import WriterRendezvous
from ._current import Placement, current_placement, current_run
from ._guards import Timeout, bounded, require_api_key, retrying, sigterm_ends_run
from ._init_args import build_init_kwargs
from ._manifest import RunRecord, record_run
from ._plan import ParentRun, RunPlan, base_id, plan
from ._provenance import provenance
from ._resolve import Resolved, resolve
from ._topology import DistributedInfo

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = ["InitOptions", "track"]

logger = logging.getLogger("flyteplugins_wandb")


@dataclass(frozen=True)
class InitOptions:
    """What ``@wandb_init`` was given, validated at decoration time."""

    config: WandbConfig = field(default_factory=WandbConfig)
    settings: Any = None
    """A ``wandb.Settings`` to start from; copied, never changed."""
    strict: bool = False
    """Raise instead of warning when a run cannot be started or finished."""
    start_timeout: float = 120.0
    """Seconds a shared-mode writer waits for the primary; also wandb's own ``init_timeout``."""
    finish_timeout: float = 60.0
    """Seconds for the end of a run: a primary waiting for its other writers, then ``run.finish`` itself."""
    init_attempts: int = 3
    """Tries of ``wandb.init`` (with exponential backoff) before the process goes on without a run."""
    distributed_task: bool = False
    """The task is an Elastic task, so ``shared`` without a parent run is fine when it runs as one process."""
    task_name: str | None = None
    run_per_attempt: bool = False
    """A fresh run per Flyte attempt (grouped), instead of resuming the same run on retries."""


@contextmanager
def _bound(run: Run | None, placement: Placement | None = None) -> Iterator[Run | None]:
    token = current_run.set(run)
    where = current_placement.set(placement)
    try:
        yield run
    finally:
        current_placement.reset(where)
        current_run.reset(token)


@contextmanager
def track(options: InitOptions, environ: Mapping[str, str] = os.environ) -> Iterator[Run | None]:
    """Hold this process's run for the duration of one task body.

    A body that raises finishes the run as failed (exit code 1) and its exception propagates unchanged.
    """
    import flyte

    tctx = flyte.ctx()
    if not tctx:  # Flyte's null context is falsy, not None
        logger.warning("@wandb_init: not inside a Flyte task (was the task called as a plain function?); no run")
        with _bound(None) as nothing:
            yield nothing
        return

    resolved = resolve(options.config, decode_config(tctx.custom_context), environ)
    if resolved.disabled_by_env:
        with _bound(None) as nothing:
            yield nothing
        return

    topology = DistributedInfo.from_env(environ)
    cfg = resolved.config
    parent = ParentRun(cfg.parent_run_id, cfg.parent_group) if cfg.parent_run_id and topology is None else None
    action = tctx.action
    if not action.run_name:
        raise RuntimeError(f"the Flyte action {action.name!r} has no run name; cannot derive a W&B run id")
    p = plan(
        topology,
        resolved.layout.run_mode,
        resolved.layout.rank_scope,
        cfg.trial_run_id or base_id(action.run_name, action.name),
        resolved.group,
        parent=parent,
        label=action.name,
        # A run-wide shared layout from the run context also reaches plain tasks (an orchestrating parent, say):
        # they get a run of their own. Only a decorator asking for shared on a plain task needs a parent run.
        standalone_shared=options.distributed_task or options.config.run_mode is None,
        attempt=tctx.attempt_number if options.run_per_attempt else None,
    )
    here = Placement(p, topology)
    if not p.starts_run:
        with _bound(None, here) as nothing:
            yield nothing
        return

    local_parent = current_run.get()
    if parent is not None and local_parent is not None and local_parent.id == p.run_id:
        # A child running in its parent's process logs into the parent's run object and leaves its state alone.
        with _bound(local_parent, here) as run, _inherit(cfg, p):
            yield run
        return

    if resolved.wandb_mode == "online":
        require_api_key(environ, options.settings)
    rendezvous = None
    if p.writer is not None and p.writer.writers > 1 and resolved.wandb_mode != "disabled" and topology is not None:
        rendezvous = WriterRendezvous.connect(environ, p.run_id or "", topology.restart_count, options.start_timeout)
    origin = None
    if p.writer is None or p.writer.primary:
        origin = provenance(
            project=action.project,
            domain=action.domain,
            run_name=action.run_name,
            action_name=action.name,
            task_name=options.task_name,
            version=tctx.version,
            plan=p,
            topology=topology,
            environ=environ,
        )
    run = _start(p, resolved, options, environ, rendezvous, origin)
    if run is not None:
        _annotate(run, tctx.attempt_number, topology)
        _record(run, p, resolved, topology, tctx.attempt_number, environ)
    failed = True
    exit_code = 1
    try:
        with (
            _bound(run, here),
            sigterm_ends_run(),
            _inherit(cfg, p) if run is not None and topology is None else nullcontext(),
        ):
            yield run
        failed = False
        exit_code = 0
    except SystemExit as e:  # Preempted, or sys.exit() in the body
        exit_code = e.code if isinstance(e.code, int) and e.code else 1
        if run is not None and exit_code == 143:
            _safely(lambda: run.summary.update({"flyte/preempted": True}), "marking the run preempted")
        raise
    finally:
        _finish(run, p, options, rendezvous, failed, exit_code)


@contextmanager
def _inherit(cfg: WandbConfig, p: RunPlan) -> Iterator[None]:
    """Hand this task's settings and run to the tasks it launches, through Flyte's run context."""
    import flyte

    child = dataclasses.replace(cfg.inheritable(), parent_run_id=p.run_id, parent_group=p.group)
    # A trial's children are not the trial: they must not read its identity from the inherited context.
    entries = {**cleared(*(name for name in TRIAL_FIELDS if getattr(cfg, name))), **child.to_context()}
    with flyte.custom_context(**entries):
        yield


def _start(
    p: RunPlan,
    resolved: Resolved,
    options: InitOptions,
    environ: Mapping[str, str],
    rdzv: WriterRendezvous | None,
    origin: dict[str, Any] | None,
) -> Run | None:
    writer = p.writer
    if writer is not None and not writer.primary and rdzv is not None:
        # Import wandb and start its service while the primary creates the run: the writer then only attaches.
        _safely(_prepare_wandb, "starting the wandb service")
        primary = rdzv.wait_for_primary(options.start_timeout)
        if primary is False:
            msg = f"the primary writer of run {p.run_id} failed to start it; {writer.label} goes on without a run"
            if options.strict:
                raise RuntimeError(msg)
            logger.warning(msg)
            return None
        if primary is None:
            logger.warning(
                "the primary writer of run %s did not start it within %.0fs; %s attaches anyway",
                p.run_id,
                options.start_timeout,
                writer.label,
            )
    try:
        run = _init(p, resolved, options, environ, origin)
    except Exception as e:
        if rdzv is not None and writer is not None and writer.primary:
            rdzv.announce_primary(ok=False)
        if options.strict:
            raise
        logger.warning(
            "wandb.init failed for run %s (%s: %s); training goes on without it", p.run_id, type(e).__name__, e
        )
        return None
    if rdzv is not None and writer is not None and writer.primary:
        rdzv.announce_primary(ok=True)
    return run


def _prepare_wandb() -> None:
    import wandb

    wandb.setup()


def _init(
    p: RunPlan, resolved: Resolved, options: InitOptions, environ: Mapping[str, str], origin: dict[str, Any] | None
) -> Run:
    import wandb

    kwargs = build_init_kwargs(p, resolved, options.settings, environ, origin, init_timeout=options.start_timeout)
    # wandb's own init_timeout fires first with its own message; this bound catches what hangs outside it.
    limit = options.start_timeout * 1.25 + 5
    return retrying(
        lambda: bounded(lambda: wandb.init(**kwargs), limit, f"wandb.init of run {p.run_id}"),
        attempts=options.init_attempts,
        backoff=1.0,
        what=f"wandb.init of run {p.run_id}",
        # A hang is not retried: it would only multiply the wait.
        permanent=(TypeError, ValueError, Timeout, wandb.errors.UsageError),
    )


def _annotate(run: Run, attempt: int, topology: DistributedInfo | None) -> None:
    # These change on Flyte retries and elastic restarts of the same run, so they belong in the summary.
    values = {"flyte/attempt": attempt, "flyte/restart_count": topology.restart_count if topology else 0}
    _safely(lambda: run.summary.update(values), "recording the attempt")


def _safely(action: Any, what: str) -> None:
    try:
        action()
    except Exception as e:
        logger.warning("%s failed (%s: %s)", what, type(e).__name__, e)


def _record(
    run: Run, p: RunPlan, resolved: Resolved, t: DistributedInfo | None, attempt: int, environ: Mapping[str, str]
) -> None:
    w = p.writer
    entry = RunRecord(
        run_id=str(p.run_id),
        group=p.group,
        label=w.label if w else None,
        primary=w.primary if w else None,
        run_mode=p.run_mode,
        rank_scope=p.rank_scope,
        wandb_mode=resolved.wandb_mode,
        rank=t.rank if t else None,
        local_rank=t.local_rank if t else None,
        worker_index=t.worker_index if t else None,
        restart_count=t.restart_count if t else 0,
        attempt=attempt,
        project=run.project,
        entity=run.entity or None,
        directory=getattr(run.settings, "sync_dir", None),
    )
    try:
        record_run(entry, environ)
    except OSError as e:
        logger.warning("could not record run %s in the manifest: %s", p.run_id, e)


def _finish(
    run: Run | None,
    p: RunPlan,
    options: InitOptions,
    rdzv: WriterRendezvous | None,
    failed: bool,
    exit_code: int,
) -> None:
    writer = p.writer
    if writer is not None and writer.primary and rdzv is not None and not failed:
        others = writer.writers - 1
        done = rdzv.wait_for_writers(others, options.finish_timeout)
        if done < others:
            logger.warning(
                "run %s: %d of %d other writers had not finished after %.0fs; the primary finishes anyway",
                p.run_id,
                done,
                others,
                options.finish_timeout,
            )
    try:
        if run is not None:
            bounded(lambda: run.finish(exit_code=exit_code), options.finish_timeout, f"finishing run {p.run_id}")
    except Timeout:
        logger.warning(
            "run %s did not finish within %.0fs; data not yet uploaded stays in %s (upload it with `wandb sync`)",
            p.run_id,
            options.finish_timeout,
            getattr(getattr(run, "settings", None), "sync_dir", "the run directory"),
        )
    except Exception as e:
        # Raising here would replace the body's own exception; only a strict, successful task may fail on it.
        if options.strict and not failed:
            raise
        logger.warning("finishing run %s failed (%s: %s); some of its data may be lost", p.run_id, type(e).__name__, e)
    finally:
        if writer is not None and not writer.primary and rdzv is not None:
            rdzv.writer_done()
