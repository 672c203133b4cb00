"""One W&B service (wandb-core) per node, owned by the process that launches the workers.

By default each process that calls ``wandb.init`` starts its own wandb-core, as its child: a worker killed abruptly
(OOM, segfault, NCCL abort) takes its service with it, and whatever that service had not yet written is lost. A
detached service started by the pod process before the workers, which they join through ``WANDB_SERVICE``,
outlives them: it keeps writing what a dead worker sent, and marks that worker's run failed when it is stopped.

Three things make this work on wandb 0.31, all feature-detected (an older or newer wandb without them makes each
worker keep its own service, after one warning):

- start: ``wandb.sdk.lib.service.service_process.start_detached`` (what ``wandb beta core start`` runs);
- stop: an ``inform_teardown`` request with a non-zero exit code (what ``wandb beta core stop`` sends): streams
  still open then belong to dead writers, so their runs end as failed rather than finished;
- a restarted worker: the service still holds the dead writer's stream ("run ID ... is in use"), so the new worker
  attaches to it, ends it as failed and releases it, then opens the run again (:func:`open_run`).

wandb-core keys its streams by run id: several writers of one shared-mode run cannot join one service. Such
layouts keep a service per process (:func:`layout_shares_runs`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Final, TypeVar

from .. import _keys as keys

__all__ = [
    "SERVICE_ENV",
    "NodeService",
    "node_service",
    "open_run",
    "release_stale_stream",
    "service_reachable",
]

logger = logging.getLogger("flyteplugins_wandb")

T = TypeVar("T")

SERVICE_ENV: Final = "WANDB_SERVICE"
"""wandb's variable: a process that has it joins that service instead of starting its own."""
IDLE_TIMEOUT: Final = "10m"
"""The service ends by itself after this long without clients, should the pod process die without stopping it."""
_ABANDONED_EXIT_CODE: Final = 1
"""Exit code given to runs whose writer died without finishing them."""
_OFF: Final = frozenset({"0", "false", "no", "off"})
_TOKEN = re.compile(r"\d+-\d+-(?:unix-(?P<path>.+)|tcp-localhost-(?P<port>\d+))")


@dataclass(frozen=True)
class NodeService:
    """The W&B service this node's workers join."""

    token: str
    """The ``WANDB_SERVICE`` value."""
    owned: bool
    """Started here, and stopped here when the workers have ended; False for a service the user started."""


def _start_detached() -> str:
    """Start a detached wandb-core and return its token; raises when wandb cannot (see the module docstring)."""
    import wandb
    from wandb.sdk.lib.service import service_process

    proc = service_process.start_detached(wandb.Settings(), idle_timeout=IDLE_TIMEOUT)
    return str(proc.token.env_value)


