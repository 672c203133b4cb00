"""Run one Flyte task the way a cluster pod does (remote-mode TaskContext, its own process), for the paths where
parent and child tasks live in different processes."""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
from typing import Any


def _pod(
    conn: Any,
    pickled: bytes,
    inputs: dict[str, Any],
    run_name: str,
    action: str,
    ctx: dict[str, str],
    env: dict[str, str],
) -> None:
    import asyncio

    import cloudpickle
    import flyte

    from flyteplugins_wandb.local import pod_context

    os.environ.update(env)
    root = tempfile.mkdtemp(prefix="pod-")
    warnings = _Collected()
    logging.getLogger("flyteplugins_wandb").addHandler(warnings)
    try:
        task = cloudpickle.loads(pickled)
        flyte.init(root_dir=root)

        async def execute() -> Any:
            with pod_context(run_name, action, root=root, custom_context=ctx, project="p", version="v1"):
                return await task.execute(**inputs)

        conn.send(("ok", asyncio.run(execute()), warnings.messages))
    except BaseException as e:
        conn.send(("error", f"{type(e).__name__}: {e}", warnings.messages))


class _Collected(logging.Handler):
    """The plugin's warnings in the pod, sent back with its result."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_as_pod(
    task: Any,
    *,
    run_name: str,
    action_name: str,
    context: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    warnings: list[str] | None = None,
    **inputs: Any,
) -> tuple[str, Any]:
    """Execute ``task`` in a fresh spawned process under a remote-mode context; returns ("ok", output) or
    ("error", message). The plugin's warnings in the pod are appended to ``warnings`` when it is given.

    ``timeout`` is a hang guard, generous for a loaded machine."""
    import cloudpickle

    mp = multiprocessing.get_context("spawn")
    parent, child = mp.Pipe(duplex=False)
    proc = mp.Process(
        target=_pod,
        args=(child, cloudpickle.dumps(task), inputs, run_name, action_name, dict(context or {}), dict(env or {})),
    )
    # The pod's environment must be there when its interpreter starts (PYTHONPATH, sitecustomize fault hooks),
    # not only once _pod runs: spawn copies this process's environment at start.
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        proc.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    child.close()
    try:
        if not parent.poll(timeout):
            raise TimeoutError(f"task {task.name} did not finish within {timeout}s")
        status, result, messages = parent.recv()
        if warnings is not None:
            warnings.extend(messages)
        return status, result
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
