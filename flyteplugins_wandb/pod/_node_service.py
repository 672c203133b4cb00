"""One W&B service (wandb-core) per node, owned by the process that launches the workers.

By default each process that calls ``wandb.init`` starts its own wandb-core, as its child: a worker killed abruptly
(OOM, segfault, NCCL abort) takes its service with it, and whatever that service had not yet written is lost. A
detached service started by the pod process for its workers, which they join through ``WANDB_SERVICE``,
outlives them: it keeps writing what a dead worker sent, and marks that worker's run failed when it is stopped.

Three things make this work on wandb 0.31, all feature-detected (an older or newer wandb without them makes each
worker keep its own service, after one warning):

- start: ``wandb.sdk.lib.service.service_process.start_detached`` (what ``wandb beta core start`` runs);
- stop: an ``inform_teardown`` request with a non-zero exit code (what ``wandb beta core stop`` sends): streams
  still open then belong to dead writers, so their runs end as failed rather than finished;
- a restarted worker: the service still holds the dead writer's stream ("run ID ... is in use"), so the new worker
  attaches to it, ends it as failed and releases it, then opens the run again (:func:`open_run`).

wandb-core keys its streams by run id: several writers of one shared-mode run cannot join one service. For such
a layout the pod starts one detached service per writer of the node instead (:func:`writer_services`); each worker
joins the one of its local rank (:func:`join_writer_service`), so a killed writer's rows survive there too, and
its restart can take its stream over (no other writer uses that service).

The pod starts them beside its workers rather than before (:func:`started_beside_workers`): importing wandb and
starting wandb-core take the pod about 0.7 s, while its workers spend longer starting Python, torch and the task.
The workers learn the services from a hand-over file once they are up (:func:`join_pod_services`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from .. import _keys as keys

__all__ = [
    "SERVICE_ENV",
    "WRITER_SERVICES_ENV",
    "NodeService",
    "node_service",
    "open_run",
    "join_pod_services",
    "join_writer_service",
    "release_stale_stream",
    "service_reachable",
    "started_beside_workers",
    "writer_services",
]

logger = logging.getLogger("flyteplugins_wandb")

T = TypeVar("T")

SERVICE_ENV: Final = "WANDB_SERVICE"
"""wandb's variable: a process that has it joins that service instead of starting its own."""
WRITER_SERVICES_ENV: Final = "FLYTEPLUGINS_WANDB_WRITER_SERVICES"
"""Set by the pod for its workers where each writer has its own service: the tokens, by local rank, space-separated."""
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
    *, stop_timeout: float, environ: MutableMapping[str, str] = os.environ
) -> Iterator[NodeService | None]:
    """One W&B service for the processes started inside this block, which find it in ``WANDB_SERVICE``.

    A service the user started (``WANDB_SERVICE`` already set) is used and left running. Otherwise one is started
    here and stopped when the block ends, after at most ``stop_timeout`` seconds of flushing. Where it cannot be
    started, the block runs without one (each worker then starts its own) after one warning, and yields None.
    ``FLYTEPLUGINS_WANDB_NODE_SERVICE=0`` turns the node service off.
    """
    existing = environ.get(SERVICE_ENV)
    if _turned_off(environ):
        yield None  # the user's choice: per-process services, as wandb does by default
        return
    if existing:
        yield NodeService(existing, owned=False)
        return
    with _started(1, stop_timeout) as services:
        if not services:
            yield None
            return
        environ[SERVICE_ENV] = services[0].token
        try:
            yield services[0]
        finally:
            if environ.get(SERVICE_ENV) == services[0].token:
                del environ[SERVICE_ENV]


