"""The run of the task executing in this context (thread, asyncio task, Flyte action), and its place."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._plan import RunPlan
from ._topology import DistributedInfo

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = ["Placement", "current_placement", "current_run", "get_wandb_run", "is_leader", "is_primary"]

# ContextVars, not globals: concurrent sibling tasks, threads and asyncio tasks each see only their own run.
current_run: ContextVar[Run | None] = ContextVar("flyteplugins_wandb_run", default=None)


@dataclass(frozen=True)
class Placement:
    """Where the current task's process stands in its layout (set for every process of a tracked task)."""

    plan: RunPlan
    topology: DistributedInfo | None


current_placement: ContextVar[Placement | None] = ContextVar("flyteplugins_wandb_placement", default=None)


def get_wandb_run() -> Run | None:
    """The W&B run of the current task in this process, or None where this process has no run
    (for example ranks other than 0 in ``auto`` mode, or when tracking is disabled)."""
    return current_run.get()


def is_leader() -> bool:
    """Whether this process logs what its layout unit reduces across ranks (``log_reduced``): it has a run and
    leads its unit (global rank 0, or local rank 0 of each worker under ``rank_scope="worker"``; the process of a
    task that is not distributed). False outside a tracked task and where the run could not be started.
    Artifacts (``log_artifact``) are logged by global rank 0 alone."""
    placement = current_placement.get()
    return placement is not None and placement.plan.leader and current_run.get() is not None


is_primary = is_leader
"""The older name of :func:`is_leader` (kept so existing code runs; "primary" is W&B's shared-writer role)."""
