"""Run a Flyte ``Elastic`` task on this machine with real torch elastic workers, to see distributed tracking work
before spending GPU hours.

``flyte.run`` in local mode calls an Elastic task's function once, in one process, so every layout looks like a
single process there. :func:`run_elastic_locally` instead starts ``nnodes`` elastic agents on this machine (each a
simulated node with ``nproc_per_node`` workers) that rendezvous on localhost, exactly as the pods of a cluster do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
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
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from .._keys import MANIFEST_ENV
from ..planning import elastic_node_count
from ..pod import RunRecord, node_service, read_manifest
from ..task import POD_OPTIONS

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
    run_files: tuple[str, ...] = ()
    """The W&B run files each node saved when its workers ended (offline runs, or all with ``download_logs``),
    copied out of the launch's temporary storage; ``python -m flyteplugins_wandb.sync`` syncs one. Yours to
    delete."""

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


class _CallerStdio:
    """This process's stdout and stderr (file descriptors 1 and 2) as they are now, for an agent to write to: a fork
    server's children inherit the server's, which are the caller's as they were when the server started (before a
    notebook cell's or a test's capture of them, say)."""

    def __init__(self, fds: tuple[Any, ...] = ()) -> None:
        self._fds = fds

    def __reduce__(self) -> tuple[Any, ...]:
        from multiprocessing import reduction

        # Runs while the agent's arguments are pickled for it: the descriptors travel with them. One this process
        # has closed stays as the agent has it.
        return (_CallerStdio, (tuple(reduction.DupFd(fd) if _is_open(fd) else None for fd in (1, 2)),))

    def take(self) -> None:
        """In the agent: write to the caller's stdout and stderr."""
        for target, fd in zip((1, 2), self._fds, strict=False):  # () where not handed over: nothing to take
            received = fd.detach() if fd is not None else target
            if received != target:
                os.dup2(received, target)
                os.close(received)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _agent(
    conn: Any,
    stdio: _CallerStdio,
    pickled_task: bytes,
    inputs: dict[str, Any],
    env: dict[str, str],
    run_name: str,
    action_name: str,
    custom_context: dict[str, str],
    root: str,
    node: int,
) -> None:
    """One simulated node: an elastic agent running the task in remote mode, as a Flyte pod would, with one W&B
    service for its workers. ``env`` is the agent's whole environment (see :func:`_agent_processes`)."""
    import asyncio

    stdio.take()
    os.environ.clear()
    os.environ.update(env)
    # Torch elastic writes each worker's exception to an error file under a temporary directory of the agent's:
    # keep it under the launch's root, where the launcher finds it even if this agent dies without a word.
    tempfile.tempdir = _node_tmp(root, node)
    try:
        import cloudpickle
        import flyte

        task = cloudpickle.loads(pickled_task)
        flyte.init(root_dir=root)

        async def execute() -> Any:
            with pod_context(run_name, action_name, root=root, custom_context=custom_context):
                if hasattr(type(task), POD_OPTIONS):  # @wandb_init's own hook holds the node's service
                    return await task.execute(**inputs)
                # A task that opens its runs itself: its workers still share one service, as a pod's would.
                with node_service(stop_timeout=60.0):
                    return await task.execute(**inputs)

        reply: tuple[Any, ...] = ("ok", asyncio.run(execute()))
    except BaseException as e:  # report everything, KeyboardInterrupt included, then exit
        _hold_signals()
        reply = ("error", f"{type(e).__name__}: {e}", traceback.format_exc())
    _report(conn, reply)


def _hold_signals() -> None:
    # Torch's agent turns SIGTERM and SIGINT into an exception wherever the main thread is. A second one (the
    # launcher stopping a slow node, Ctrl-C reaching the whole process group) that lands while the result is
    # being sent loses the result: the launcher would see a node that exited without a word.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def _report(conn: Any, reply: tuple[Any, ...]) -> None:
    """Send this node's result, uninterruptibly; afterwards SIGTERM stops the agent again (if it lingers)."""
    _hold_signals()
    try:
        try:
            conn.send(reply)
        except Exception as e:  # an output that cannot be pickled, say: the launcher must still hear of it
            conn.send(("error", f"the result of the node could not be sent ({type(e).__name__}: {e})", ""))
    finally:
        conn.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _node_tmp(root: str, node: int) -> str:
    return os.path.join(root, f"node-{node}-tmp")


