"""The run of the task executing in this context (thread, asyncio task, Flyte action)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = ["current_run", "get_wandb_run"]

# A ContextVar, not a global: concurrent sibling tasks, threads and asyncio tasks each see only their own run.
current_run: ContextVar[Run | None] = ContextVar("flyteplugins_wandb_run", default=None)


def get_wandb_run() -> Run | None:
    """The W&B run of the current task in this process, or None where this process has no run
    (for example ranks other than 0 in ``auto`` mode, or when tracking is disabled)."""
    return current_run.get()