@contextlib.contextmanager
def writer_services(
    count: int, *, stop_timeout: float, environ: MutableMapping[str, str] = os.environ
) -> Iterator[tuple[NodeService, ...]]:
    """One W&B service per writer of this node (``count`` of them), for a layout whose writers share a run: the
    workers find them in ``FLYTEPLUGINS_WANDB_WRITER_SERVICES`` and each joins its own (:func:`join_writer_service`).

    A service the user named in ``WANDB_SERVICE`` is hidden from the block (it could hold only one writer of the
    run). Where they cannot be started, or the node service is turned off, yields ``()`` and each worker starts its
    own service, as wandb does by default. All are stopped when the block ends.
    """
    with _hidden(environ):
        if _turned_off(environ):
            yield ()
            return
        with _started(count, stop_timeout) as services:
            if services:
                environ[WRITER_SERVICES_ENV] = " ".join(s.token for s in services)
            try:
                yield services
            finally:
                environ.pop(WRITER_SERVICES_ENV, None)


@contextlib.contextmanager
def started_beside_workers(
    services: Callable[[MutableMapping[str, str]], contextlib.AbstractContextManager[Any]],
    handover: str,
    environ: MutableMapping[str, str] = os.environ,
) -> Iterator[None]:
    """Run ``services(env)`` (:func:`node_service` or :func:`writer_services` on a copy ``env`` of ``environ``)
    in a thread while the block starts the workers, instead of before them.

    ``environ`` gets ``FLYTEPLUGINS_WANDB_SERVICE_HANDOVER=<handover>`` at once; once the services are up, what they
    changed in ``env`` is written to that file (atomically), for :func:`join_pod_services` in the workers. When the
    block ends, it waits for the start to end and then stops the services, as ``services`` does.
    """
    done = threading.Event()

    def own_services() -> None:
        before = dict(environ)
        env = dict(before)
        try:
            with services(env):
                _write_handover(
                    handover, {k: env.get(k) for k in set(env) | set(before) if env.get(k) != before.get(k)}
                )
                done.wait()
        except Exception as e:  # never the task's failure: the workers start their own services
            logger.warning("the node's W&B services failed (%s: %s)", type(e).__name__, e)
        finally:
            if not os.path.exists(handover):
                _write_handover(handover, {})

    thread = threading.Thread(target=own_services, name="flyteplugins-wandb: node service", daemon=True)
    environ[keys.SERVICE_HANDOVER_ENV] = handover
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        environ.pop(keys.SERVICE_HANDOVER_ENV, None)


def _write_handover(path: str, changes: dict[str, str | None]) -> None:
    with open(f"{path}.tmp", "w", encoding="utf-8") as f:
        json.dump(changes, f)
    os.replace(f"{path}.tmp", path)


def join_pod_services(environ: MutableMapping[str, str], timeout: float) -> None:
    """In a worker, before wandb connects to a service: take the services the pod started beside the workers (see
    :func:`started_beside_workers`), waiting at most ``timeout`` seconds for them to be up; without them (no
    hand-over, or none in time: one warning) the worker starts its own, as wandb does by default."""
    path = environ.get(keys.SERVICE_HANDOVER_ENV)
    if not path:
        return
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            logger.warning("the pod's W&B service was not up after %.0fs; this worker starts its own", timeout)
            return
        time.sleep(0.02)
    with open(path, encoding="utf-8") as f:
        changes = json.load(f)
    for name, value in changes.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value


def join_writer_service(environ: MutableMapping[str, str]) -> bool:
    """In a worker: join the service the pod started for this local rank (see :func:`writer_services`), before
    wandb connects to one. True where this process has a service of its own, which no other writer uses."""
    tokens = environ.get(WRITER_SERVICES_ENV, "").split()
    try:
        local_rank = int(environ.get(keys.LOCAL_RANK, ""))
    except ValueError:
        return False
    if not 0 <= local_rank < len(tokens):
        return False
    environ[SERVICE_ENV] = tokens[local_rank]
    return True


def _turned_off(environ: MutableMapping[str, str]) -> bool:
    return environ.get(keys.NODE_SERVICE_ENV, "").strip().lower() in _OFF