def _first_worker_error(root: str) -> tuple[str, str] | None:
    """The exception of the worker that failed first in the launch under ``root`` (message, traceback), from the
    error files torch elastic writes; None if no worker recorded one."""
    found = []
    for path in glob.glob(os.path.join(root, "node-*-tmp", "**", "error.json"), recursive=True):
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)["message"]
            found.append((os.stat(path).st_mtime_ns, path, record))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not a worker's record: the other files still tell
    if not found:
        return None
    _, path, record = min(found, key=lambda f: f[0])
    if isinstance(record, str):  # a worker that died by a signal leaves a plain message
        return record, ""
    node = path[len(root) :].split(os.sep)[1].removeprefix("node-").removesuffix("-tmp")
    rank = os.path.basename(os.path.dirname(path))
    message = f"node {node}, local rank {rank}: {record.get('message', '?')}"
    return message, str(record.get("extraInfo", {}).get("py_callstack", ""))


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
    ``wandb_config(...)``); the task environment's ``env_vars`` are set for the agents and workers, as in a pod,
    and ``env`` adds to them; ``attempt``
    sets the Flyte attempt number (0 for the first, as Flyte counts). Returns rank 0's output and the W&B runs
    the workers opened.

    Raises TypeError for a task that is not an Elastic task, and :class:`LocalElasticError` if any node fails or
    ``timeout`` seconds pass; every agent and worker is stopped before it returns or raises, Ctrl-C included.
    The script that calls this needs an ``if __name__ == "__main__":`` guard, as the agents import it again. The
    agents start from multiprocessing's fork server (one per calling process, which ends with it), which has
    imported torch once for every launch.
    """
    local_task = _local_task(task, nnodes, nproc_per_node, max_restarts)
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    import cloudpickle

    run_name = run_name or f"local-{uuid.uuid4().hex[:8]}"
    context = dict(custom_context or {})
    root = tempfile.mkdtemp(prefix="flyte-elastic-")
    manifest = os.path.join(root, "manifest")
    os.makedirs(manifest)
    agent_env = {
        **os.environ,  # the agents' whole environment: a fork server's children do not inherit this process's
        **(getattr(task, "env_vars", None) or {}),  # what Flyte sets in the task's pods
        **(env or {}),
        "PET_RDZV_ENDPOINT": f"127.0.0.1:{_free_port()}",
        MANIFEST_ENV: manifest,
        "FLYTE_ATTEMPT_NUMBER": str(attempt),
    }
    mp = _agent_processes()
    pickled = cloudpickle.dumps(local_task)
    nodes = local_task.plugin_config.nnodes
    try:
        with _agents(mp, nodes, pickled, inputs, agent_env, run_name, action_name, context, root, timeout) as out:
            output = out
        return LocalElasticResult(
            output=output,
            runs=tuple(read_manifest(manifest)),
            links=_rendered_links(task, run_name, action_name, context),
            run_name=run_name,
            action_name=action_name,
            report=_read_report(root),
            run_files=_keep_run_files(manifest),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


_PRELOADED = ["torch.distributed.launcher.api"]
"""What every agent imports first (Elastic's launcher: torch), imported once by the fork server. Not flyte: its
import starts a thread (the fork server's children would lack it)."""


def _agent_processes() -> Any:
    """Where the agents start: multiprocessing's fork server, which imports torch once (:data:`_PRELOADED`), so
    that each agent of each launch starts without a fresh interpreter's imports (a 1 x 2 launch: 27% less wall,
    18% less CPU; benchmarks/README.md); spawn where
    the platform has no fork server. Either way the agent re-imports the caller's ``__main__`` as spawn does, and
    gets this process's working directory and (from ``_agent``'s ``env``) its environment.

    The fork server is Python's own: it starts with the first launch and ends with this process. The preload
    applies if no fork server is running yet in this process."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return _spawned_agents()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOADED)
    return context


def _spawned_agents() -> Any:
    """Agents from fresh interpreters (spawn): where there is no fork server, and for what must run at an agent's
    interpreter start (a benchmark's baseline, a test's start-up hook)."""
    return multiprocessing.get_context("spawn")


def _local_task(task: Any, nnodes: int | None, nproc_per_node: int | None, max_restarts: int | None) -> Any:
    """A copy of ``task`` whose ``Elastic`` settings are this launch's: its node and process counts (the task's own
    where not given), ``max_restarts`` where given, and a short monitor interval: the agents see their workers
    end within a quarter of a second instead of the ``Elastic`` default of 3 s, which a cluster's pods can afford
    and a launch on a laptop should not pay."""
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
    changes: dict[str, Any] = {"nnodes": nodes, "nproc_per_node": procs, "monitor_interval": 0.25}
    if max_restarts is not None:
        changes["max_restarts"] = max_restarts
    return dataclasses.replace(task, plugin_config=dataclasses.replace(config, **changes))


def _rendered_links(task: Any, run_name: str, action_name: str, context: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The task's Flyte links as (name, url), rendered as Flyte renders them for this launch's action."""
    return tuple(
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


def _read_report(root: str) -> str | None:
    # Where pod_context points the action's outputs; Flyte names the report file itself.
    from flyte._internal.runtime import io

    path = io.report_path(os.path.join(root, "out"))
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _keep_run_files(manifest: str) -> tuple[str, ...]:
    """Copy the directories the nodes saved out of the launch's storage, which is deleted."""
    kept = []
    for note in sorted(Path(manifest).glob("saved-*.txt")):
        for saved in note.read_text(encoding="utf-8").split():
            target = tempfile.mkdtemp(prefix="wandb-run-files-")
            shutil.copytree(saved, target, dirs_exist_ok=True)
            kept.append(target)
    return tuple(kept)


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
        for node in range(nodes):
            os.makedirs(_node_tmp(root, node))
            parent, child = mp.Pipe(duplex=False)
            p = mp.Process(
                target=_agent,
                args=(child, _CallerStdio(), pickled, inputs, env, run_name, action_name, context, root, node),
                daemon=False,
            )
            p.start()
            child.close()
            procs.append(p)
            conns.append(parent)
        results = _collect(procs, conns, root, timeout)
        # Global rank 0 runs on the node that rendezvous ranked first; the others return None.
        finished = True
        yield next((r for r in results if r is not None), None)
    finally:
        _stop(procs, grace=30.0 if finished else 0.0)


def _collect(procs: list[Any], conns: list[Any], root: str, timeout: float) -> list[Any]:
    """Every node's output, or a LocalElasticError as soon as one node fails, exits without a word, or time runs out.

    Nodes are watched together, not in turn: when a worker on one node fails, the agents of the other nodes wait
    in torch's exit barrier (minutes), so waiting for them first would hide the failure behind a timeout. Every
    error leads with the first worker exception recorded in the launch, when there is one.
    """
    deadline = time.monotonic() + timeout
    results: dict[int, Any] = {}
    while len(results) < len(procs):
        pending = [i for i in range(len(procs)) if i not in results]
        watched = {conns[i]: i for i in pending} | {procs[i].sentinel: i for i in pending}
        ready = wait(list(watched), timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            raise _failure(f"the local elastic launch did not finish within {timeout:.0f}s", root)
        for i in sorted({watched[obj] for obj in ready}):
            # A node that exits right after reporting wakes us by its exit too: what it sent is still in the pipe.
            reply = None
            if conns[i].poll(0):
                with contextlib.suppress(EOFError):
                    reply = conns[i].recv()
            if reply is None:
                procs[i].join(5)
                raise _failure(f"node {i} exited without a result (exit code {procs[i].exitcode})", root)
            if reply[0] == "error":
                raise _failure(f"node {i} failed", root, reply[1], reply[2])
            results[i] = reply[1]
    return [results[i] for i in range(len(procs))]


def _failure(what: str, root: str, agent_error: str = "", agent_traceback: str = "") -> LocalElasticError:
    """The launch's error: what went wrong, then the first worker exception (the cause, where one was recorded),
    then the agent's own error; the tracebacks of both follow."""
    worker = _first_worker_error(root)
    lines = [what + (f": {agent_error}" if agent_error and worker is None else "")]
    tracebacks = [agent_traceback] if agent_traceback else []
    if worker is not None:
        lines.append(f"first worker error: {worker[0]}")
        if agent_error:
            lines.append(f"agent error: {agent_error.splitlines()[0]}")
        if worker[1]:
            tracebacks.append(f"first worker traceback:\n{worker[1]}")
    return LocalElasticError("\n".join(lines), "\n".join(tracebacks))


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
