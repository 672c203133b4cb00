"""The life of one task's run in one process: resolve, plan, open, expose, finish. wandb is imported only by
processes whose plan opens a run."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .. import _keys as keys
from ..planning import (
    TRIAL_FIELDS,
    DistributedInfo,
    ParentRun,
    Resolved,
    RunPlan,
    WandbConfig,
    base_id,
    check_seconds,
    cleared,
    decode_config,
    plan,
    resolve,
)
from ..pod import (
    RunRecord,
    record_next_step,
    record_run,
    record_unfinished,
    recorded_next_step,
)
from ._coordination import WriterRendezvous
from ._current import Placement, current_placement, current_run, owned
from ._guards import (
    ApiKeyRefusedError,
    Timeout,
    bounded,
    key_source,
    refusal,
    require_api_key,
    retrying,
    sigterm_ends_run,
    wandb_base_url,
)
from ._init_args import build_init_kwargs
from ._init_retry import releasing_on_failure
from ._module_api import module_api, no_run_reason, wandb_init_function
from ._provenance import provenance
from ._service_loss import survive_service_loss

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = ["DEFAULT_START_TIMEOUT", "Decision", "InitOptions", "decide", "start_bound", "track"]

logger = logging.getLogger("flyteplugins_wandb")


DEFAULT_START_TIMEOUT: Final = 120.0
"""Seconds for ``wandb.init`` (and a shared-mode writer's wait for its primary) when nobody set a bound."""


@dataclass(frozen=True)
class InitOptions:
    """What ``@wandb_init`` was given, validated at decoration time."""

    config: WandbConfig = field(default_factory=WandbConfig)
    settings: Any = None
    """A ``wandb.Settings`` to start from; copied, never changed."""
    strict: bool = False
    """Raise instead of warning when a run cannot be started or finished."""
    start_timeout: float | None = None
    """Seconds a shared-mode writer waits for the primary; also wandb's own ``init_timeout``. None: the user's
    ``Settings(init_timeout=...)``, else ``WANDB_INIT_TIMEOUT``, else :data:`DEFAULT_START_TIMEOUT`."""
    finish_timeout: float = 60.0
    """Seconds for the end of a run: a primary waiting for its other writers, then ``run.finish`` itself."""
    init_attempts: int = 3
    """Tries of ``wandb.init`` (with exponential backoff) before the process goes on without a run."""
    distributed_task: bool = False
    """The task is an Elastic task, so ``shared`` without a parent run is fine when it runs as one process."""
    task_name: str | None = None
    run_per_attempt: bool = False
    """A fresh run per Flyte attempt (grouped), instead of resuming the same run on retries."""


def start_bound(options: InitOptions, environ: Mapping[str, str]) -> tuple[float, bool]:
    """The seconds ``wandb.init`` may take in this process, and whether the plugin must set them (False where
    the user's own setting, which wandb reads itself, already says so)."""
    if options.start_timeout is not None:
        return options.start_timeout, True
    given = getattr(options.settings, "model_fields_set", ())
    if "init_timeout" in given:
        return check_seconds("Settings.init_timeout", options.settings.init_timeout), False
    raw = environ.get(keys.WANDB_INIT_TIMEOUT, "").strip()
    if raw:
        try:
            return check_seconds(keys.WANDB_INIT_TIMEOUT, float(raw)), False
        except ValueError:
            raise ValueError(f"{keys.WANDB_INIT_TIMEOUT} must be a positive number of seconds, got {raw!r}") from None
    return DEFAULT_START_TIMEOUT, True


@dataclass(frozen=True)
class Decision:
    """What one process does for one task body, decided from values alone (no wandb, no Flyte, no I/O)."""

    resolved: Resolved | None = None
    """None where tracking is off (``WANDB_DISABLED``): no run, and wandb is never imported."""
    placement: Placement | None = None
    topology: DistributedInfo | None = None
    joins_local_parent: bool = False
    """A child running in its parent's process logs into the parent's run object and leaves its state alone."""

    @property
    def opens_run(self) -> bool:
        return self.placement is not None and self.placement.plan.starts_run and not self.joins_local_parent


def decide(
    options: InitOptions,
    context: Mapping[str, str] | None,
    run_name: str | None,
    action_name: str,
    attempt: int,
    environ: Mapping[str, str],
    local_run_id: str | None = None,
) -> Decision:
    """Resolve this task's settings and plan this process's run. ``local_run_id`` is the run already open in this
    process for an enclosing task, if any."""
    resolved = resolve(options.config, decode_config(context), environ)
    if resolved.disabled_by_env:
        return Decision()
    topology = DistributedInfo.from_env(environ)
    cfg, layout = resolved.config, resolved.layout
    parent = ParentRun(cfg.parent_run_id, cfg.parent_group) if cfg.parent_run_id and topology is None else None
    if not run_name:
        raise RuntimeError(f"the Flyte action {action_name!r} has no run name; cannot derive a W&B run id")
    p = plan(
        topology,
        layout.run_mode,
        layout.rank_scope,
        cfg.trial_run_id or base_id(run_name, action_name),
        layout.group,
        parent=parent,
        label=action_name,
        standalone_shared=options.distributed_task or layout.run_mode_source != "decorator",
        attempt=attempt if options.run_per_attempt else None,
        run_id=None if cfg.trial_run_id else cfg.id,  # a trial's run is the sweep's
    )
    joins = parent is not None and local_run_id is not None and local_run_id == p.run_id
    return Decision(resolved, Placement(p, topology), topology, joins)


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
    local_parent = current_run.get()
    if not tctx:  # Flyte's null context is falsy, not None
        logger.warning("@wandb_init: not inside a Flyte task (was the task called as a plain function?); no run")
        d = Decision()
    else:
        action = tctx.action
        d = decide(
            options,
            tctx.custom_context,
            action.run_name,
            action.name,
            tctx.attempt_number,
            environ,
            local_parent.id if local_parent is not None else None,
        )
        # Whose placement this is: a task it launches in this process (local mode) must not see its run.
        d = dataclasses.replace(d, placement=owned(d.placement, tctx, d.resolved.config if d.resolved else None))
    if not d.opens_run or d.resolved is None or d.placement is None:
        if d.joins_local_parent and d.resolved is not None and d.placement is not None:
            with (
                _bound(local_parent, d.placement) as run,
                module_api(local_parent),
                _inherit(d.resolved.config, d.placement.plan),
            ):
                yield run
            return
        with _bound(None, d.placement) as nothing, _no_run_api(d.placement):
            yield nothing
        return
    with _open(options, d, tctx, environ) as run:
        yield run


@contextmanager
def _open(options: InitOptions, d: Decision, tctx: Any, environ: Mapping[str, str]) -> Iterator[Run | None]:
    """Open this process's run, expose it to the body and finish it, whatever the body does."""
    assert d.resolved is not None and d.placement is not None
    resolved, here, topology, p = d.resolved, d.placement, d.topology, d.placement.plan
    action = tctx.action
    if resolved.wandb_mode == "online":
        require_api_key(environ, options.settings)
    timeout, _ = start_bound(options, environ)
    rendezvous = None
    if p.writer is not None and p.writer.writers > 1 and resolved.wandb_mode != "disabled" and topology is not None:
        rendezvous = WriterRendezvous.connect(environ, p.run_id or "", timeout)
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
    # Before wandb connects to a service: join the pod's (started beside the workers), a shared run's writer the
    # one the pod started for it.
    from ..pod import join_pod_services, join_writer_service  # as open_run: only processes that open a run

    own_service = False
    if environ is os.environ:
        join_pod_services(os.environ, start_bound(options, environ)[0])
        own_service = join_writer_service(os.environ)
    run = _start(p, resolved, options, environ, rendezvous, origin, own_service)
    if run is not None:
        survive_service_loss(run)
        _annotate(run, tctx.attempt_number, topology)
        _record(run, p, resolved, topology, tctx.attempt_number, environ)
    failed = True
    exit_code = 1
    try:
        with (
            _bound(run, here),
            module_api(run, f"the run {p.run_id} of this process could not be started (see the warning logged)"),
            sigterm_ends_run(),
            _inherit(resolved.config, p) if run is not None and topology is None else nullcontext(),
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


def _no_run_api(placement: Placement | None) -> AbstractContextManager[None]:
    """wandb's module API in a process of a tracked task that has no run: stand-ins that say so."""
    if placement is None:  # not a tracked task, or tracking is off: wandb's module API is left as it is
        return nullcontext()
    p, t = placement.plan, placement.topology
    return module_api(None, no_run_reason(t.rank if t else None, p.run_mode, p.rank_scope))


@contextmanager
def _inherit(cfg: WandbConfig, p: RunPlan) -> Iterator[None]:
    """Hand this task's settings and run to the tasks it launches, through Flyte's run context."""
    import flyte

    child = dataclasses.replace(cfg.inheritable(), parent_run_id=p.run_id, parent_group=p.group)
    # A trial's children are not the trial: they must not read its identity from the inherited context.
    # Nor is a run id theirs: it names this task's run.
    own = (*TRIAL_FIELDS, "id")
    entries = {**cleared(*(name for name in own if getattr(cfg, name))), **child.to_context()}
    with flyte.custom_context(**entries):
        yield


def _start(
    p: RunPlan,
    resolved: Resolved,
    options: InitOptions,
    environ: Mapping[str, str],
    rendezvous: WriterRendezvous | None,
    origin: dict[str, Any] | None,
    own_service: bool,
) -> Run | None:
    writer = p.writer
    if writer is not None and not writer.primary and rendezvous is not None:
        # Import wandb and start its service while the primary creates the run: the writer then only attaches.
        _safely(_prepare_wandb, "starting the wandb service")
        timeout, _ = start_bound(options, environ)
        primary = rendezvous.wait_for_primary(timeout)
        if primary is False:
            why = rendezvous.primary_failure()
            msg = (
                f"the primary writer of run {p.run_id} failed to start it ({why}); {writer.label} goes on without a run"
            )
            if options.strict:
                raise RuntimeError(msg)
            logger.warning(msg)
            return None
        if primary is None:
            logger.warning(
                "the primary writer of run %s did not start it within %.0fs; %s attaches anyway",
                p.run_id,
                timeout,
                writer.label,
            )
    try:
        run = _init(p, resolved, options, environ, origin, own_service)
    except Exception as e:
        if rendezvous is not None and writer is not None and writer.primary:
            rendezvous.announce_primary(ok=False, why=f"{type(e).__name__}: {e}")
        # A refused key is a mistake found before training starts: fail now, not after hours without a run.
        if options.strict or isinstance(e, ApiKeyRefusedError):
            raise
        # Say which writer is left without a run: its rows are not logged anywhere.
        who = _who(p, environ)
        logger.warning(
            "wandb.init failed for run %s on %s (%s: %s); training goes on without it, and what %s logs is lost",
            p.run_id,
            who,
            type(e).__name__,
            e,
            who,
        )
        return None
    if rendezvous is not None and writer is not None and writer.primary:
        rendezvous.announce_primary(ok=True)
    return run


def _who(p: RunPlan, environ: Mapping[str, str]) -> str:
    if p.writer is not None:
        return p.writer.label
    return f"rank {environ[keys.RANK]}" if keys.RANK in environ else "this process"


def _prepare_wandb() -> None:
    import wandb

    wandb.setup()


def _init(
    p: RunPlan,
    resolved: Resolved,
    options: InitOptions,
    environ: Mapping[str, str],
    origin: dict[str, Any] | None,
    own_service: bool,
) -> Run:
    import wandb

    from ..pod import open_run  # the node service's client: only processes that open a run need it

    timeout, ours = start_bound(options, environ)
    kwargs = build_init_kwargs(p, resolved, options.settings, environ, origin, init_timeout=timeout if ours else None)
    # wandb's own init_timeout fires first with its own message; this bound catches what hangs outside it.
    limit = timeout * 1.25 + 5

    continued_from = 0

    # A restarted writer may find its run still held by its dead predecessor in the node's service; it may take
    # it over only where no live writer can hold the same run there (a run of one writer, or a service of its own).
    may_release = p.writer is None or own_service

    def init() -> Run:
        nonlocal continued_from
        run, continued_from = open_run(lambda: wandb_init_function()(**kwargs), str(p.run_id), may_release=may_release)
        return run

    def attempt() -> Run:
        # A failed init leaves its run id taken in wandb's service: free it, or every retry fails on it.
        try:
            return releasing_on_failure(lambda: bounded(init, limit, f"wandb.init of run {p.run_id}"), p.run_id)
        except Exception as e:
            _raise_if_refused(e, str(p.run_id), options, environ)
            raise

    run = retrying(
        attempt,
        attempts=options.init_attempts,
        backoff=1.0,
        what=f"wandb.init of run {p.run_id}",
        # A hang is not retried: it would only multiply the wait; nor is a refused key.
        permanent=(TypeError, ValueError, Timeout, wandb.errors.UsageError, ApiKeyRefusedError),
    )
    # A writer that died left its step in the service's stream; one that was stopped (SIGTERM) in the pod's ledger.
    label = p.writer.label if p.writer else None
    _continue_steps(run, max(continued_from, recorded_next_step(str(p.run_id), label, environ)))
    return run


def _continue_steps(run: Run, step: int) -> None:
    """Make the next row of ``run`` step ``step``, where a dead writer of this run stopped: wandb itself continues
    the steps only of a run it resumes from the server, and an offline run's new file starts at 0."""
    if step <= (getattr(run, "starting_step", 0) or 0):
        return
    # An empty row with an explicit step only moves the step on: wandb writes no row for it.
    _safely(lambda: run.log({}, step=step, commit=False), f"continuing run {run.id} from step {step}")


def _raise_if_refused(error: Exception, run_id: str, options: InitOptions, environ: Mapping[str, str]) -> None:
    why = refusal(error)
    if why is None:
        return
    raise ApiKeyRefusedError(
        f"the W&B server at {wandb_base_url(environ)} refused the credentials from "
        f"{key_source(environ, options.settings)} ({why}) when starting run {run_id}: give the task a valid API "
        f"key for this server, or set WANDB_MODE=offline to train without it. wandb said: "
        f"{type(error).__name__}: {error}"
    ) from error


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
    rendezvous: WriterRendezvous | None,
    failed: bool,
    exit_code: int,
) -> None:
    writer = p.writer
    if writer is not None and writer.primary and rendezvous is not None and not failed:
        others = writer.writers - 1
        done = rendezvous.wait_for_writers(others, options.finish_timeout)
        if done < others:
            logger.warning(
                "run %s: %d of %d other writers had not finished after %.0fs; the primary finishes anyway",
                p.run_id,
                done,
                others,
                options.finish_timeout,
            )
    if run is not None:
        _note_next_step(run, p)
    try:
        if run is not None:
            bounded(lambda: run.finish(exit_code=exit_code), options.finish_timeout, f"finishing run {p.run_id}")
    except Timeout:
        record_unfinished(getattr(getattr(run, "settings", None), "sync_dir", None))
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
        if writer is not None and not writer.primary and rendezvous is not None:
            rendezvous.writer_done()


def _note_next_step(run: Run, p: RunPlan) -> None:
    # wandb's own count of the rows this process logged (no call to the service, which may be gone).
    step = getattr(run, "_local_step", None)
    if isinstance(step, int) and step > 0:
        label = p.writer.label if p.writer else None
        _safely(lambda: record_next_step(str(p.run_id), label, step), f"noting the step of run {p.run_id}")
