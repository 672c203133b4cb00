"""The run of the task executing in this context (thread, asyncio task, Flyte action), and its place."""

from __future__ import annotations

import dataclasses
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..planning import DistributedInfo, RunPlan, WandbConfig

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = [
    "Placement",
    "TaskKey",
    "current_placement",
    "current_run",
    "get_wandb_run",
    "is_leader",
    "is_primary",
    "owned",
    "task_key",
]

# ContextVars, not globals: concurrent sibling tasks, threads and asyncio tasks each see only their own run.
current_run: ContextVar[Run | None] = ContextVar("flyteplugins_wandb_run", default=None)


@dataclass(frozen=True)
class TaskKey:
    """Which Flyte task execution bound a run: its action, and its output path (a ``@flyte.trace`` function runs
    under an action of its own but writes beside its task's outputs)."""

    action: str
    output_path: str | None


def task_key(tctx: Any) -> TaskKey:
    """The key of the task execution whose context is ``tctx`` (a ``flyte.models.TaskContext``)."""
    return TaskKey(str(tctx.action.name), str(tctx.output_path) if tctx.output_path else None)


@dataclass(frozen=True)
class Placement:
    """Where the current task's process stands in its layout (set for every process of a tracked task)."""

    plan: RunPlan
    topology: DistributedInfo | None
    owner: TaskKey | None = None
    """The task execution this placement belongs to: a task it launches in the same process (local mode) copies
    the ContextVars but is another task, and sees no run unless it is decorated itself."""
    settings: WandbConfig | None = None
    """The task's W&B settings after precedence (``get_wandb_context()``)."""

    def is_here(self) -> bool:
        """Whether the current Flyte task (or a trace inside it) is the one that bound this placement."""
        if self.owner is None:
            return True
        import flyte

        tctx = flyte.ctx()
        if not tctx:  # a thread or process that sees no Flyte context: nothing to tell tasks apart by
            return True
        here = task_key(tctx)
        if here.action == self.owner.action:
            return True
        return here.output_path is not None and here.output_path == self.owner.output_path


current_placement: ContextVar[Placement | None] = ContextVar("flyteplugins_wandb_placement", default=None)


def owned(placement: Placement | None, tctx: Any, settings: WandbConfig | None) -> Placement | None:
    """``placement`` marked as the one of the task execution whose context is ``tctx``, with its settings."""
    if placement is None:
        return None
    return dataclasses.replace(placement, owner=task_key(tctx), settings=settings)


def get_wandb_run() -> Run | None:
    """The W&B run of the current task in this process, or None where this process has no run
    (for example ranks other than 0 in ``auto`` mode, when tracking is disabled, or in a task without
    ``@wandb_init`` launched by one that has it). ``@flyte.trace`` functions see their task's run."""
    run = current_run.get()
    if run is None:
        return None
    placement = current_placement.get()
    return run if placement is None or placement.is_here() else None


def is_leader() -> bool:
    """Whether this process logs what its layout unit reduces across ranks (``log_reduced``): it has a run and
    leads its unit (global rank 0, or local rank 0 of each worker under ``rank_scope="worker"``; the process of a
    task that is not distributed). False outside a tracked task and where the run could not be started.
    Artifacts (``log_artifact``) are logged by global rank 0 alone."""
    placement = current_placement.get()
    return placement is not None and placement.plan.leader and get_wandb_run() is not None


is_primary = is_leader
"""The older name of :func:`is_leader` (kept so existing code runs; "primary" is W&B's shared-writer role)."""
