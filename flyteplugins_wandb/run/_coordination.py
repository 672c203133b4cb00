"""Start-up and shut-down order between the writers of a shared-mode run.

The W&B server expects the primary writer to create a run before the others attach, and the primary must not set
the final state while others still write. Torch elastic already gives its workers a TCPStore (``MASTER_ADDR`` /
``MASTER_PORT``): the writers meet there (:func:`elastic_store`), so no extra service is needed. Every wait is
bounded. Without such a store (a launcher other than torch elastic), writers start unordered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from .. import _keys as keys

__all__ = ["WriterRendezvous", "elastic_store"]

logger = logging.getLogger("flyteplugins_wandb")

_READY: Final = b"ready"
_FAILED: Final = b"failed"


def elastic_store(environ: Mapping[str, str], scope: str, timeout: float, without: str) -> Any | None:
    """A store that every worker of this elastic restart reaches, its keys under ``flyteplugins_wandb/.../scope``;
    or None (with a warning ending in ``without``: what happens instead) where there is none to reach.

    Torch elastic gives the workers one of two stores at ``MASTER_ADDR:MASTER_PORT``:

    - the agent's (``TORCHELASTIC_USE_AGENT_STORE=True``, torch's default): one store for the whole job, restarts
      included, and nothing that names the restart alike on every node. The keys go under the restart count, which
      each node counts for itself: on one node that separates the restarts; across nodes it is the best there is
      (a node restarted only because another failed keeps its count).
    - a new one for every restart (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``), hosted by global rank 0 once the
      user's code calls ``init_process_group``. Rank 0 hosts it here instead, as a multi-tenant server that
      ``init_process_group`` in the same process then shares; nothing of a previous restart is in it.
    """
    addr, port = environ.get(keys.MASTER_ADDR), environ.get(keys.MASTER_PORT)
    mode = environ.get(keys.TORCHELASTIC_USE_AGENT_STORE)
    if mode not in ("True", "False") or not addr or not port:
        # Not a torch elastic worker: nobody is known to host a store at MASTER_PORT (connecting would block).
        logger.warning("no torch elastic store: %s", without)
        return None
    try:
        from torch.distributed import PrefixStore, TCPStore  # type: ignore[attr-defined]

        wait = timedelta(seconds=timeout)
        if mode == "True":
            store = TCPStore(addr, int(port), is_master=False, timeout=wait)
            restart = environ.get(keys.TORCHELASTIC_RESTART_COUNT, "0")
            return PrefixStore(f"flyteplugins_wandb/restart-{restart}/{scope}", store)
        return PrefixStore(f"flyteplugins_wandb/{scope}", _restart_store(addr, int(port), environ, wait))
    except (ImportError, RuntimeError, ValueError) as e:
        logger.warning("cannot reach the elastic store at %s:%s (%s): %s", addr, port, e, without)
        return None


_HOSTED: dict[int, Any] = {}
"""The restart's store where this process (global rank 0) hosts it, kept for the life of the process: the user's
process group may be using the same server."""


def _restart_store(addr: str, port: int, environ: Mapping[str, str], wait: timedelta) -> Any:
    from torch.distributed import TCPStore  # type: ignore[attr-defined]

    if environ.get(keys.RANK) != "0":
        return TCPStore(addr, port, is_master=False, timeout=wait)  # waits (bounded) for rank 0 to host it
    if port not in _HOSTED:
        # multi_tenant=True, as torch's env:// rendezvous asks for it, so that init_process_group joins this server
        _HOSTED[port] = TCPStore(addr, port, is_master=True, timeout=wait, multi_tenant=True, wait_for_workers=False)
    return _HOSTED[port]


class WriterRendezvous:
    """The writers of one shared run, meeting in torch elastic's store under keys of their own."""

    def __init__(self, store: Any) -> None:
        self._store = store  # a PrefixStore: the names below are this run's, in this restart

    @classmethod
    def connect(cls, environ: Mapping[str, str], run_id: str, timeout: float) -> WriterRendezvous | None:
        """Connect to torch elastic's store, or return None (with a warning) where there is none to reach."""
        store = elastic_store(environ, f"run/{run_id}", timeout, f"shared-mode writers of {run_id} start unordered")
        return None if store is None else cls(store)

    def announce_primary(self, ok: bool, why: str = "") -> None:
        """Tell the other writers that the run exists, or that it could not be created and ``why``."""
        self._store.set("primary", _READY if ok else _FAILED + b": " + why.encode("utf-8", "replace")[:2000])

    def primary_failure(self) -> str:
        """Why the primary could not create the run, as it said (after :meth:`wait_for_primary` said False)."""
        return bytes(self._store.get("primary")).removeprefix(_FAILED + b": ").decode("utf-8", "replace")

    def wait_for_primary(self, timeout: float) -> bool | None:
        """True once the primary's run exists, False if it failed to start, None if it did not answer in time."""
        key = "primary"
        try:
            self._store.wait([key], timedelta(seconds=timeout))
        except RuntimeError:  # the store raises RuntimeError (DistStoreError) on timeout
            return None
        return bool(self._store.get(key) == _READY)

    def writer_done(self) -> None:
        self._store.add("done", 1)

    def wait_for_writers(self, others: int, timeout: float) -> int:
        """Wait until ``others`` writers have reported done, at most ``timeout`` seconds; return how many did."""
        deadline = time.monotonic() + timeout
        while True:
            done = int(self._store.add("done", 0))
            if done >= others or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)
