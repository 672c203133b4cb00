"""A W&B service that dies under a running task (killed, OOM, crashed) must not take the training with it.

wandb's ``Run`` sends every record to its service over a socket; once the service is gone, the next ``run.log``
raises ``ConnectionResetError`` (or another ``OSError``) inside the user's training loop. :func:`survive_service_loss`
guards one run object: the first such failure is reported once (a warning naming the run and the first step that
was lost), noted in the run's files (:data:`LOSS_NOTE`, saved with them), and from then on what the process logs
to that run is dropped instead of raising. Calls that wait for an answer (``run.step``, artifacts) still raise.

A new service cannot take the run over: the records the dead service held are gone with it, and an offline run
cannot be continued in a new file by wandb 0.31. Online, the next Flyte attempt or elastic restart resumes the run.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Final

__all__ = ["LOSS_NOTE", "survive_service_loss"]

logger = logging.getLogger("flyteplugins_wandb")

LOSS_NOTE: Final = "flyteplugins_wandb-service-lost.json"
"""Written beside the run's ``.wandb`` file when its service died: the run id, the first step not recorded, the
error and the time (seconds since the epoch)."""


class _Loss:
    """What one guarded run knows about its service: alive, or lost from a step on."""

    def __init__(self, run: Any) -> None:
        self._run = run
        self._lock = threading.Lock()
        self.lost = False

    def happened(self, error: BaseException) -> None:
        with self._lock:
            if self.lost:
                return
            self.lost = True
        step = getattr(self._run, "_local_step", None)
        run_id = getattr(self._run, "id", "?")
        logger.warning(
            "the W&B service of run %s is gone (%s: %s); what this process logs from step %s on is dropped, and "
            "training goes on",
            run_id,
            type(error).__name__,
            error,
            step,
        )
        self._note(run_id, step, error)

    def _note(self, run_id: str, step: int | None, error: BaseException) -> None:
        sync_dir = getattr(getattr(self._run, "settings", None), "sync_dir", None)
        if not sync_dir:
            return
        note = {"run_id": run_id, "lost_from_step": step, "error": f"{type(error).__name__}: {error}"}
        note["time"] = time.time()  # type: ignore[assignment]
        try:
            with open(os.path.join(sync_dir, LOSS_NOTE), "w", encoding="utf-8") as f:
                json.dump(note, f)
        except OSError as e:
            logger.warning("could not note the loss of run %s's service in %s: %s", run_id, sync_dir, e)


def survive_service_loss(run: Any) -> bool:
    """Make ``run`` drop what it is sent once its service has died, after one warning (see the module).

    Changes this run object only. False where this wandb's run has no interface of the expected shape (the run
    is left as it is).
    """
    interface = getattr(run, "_interface", None)
    publish = getattr(interface, "_publish", None)
    if interface is None or not callable(publish):
        return False
    loss = _Loss(run)

    def guarded_publish(record: Any, *, nowait: bool = False) -> None:
        if loss.lost:
            return
        try:
            publish(record, nowait=nowait)
        except OSError as e:  # ConnectionResetError, BrokenPipeError: the service's socket is gone
            loss.happened(e)

    interface._publish = guarded_publish
    return True
