"""Run one Flyte task the way a cluster pod does (remote-mode TaskContext, its own process), for the paths where
parent and child tasks live in different processes."""

from __future__ import annotations

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
    try:
        task = cloudpickle.loads(pickled)
        flyte.init(root_dir=root)

        async def execute() -> Any:
            with pod_context(run_name, action, root=root, custom_context=ctx, project="p", version="v1"):
                return await task.execute(**inputs)

        conn.send(("ok", asyncio.run(execute())))
    except BaseException as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))


def run_as_pod(
    task: Any,
    *,
    run_name: str,
    action_name: str,
    context: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    **inputs: Any,
) -> tuple[str, Any]:
    """Execute ``task`` in a fresh spawned process under a remote-mode context; returns ("ok", output) or
    ("error", message)."""
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
        return parent.recv()  # type: ignore[no-any-return]
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
