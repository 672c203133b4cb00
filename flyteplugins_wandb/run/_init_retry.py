"""What a failed ``wandb.init`` leaves behind, cleared so that the next try can open the same run id.

wandb 0.31 keeps the service-side stream of a run whose init failed (refused, timed out): every later
``wandb.init`` of that id in the same process then fails with "run ID ... is in use", so retrying is useless
unless the stream goes. wandb offers no call to drop one stream; ending wandb's service for this process does
(the next init starts a fresh one, about a second). That would also end any other run this process has open, so it
is done only when there is none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from ._guards import Timeout

__all__ = ["releasing_on_failure"]

logger = logging.getLogger("flyteplugins_wandb")

T = TypeVar("T")


def releasing_on_failure(init: Callable[[], T], run_id: str | None) -> T:
    """Return ``init()``; if it raises, free ``run_id`` in wandb's service first (see the module), then re-raise.

    A bounded init that timed out is still running in its thread: its service is left alone.
    """
    try:
        return init()
    except Timeout:
        raise
    except Exception:
        _end_service(run_id)
        raise


def _end_service(run_id: str | None) -> None:
    import wandb

    if wandb.run is not None:
        logger.warning(
            "wandb.init of run %s failed while run %s is open in this process; a retry may find the id in use",
            run_id,
            wandb.run.id,
        )
        return
    try:
        wandb.teardown()
    except Exception as e:
        logger.warning(
            "could not end wandb's service after the failed init of run %s (%s: %s)", run_id, type(e).__name__, e
        )
