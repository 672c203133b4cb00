"""Run a Flyte ``Elastic`` task on this machine with real torch elastic workers, to see distributed tracking work
before spending GPU hours.

``flyte.run`` in local mode calls an Elastic task's function once, in one process, so every layout looks like a
single process there. :func:`run_elastic_locally` instead starts ``nnodes`` elastic agents on this machine (each a
simulated node with ``nproc_per_node`` workers) that rendezvous on localhost, exactly as the pods of a cluster do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._keys import MANIFEST_ENV
from .._manifest import RunRecord, read_manifest
from .._topology import elastic_node_count

__all__ = ["LocalElasticError", "LocalElasticResult", "pod_context", "run_elastic_locally"]


class LocalElasticError(RuntimeError):
    """A local elastic launch failed; ``remote_traceback`` holds the agent's traceback."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message + (f"\n\nagent traceback:\n{remote_traceback}" if remote_traceback else ""))
        self.remote_traceback = remote_traceback


@dataclass(frozen=True)
class LocalElasticResult:
    """What a local elastic launch produced."""

    output: Any
    """The task's return value (global rank 0's, as on a cluster)."""
    runs: tuple[RunRecord, ...]
    """One record per process that opened (or attached to) a W&B run."""
    links: tuple[tuple[str, str], ...]
    """The task's Flyte links as (name, url), rendered for this launch."""
    run_name: str
    action_name: str
    report: str | None = None
    """The HTML of the Flyte report the task wrote (``report=True``: the "Weights & Biases" tab), None if none."""

    @property
    def run_ids(self) -> tuple[str, ...]:
        """The distinct W&B run ids, sorted."""
        return tuple(sorted({r.run_id for r in self.runs}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def pod_context(
    run_name: str,
    action_name: str,
    *,
    root: str,
    custom_context: Mapping[str, str] | None = None,
    project: str = "local",
    domain: str = "development",
    version: str = "local",
) -> Iterator[None]:
    """Make this process look like a Flyte pod running action ``action_name`` of run ``run_name``: a remote-mode
    TaskContext with ``custom_context`` as the run context and ``root`` for Flyte's local files."""
    import flyte.report
    from flyte._context import internal_ctx
    from flyte.models import ActionID, RawDataPath, TaskContext

    os.makedirs(os.path.join(root, "out"), exist_ok=True)  # Flyte writes the report there, without creating it
    tctx = TaskContext(
        action=ActionID(name=action_name, run_name=run_name, project=project, domain=domain, org="local"),
        version=version,
        raw_data_path=RawDataPath(path=os.path.join(root, "raw")),
        output_path=os.path.join(root, "out"),
        run_base_dir=root,
        report=flyte.report.Report(name=action_name),
        mode="remote",
        custom_context=dict(custom_context or {}),
    )
    with internal_ctx().replace_task_context(tctx):
        yield


def _agent(
    conn: Any,
    pickled_task: bytes,
    inputs: dict[str, Any],
    env: dict[str, str],
    run_name: str,
    action_name: str,
    custom_context: dict[str, str],
    root: str,
) -> None:
    """One simulated node: an elastic agent running the task in remote mode, as a Flyte pod would."""
    import asyncio

    import cloudpickle
    import flyte

    os.environ.update(env)
    try:
        task = cloudpickle.loads(pickled_task)
        flyte.init(root_dir=root)

        async def execute() -> Any:
            with pod_context(run_name, action_name, root=root, custom_context=custom_context):
                return await task.execute(**inputs)

        output = asyncio.run(execute())
        conn.send(("ok", output))
    except BaseException as e:  # report everything, KeyboardInterrupt included, then exit
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
    finally:
        conn.close()


def run_elastic_locally(
    task: Any,
    /,
    *,
    nnodes: int | None = None,
    nproc_per_node: int | None = None,
    custom_context: Mapping[str, str] | None = None,
    run_name: str | None = None,
    action_name: str = "a0",
    max_restarts: int | None = None,
    attempt: int = 0,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    **inputs: Any,
) -> LocalElasticResult:
    """Run an ``Elastic`` task with ``nnodes`` x ``nproc_per_node`` real worker processes on this machine.

    ``nnodes``/``nproc_per_node`` default to the task's own ``Elastic`` settings. Workers use the CPU unless your
    code picks a GPU; use the gloo backend. ``custom_context`` is the run context (for example
    ``wandb_config(...)``); ``env`` adds environment variables for the agents and workers; ``attempt``
    sets the Flyte attempt number (0 for the first, as Flyte counts). Returns rank 0's output and the W&B runs
    the workers opened.

    Raises TypeError for a task that is not an Elastic task, and :class:`LocalElasticError` if any node fails or
    ``timeout`` seconds pass; every agent and worker is stopped before it returns or raises, Ctrl-C included.
    The script that calls this needs an ``if __name__ == "__main__":`` guard, as the agents are spawned.
    """
    config: Any = getattr(task, "plugin_config", None)
    task_nodes = elastic_node_count(config)
    if task_nodes is None:
        raise TypeError(
            f"run_elastic_locally needs a task whose TaskEnvironment has plugin_config=Elastic(...), got {task!r}"
        )
    nodes = int(nnodes if nnodes is not None else task_nodes)
    procs = int(nproc_per_node if nproc_per_node is not None else config.nproc_per_node)
    if nodes < 1 or procs < 1:
        raise ValueError(f"nnodes and nproc_per_node must be >= 1, got {nodes} and {procs}")
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    changes: dict[str, Any] = {"nnodes": nodes, "nproc_per_node": procs, "monitor_interval": 1}
    if max_restarts is not None:
        changes["max_restarts"] = max_restarts
    local_task = dataclasses.replace(task, plugin_config=dataclasses.replace(config, **changes))

    import cloudpickle

    run_name = run_name or f"local-{uuid.uuid4().hex[:8]}"
    context = dict(custom_context or {})
    root = tempfile.mkdtemp(prefix="flyte-elastic-")
    manifest = os.path.join(root, "manifest")
    os.makedirs(manifest)
    agent_env = {
        **(env or {}),
        "PET_RDZV_ENDPOINT": f"127.0.0.1:{_free_port()}",
        MANIFEST_ENV: manifest,
        "FLYTE_ATTEMPT_NUMBER": str(attempt),
    }
    mp = multiprocessing.get_context("spawn")
    pickled = cloudpickle.dumps(local_task)
    try:
        with _agents(mp, nodes, pickled, inputs, agent_env, run_name, action_name, context, root, timeout) as out:
            output = out
        links = tuple(
            (
                link.name,
                link.get_link(
                    run_name=run_name,
                    project="local",
                    domain="development",
                    context=context,
                    parent_action_name="",
                    action_name=action_name,
                    pod_name="localhost",
                ),
            )
            for link in getattr(task, "links", ())
        )
        return LocalElasticResult(
            output=output,
            runs=tuple(read_manifest(manifest)),
            links=links,
            run_name=run_name,
            action_name=action_name,
            report=_read_report(root),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _read_report(root: str) -> str | None:
    # Where pod_context points the action's outputs; Flyte names the report file itself.
    from flyte._internal.runtime import io

    path = io.report_path(os.path.join(root, "out"))
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def _agents(
    mp: Any,
    nodes: int,
    pickled: bytes,
    inputs: dict[str, Any],
    env: dict[str, str],
    run_name: str,
    action_name: str,
    context: dict[str, str],
    root: str,
    timeout: float,
) -> Iterator[Any]:
    procs, conns = [], []
    finished = False
    try:
        for _ in range(nodes):
            parent, child = mp.Pipe(duplex=False)
            p = mp.Process(
                target=_agent,
                args=(child, pickled, inputs, env, run_name, action_name, context, root),
                daemon=False,
            )
            p.start()
            child.close()
            procs.append(p)
            conns.append(parent)
        deadline = time.monotonic() + timeout
        results: list[Any] = [None] * nodes
        for i, conn in enumerate(conns):
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise LocalElasticError(f"the local elastic launch did not finish within {timeout:.0f}s")
            try:
                results[i] = conn.recv()
            except EOFError:
                procs[i].join(5)
                raise LocalElasticError(f"node {i} exited without a result (exit code {procs[i].exitcode})") from None
        for i, r in enumerate(results):
            if r[0] == "error":
                raise LocalElasticError(f"node {i} failed: {r[1]}", r[2])
        # Global rank 0 runs on the node that rendezvous ranked first; the others return None.
        finished = True
        yield next((r[1] for r in results if r[1] is not None), None)
    finally:
        _stop(procs, grace=30.0 if finished else 0.0)


def _stop(procs: list[Any], grace: float) -> None:
    """Let agents that reported exit by themselves within ``grace`` seconds; stop the rest (an agent's SIGTERM
    handler stops its workers first), then kill what is still alive."""
    deadline = time.monotonic() + grace
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 15
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
        if p.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            p.join(5)