@contextlib.contextmanager
def _started(count: int, stop_timeout: float) -> Iterator[tuple[NodeService, ...]]:
    """``count`` detached services, started side by side and stopped (side by side) when the block ends; ``()``
    after one warning where any cannot be started (those that did are stopped at once)."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        attempts = [pool.submit(_start_detached) for _ in range(count)]
    tokens = [a.result() for a in attempts if a.exception() is None]
    errors = [e for a in attempts if (e := a.exception()) is not None]
    if errors:
        _stop_all(tokens, stop_timeout)
        logger.warning(
            "could not start one W&B service for this node (%s: %s); each worker starts its own, and a worker "
            "killed abruptly loses what its service had not written",
            type(errors[0]).__name__,
            errors[0],
        )
        yield ()
        return
    try:
        yield tuple(NodeService(t, owned=True) for t in tokens)
    finally:
        _stop_all(tokens, stop_timeout)


def _stop_all(tokens: list[str], stop_timeout: float) -> None:
    def stop(token: str) -> None:
        try:
            _stop(token, stop_timeout)
        except Exception as e:  # a service already gone (killed) is the usual case here
            logger.warning(
                "stopping the node's W&B service failed (%s: %s); it ends by itself after %s idle",
                type(e).__name__,
                e,
                IDLE_TIMEOUT,
            )

    if tokens:
        with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
            list(pool.map(stop, tokens))


@contextlib.contextmanager
def _hidden(environ: MutableMapping[str, str]) -> Iterator[None]:
    saved = environ.pop(SERVICE_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            environ[SERVICE_ENV] = saved


def release_stale_stream(run_id: str) -> int | None:
    """End run ``run_id``'s stream in the service named by ``WANDB_SERVICE`` as failed, and release it, so that the
    run can be opened again. For a writer that died without finishing its run.

    Returns the step the dead writer's next row would have had (0 where the service could not say), or None where
    this wandb cannot release a stream."""
    from wandb.sdk.lib import asyncio_manager
    from wandb.sdk.lib.service import service_token
    from wandb.sdk.lib.service.service_connection import ServiceConnection

    token = service_token.from_env()
    if token is None:
        return None
    asyncer = asyncio_manager.AsyncioManager()
    asyncer.start()
    try:
        client = token.connect(asyncer=asyncer)
        try:
            conn = ServiceConnection(asyncer=asyncer, client=client, proc=None)
            _, interface = conn.inform_attach(run_id)
            step = _next_step(interface)
            interface.deliver_exit(_ABANDONED_EXIT_CODE).wait_or(timeout=30)
            conn.inform_finish(run_id)
        finally:
            asyncer.run(client.close)
    finally:
        asyncer.join()
    return step


def _next_step(interface: Any) -> int:
    """The step of the next row of the stream ``interface`` writes to, as wandb-core counts it; 0 if unknown."""
    try:
        return int(interface.deliver_history_step().wait_or(timeout=30).step)
    except Exception as e:  # only the continuation of the steps is lost
        logger.warning("could not read the step of a dead writer's run (%s: %s)", type(e).__name__, e)
        return 0


def _in_use(e: BaseException, run_id: str) -> bool:
    return "is in use" in str(e) and run_id in str(e)


def open_run(init: Callable[[], T], run_id: str, *, may_release: bool, timeout: float = 30.0) -> tuple[T, int]:
    """``init()``; where the service still holds ``run_id``'s stream for a writer that died (an elastic restart or
    a Flyte retry joining the same service), end that stream as failed and open the run again.

    Returns the run and the step its rows must continue from: the dead writer's next step where one was taken
    over, else 0. ``may_release`` must be False where another live writer can hold the same run id in this service
    (a shared run's writers on one service): its stream is not stale, and the error propagates.
    """
    try:
        return init(), 0
    except Exception as e:
        if not may_release or not _in_use(e, run_id) or not os.environ.get(SERVICE_ENV):
            raise
        logger.warning("run %s is still held by a writer that died; ending that writer's part as failed", run_id)
        try:
            step = release_stale_stream(run_id)
        except Exception as release_error:
            raise e from release_error
        if step is None:
            raise
    # The release is asynchronous in the service: the run id frees up within moments.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return init(), step
        except Exception as e:
            if not _in_use(e, run_id) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
