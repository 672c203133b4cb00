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

from ._config import WandbConfig, decode_config
from ._coordination import WriterRendezvous
from ._current import current_run
from ._manifest import RunRecord, record_run
from ._plan import ParentRun, RunPlan, base_id, plan
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
    """Raise instead of warning when a run cannot be started."""
    start_timeout: float = 120.0
    """Seconds a shared-mode writer waits for the primary to create the run."""
    finish_timeout: float = 60.0
    """Seconds a shared-mode primary waits for the other writers to flush before it sets the final state."""
    distributed_task: bool = False
    """The task is an Elastic task, so ``shared`` without a parent run is fine when it runs as one process."""


@contextmanager
def _bound(run: Run | None) -> Iterator[Run | None]:
    token = current_run.set(run)
    try:
        yield run
    finally:
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
        base_id(action.run_name, action.name),
        resolved.group,
        parent=parent,
        label=action.name,
        standalone_shared=options.distributed_task,
    )
    if not p.starts_run:
        with _bound(None) as nothing:
            yield nothing
        return

    local_parent = current_run.get()
    if parent is not None and local_parent is not None and local_parent.id == p.run_id:
        # A child running in its parent's process logs into the parent's run object and leaves its state alone.
        with _bound(local_parent) as run, _inherit(cfg, p):
            yield run
        return

    rendezvous = None
    if p.writer is not None and p.writer.writers > 1 and resolved.wandb_mode != "disabled" and topology is not None:
        rendezvous = WriterRendezvous.connect(environ, p.run_id or "", topology.restart_count, options.start_timeout)
    run = _start(p, resolved, options, environ, rendezvous)
    if run is not None:
        _record(run, p, resolved, topology, tctx.attempt_number, environ)
    failed = True
    try:
        with _bound(run), _inherit(cfg, p) if run is not None and topology is None else nullcontext():
            yield run
        failed = False
    finally:
        _finish(run, p, options, rendezvous, failed)


@contextmanager
def _inherit(cfg: WandbConfig, p: RunPlan) -> Iterator[None]:
    """Hand this task's settings and run to the tasks it launches, through Flyte's run context."""
    import flyte

    child = dataclasses.replace(cfg.inheritable(), parent_run_id=p.run_id, parent_group=p.group)
    with flyte.custom_context(**child.to_context()):
        yield


def _start(
    p: RunPlan, resolved: Resolved, options: InitOptions, environ: Mapping[str, str], rdzv: WriterRendezvous | None
) -> Run | None:
    writer = p.writer
    if writer is not None and not writer.primary and rdzv is not None:
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
        run = _init(p, resolved, options, environ)
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


def init_kwargs(p: RunPlan, resolved: Resolved, settings: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of ``wandb.init`` for this plan (``settings`` is a ``wandb.Settings``, copied)."""
    cfg = resolved.config
    kwargs: dict[str, Any] = dict(cfg.init_kwargs or {})
    for name in ("project", "entity", "name", "notes", "job_type", "dir"):
        value = getattr(cfg, name)
        if value is not None:
            kwargs[name] = value
    if cfg.tags is not None:
        kwargs["tags"] = list(cfg.tags)
    if cfg.config is not None:
        kwargs["config"] = dict(cfg.config)
    kwargs.update(id=p.run_id, group=p.group, mode=resolved.wandb_mode, reinit="create_new")
    # Flyte retries and elastic restarts reopen the same id: continue its history instead of clashing with it.
    kwargs.setdefault("resume", "allow")

    updates: dict[str, Any] = {}
    writer = p.writer
    if writer is not None and resolved.wandb_mode != "disabled":
        updates.update(x_label=writer.label, x_primary=writer.primary, x_update_finish_state=writer.primary)
        if resolved.wandb_mode == "online":
            # Settings(mode="shared") would also override an offline WANDB_MODE; only online runs are shared.
            updates["mode"] = "shared"
            kwargs.pop("mode")
        # Writers of one run in one directory overwrite each other's files (offline, all but one history is lost).
        root = cfg.dir or environ.get("WANDB_DIR") or os.getcwd()
        kwargs["dir"] = os.path.join(root, "wandb-writers", str(p.run_id), writer.label)
        os.makedirs(kwargs["dir"], exist_ok=True)
    gpus = _own_gpu(p, environ)
    if gpus is not None:
        updates["x_stats_gpu_device_ids"] = gpus
    kwargs["settings"] = settings.model_copy(update=updates) if settings is not None else None
    if kwargs["settings"] is None and updates:
        import wandb

        kwargs["settings"] = wandb.Settings(**updates)
    return kwargs


def _own_gpu(p: RunPlan, environ: Mapping[str, str]) -> list[int] | None:
    """The NVML index of this rank's GPU, when it has one and its run should not sample the node's other GPUs."""
    if p.gpu_index is None or not (p.writer is not None or p.run_mode == "new"):
        return None
    import sys

    torch = sys.modules.get("torch")  # never import torch for this: a process without it has no GPU to pin
    if torch is None or not torch.cuda.is_available():
        return None
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [p.gpu_index]
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if p.gpu_index < len(ids) and ids[p.gpu_index].isdigit():
        return [int(ids[p.gpu_index])]
    return None  # UUIDs or too few devices: sampling every GPU is better than sampling the wrong one


def _init(p: RunPlan, resolved: Resolved, options: InitOptions, environ: Mapping[str, str]) -> Run:
    import wandb

    return wandb.init(**init_kwargs(p, resolved, options.settings, environ))


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


def _finish(run: Run | None, p: RunPlan, options: InitOptions, rdzv: WriterRendezvous | None, failed: bool) -> None:
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
            run.finish(exit_code=1 if failed else 0)
    except Exception as e:
        # Raising here would replace the body's own exception; only a strict, successful task may fail on it.
        if options.strict and not failed:
            raise
        logger.warning(
            "finishing run %s failed (%s: %s); some of its data may not be saved", p.run_id, type(e).__name__, e
        )
    finally:
        if writer is not None and not writer.primary and rdzv is not None:
            rdzv.writer_done()
