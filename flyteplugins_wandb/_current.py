"""The run of the task executing in this context (thread, asyncio task, Flyte action), and its place."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._plan import RunPlan
from ._topology import DistributedInfo

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = ["Placement", "current_placement", "current_run", "get_wandb_run", "is_primary"]

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


def is_primary() -> bool:
    """Whether this process writes what its layout shares (reduced metrics, checkpoints as artifacts): it has a
    run and is its unit's leader (global rank 0, or local rank 0 of each worker under ``rank_scope="worker"``).
    False outside a tracked task and where the run could not be started."""
    placement = current_placement.get()
    return placement is not None and placement.plan.primary and current_run.get() is not None