def service_reachable(token: str) -> bool | None:
    """Whether the service named by ``token`` still accepts connections; None for a token this cannot read."""
    m = _TOKEN.fullmatch(token)
    if m is None:
        return None
    address: str | tuple[str, int]
    if m["path"] is not None:
        address = m["path"]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address = ("127.0.0.1", int(m["port"]))
    try:
        sock.settimeout(1.0)
        sock.connect(address)
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _stop(token: str, timeout: float) -> None:
    """Ask the service to end (open streams end as failed) and wait up to ``timeout`` seconds for it to go."""
    from wandb.proto import wandb_server_pb2 as spb
    from wandb.sdk.lib import asyncio_manager
    from wandb.sdk.lib.service import service_token

    parsed = service_token.UnixServiceToken.from_env_string(token) or service_token.TCPServiceToken.from_env_string(
        token
    )
    if parsed is None:
        raise ValueError(f"cannot read the W&B service token {token!r}")
    asyncer = asyncio_manager.AsyncioManager()
    asyncer.start()
    try:
        client = parsed.connect(asyncer=asyncer)

        async def teardown() -> None:
            # wandb's generated protobuf modules carry no type information.
            request = spb.ServerInformTeardownRequest(exit_code=_ABANDONED_EXIT_CODE)  # type: ignore[attr-defined]
            await client.publish(spb.ServerRequest(inform_teardown=request))  # type: ignore[attr-defined]
            await client.close()

        asyncer.run(teardown)
    finally:
        asyncer.join()
    # The service writes what it holds, then exits; its socket refuses connections from then on.
    deadline = time.monotonic() + timeout
    while service_reachable(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    if service_reachable(token):
        logger.warning(
            "the node's W&B service had not ended %.0fs after it was asked to; it ends by itself after %s idle",
            timeout,
            IDLE_TIMEOUT,
        )


@contextlib.contextmanager
def node_service(
    *, stop_timeout: float, environ: MutableMapping[str, str] = os.environ, share: bool = True
) -> Iterator[NodeService | None]:
    """One W&B service for the processes started inside this block, which find it in ``WANDB_SERVICE``.

    A service the user started (``WANDB_SERVICE`` already set) is used and left running. Otherwise one is started
    here and stopped when the block ends, after at most ``stop_timeout`` seconds of flushing. Where it cannot be
    started, the block runs without one (each worker then starts its own) after one warning, and yields None.

    ``share=False`` (a layout whose writers share a run, which one service cannot hold) hides any service from the
    block instead, and yields None. ``FLYTEPLUGINS_WANDB_NODE_SERVICE=0`` turns the node service off.
    """
    existing = environ.get(SERVICE_ENV)
    if environ.get(keys.NODE_SERVICE_ENV, "").strip().lower() in _OFF:
        yield None  # the user's choice: per-process services, as wandb does by default
        return
    if not share:
        with _hidden(environ):
            yield None
        return
    if existing:
        yield NodeService(existing, owned=False)
        return
    try:
        token = _start_detached()
    except Exception as e:  # any failure here only costs the node service, never the task
        logger.warning(
            "could not start one W&B service for this node (%s: %s); each worker starts its own, and a worker "
            "killed abruptly loses what its service had not written",
            type(e).__name__,
            e,
        )
        yield None
        return
    environ[SERVICE_ENV] = token
    try:
        yield NodeService(token, owned=True)
    finally:
        if environ.get(SERVICE_ENV) == token:
            del environ[SERVICE_ENV]
        try:
            _stop(token, stop_timeout)
        except Exception as e:
            logger.warning(
                "stopping the node's W&B service failed (%s: %s); it ends by itself after %s idle",
                type(e).__name__,
                e,
                IDLE_TIMEOUT,
            )


@contextlib.contextmanager
def _hidden(environ: MutableMapping[str, str]) -> Iterator[None]:
    saved = environ.pop(SERVICE_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            environ[SERVICE_ENV] = saved


def release_stale_stream(run_id: str) -> bool:
    """End run ``run_id``'s stream in the service named by ``WANDB_SERVICE`` as failed, and release it, so that the
    run can be opened again. For a writer that died without finishing its run. False where this wandb cannot."""
    from wandb.sdk.lib import asyncio_manager
    from wandb.sdk.lib.service import service_token
    from wandb.sdk.lib.service.service_connection import ServiceConnection

    token = service_token.from_env()
    if token is None:
        return False
    asyncer = asyncio_manager.AsyncioManager()
    asyncer.start()
    try:
        client = token.connect(asyncer=asyncer)
        try:
            conn = ServiceConnection(asyncer=asyncer, client=client, proc=None)
            _, interface = conn.inform_attach(run_id)
            interface.deliver_exit(_ABANDONED_EXIT_CODE).wait_or(timeout=30)
            conn.inform_finish(run_id)
        finally:
            asyncer.run(client.close)
    finally:
        asyncer.join()
    return True


def _in_use(e: BaseException, run_id: str) -> bool:
    return "is in use" in str(e) and run_id in str(e)


def open_run(init: Callable[[], T], run_id: str, *, may_release: bool, timeout: float = 30.0) -> T:
    """``init()``; where the service still holds ``run_id``'s stream for a writer that died (an elastic restart or
    a Flyte retry joining the same service), end that stream as failed and open the run again.

    ``may_release`` must be False where another live writer can hold the same run id (shared mode): its stream is
    not stale, and the error propagates.
    """
    try:
        return init()
    except Exception as e:
        if not may_release or not _in_use(e, run_id) or not os.environ.get(SERVICE_ENV):
            raise
        logger.warning("run %s is still held by a writer that died; ending that writer's part as failed", run_id)
        try:
            released = release_stale_stream(run_id)
        except Exception as release_error:
            raise e from release_error
        if not released:
            raise
    # The release is asynchronous in the service: the run id frees up within moments.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return init()
        except Exception as e:
            if not _in_use(e, run_id) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
