"""One W&B service per node against one per process: peak memory of W&B's service processes on the node, and time
from the task's start to the slowest rank's first logged step, with 2 and 4 workers per node opening a run each
(``run_mode="new"``), measured alternately in this one run."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import flyte
from _common import PeakSampler, Row, offline_wandb, rss_bytes
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init
from flyteplugins_wandb._keys import NODE_SERVICE_ENV
from flyteplugins_wandb.local import run_elastic_locally

node = flyte.TaskEnvironment(name="bench-node-service", plugin_config=Elastic(nnodes=1, nproc_per_node=2))


@wandb_init(project="bench", run_mode="new")
@node.task
def first_logged_step(marker_dir: str, steps: int) -> int:
    """Log ``steps`` rows; note when the first was logged."""
    run = get_wandb_run()
    assert run is not None
    run.log({"step": 0})
    Path(marker_dir, f"rank{os.environ['RANK']}").write_text(str(time.time()))
    for step in range(1, steps):
        run.log({"step": step})
    return 0


def _service_rss() -> int:
    """Bytes of resident memory of the wandb-core processes this benchmark started (the machine is shared: other
    people's services must not count). Each is a child of the process that started it: a pod or a worker."""
    from flyteplugins_wandb.pod._run_files import descendants

    total = 0
    for pid in descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"wandb-core" not in f.read().split(b"\0", 1)[0]:
                    continue
        except OSError:
            continue
        total += rss_bytes(pid)
    return total


def _launch(procs: int, per_process: bool, steps: int) -> tuple[float, float]:
    """(peak MiB of W&B's services, seconds from launch to the slowest rank's first step) for one launch."""
    marks = tempfile.mkdtemp(prefix="bench-marks-")
    env = {NODE_SERVICE_ENV: "0"} if per_process else {}
    with PeakSampler(_service_rss) as sampler:
        start = time.time()
        run_elastic_locally(
            first_logged_step, nproc_per_node=procs, max_restarts=0, env=env, marker_dir=marks, steps=steps
        )
    first = max(float(p.read_text()) for p in Path(marks).glob("rank*")) - start
    return sampler.peak / 2**20, first


def main(quick: bool) -> list[Row]:
    rows: list[Row] = []
    repeat, steps = (1, 5) if quick else (3, 50)
    with offline_wandb():
        for procs in (1,) if quick else (2, 4):  # quick: the smallest launch that has each kind of service
            results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
            for _ in range(repeat):
                for per_process in (True, False):  # alternately, so that load on the machine hits both alike
                    results[per_process].append(_launch(procs, per_process, steps))
            node_mem, proc_mem = (statistics.median(m for m, _ in results[k]) for k in (False, True))
            node_t, proc_t = (statistics.median(t for _, t in results[k]) for k in (False, True))
            rows.append(
                Row(
                    f"peak memory of W&B services, 1 node x {procs} runs",
                    node_mem,
                    proc_mem,
                    "MiB",
                    "one node service vs one service per worker",
                )
            )
            rows.append(
                Row(
                    f"launch to first logged step (slowest rank), 1 node x {procs}",
                    node_t,
                    proc_t,
                    "s",
                    "one node service vs one service per worker",
                )
            )
    return rows
