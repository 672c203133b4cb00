"""A pod of its own, for the tests of the live copy: run ``python live_copy_pod.py <out dir> <root> <rows> <kind>``
and it executes :func:`logs_then_waits` (``kind`` ``elastic``: torch elastic workers below this process) or
:func:`plain_logs_then_waits` (``plain``: the body in this process) the way a cluster's pod does (remote-mode task
context), so that a test can kill the whole pod with SIGKILL. Each rank logs ``rows`` rows, writes
``logged-<rank>`` into the out dir, then waits forever. Imports nothing of pytest."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init

# No restarts: the test kills the pod, and nothing must come back.
one_node = flyte.TaskEnvironment(
    name="live_copy_1x2", plugin_config=Elastic(nnodes=1, nproc_per_node=2, max_restarts=0, monitor_interval=1)
)


def _log_then_wait(out_dir: str, rows: int) -> str:
    rank = int(os.environ.get("RANK", "0"))
    run = get_wandb_run()
    if run is not None:
        for i in range(rows):
            run.log({"i": i, "rank": rank})
    Path(out_dir, f"logged-{rank}").write_text("", encoding="utf-8")
    while True:  # training goes on until the pod is killed
        time.sleep(1)


@wandb_init(project="p", entity="e", run_mode="new")
@one_node.task
def logs_then_waits(out_dir: str, rows: int) -> str:
    return _log_then_wait(out_dir, rows)


plain = flyte.TaskEnvironment(name="live_copy_plain")


@wandb_init(project="p", entity="e")
@plain.task
def plain_logs_then_waits(out_dir: str, rows: int) -> str:
    return _log_then_wait(out_dir, rows)


def main(out_dir: str, root: str, rows: int, kind: str) -> None:
    from flyteplugins_wandb.local import pod_context

    flyte.init(root_dir=root)

    async def execute() -> None:
        with pod_context("R", "a0", root=root, project="p", version="v1"):
            task = logs_then_waits if kind == "elastic" else plain_logs_then_waits
            await task.execute(out_dir=out_dir, rows=rows)

    asyncio.run(execute())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
