"""Start-up and shut-down order between the writers of a shared-mode run.

The W&B server expects the primary writer to create a run before the others attach, and the primary must not set
the final state while others still write. Torch elastic already runs a TCPStore on the agent (``MASTER_ADDR`` /
``MASTER_PORT``, ``TORCHELASTIC_USE_AGENT_STORE=True``); the writers meet there, so no extra service is needed.
Every wait is bounded. Without an agent store (a launcher other than torch elastic), writers start unordered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from .. import _keys as keys

__all__ = ["WriterRendezvous", "agent_store"]

logger = logging.getLogger("flyteplugins_wandb")

_READY: Final = b"ready"
_FAILED: Final = b"failed"


def agent_store(environ: Mapping[str, str], timeout: float, without: str) -> Any | None:
    """A client of the torch elastic agent's TCPStore, or None (with a warning ending in ``without``: what happens
    instead) where there is none to reach."""
    addr, port = environ.get(keys.MASTER_ADDR), environ.get(keys.MASTER_PORT)
    if environ.get(keys.TORCHELASTIC_USE_AGENT_STORE) != "True" or not addr or not port:
        # Without the agent's store, MASTER_PORT is where rank 0 hosts a store only once the user's code calls
        # init_process_group: connecting now would block until the timeout.
        logger.warning("no torch elastic agent store: %s", without)
        return None
    try:
        from torch.distributed import TCPStore  # type: ignore[attr-defined]

        return TCPStore(addr, int(port), is_master=False, timeout=timedelta(seconds=timeout))
    except (ImportError, RuntimeError, ValueError) as e:
        logger.warning("cannot reach the elastic store at %s:%s (%s): %s", addr, port, e, without)
        return None


class WriterRendezvous:
    """The writers of one shared run, meeting in the elastic agent's store under keys of their own."""

    def __init__(self, store: Any, prefix: str) -> None:
        self._store = store
        self._prefix = prefix

    @classmethod
    def connect(
        cls, environ: Mapping[str, str], run_id: str, restart_count: int, timeout: float
    ) -> WriterRendezvous | None:
        """Connect to the agent's store, or return None (with a warning) where there is none to reach."""
        store = agent_store(environ, timeout, f"shared-mode writers of {run_id} start without ordering")
        if store is None:
            return None
        # The restart count keeps a restarted worker group from reading the previous group's keys.
        return cls(store, f"flyteplugins_wandb/{run_id}/{restart_count}")

    def _key(self, name: str) -> str:
        return f"{self._prefix}/{name}"

    def announce_primary(self, ok: bool) -> None:
        self._store.set(self._key("primary"), _READY if ok else _FAILED)

    def wait_for_primary(self, timeout: float) -> bool | None:
        """True once the primary's run exists, False if it failed to start, None if it did not answer in time."""
        key = self._key("primary")
        try:
            self._store.wait([key], timedelta(seconds=timeout))
        except RuntimeError:  # the store raises RuntimeError (DistStoreError) on timeout
            return None
        return bool(self._store.get(key) == _READY)

    def writer_done(self) -> None:
        self._store.add(self._key("done"), 1)

    def wait_for_writers(self, others: int, timeout: float) -> int:
        """Wait until ``others`` writers have reported done, at most ``timeout`` seconds; return how many did."""
        deadline = time.monotonic() + timeout
        while True:
            done = int(self._store.add(self._key("done"), 0))
            if done >= others or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)

