"""Layout ``run_mode="shared"``: every rank writes into one W&B run, its metrics labelled with the rank.

    python examples/layout_shared.py                # 1 node x 2 processes
    python examples/layout_shared.py --nnodes 2     # 2 simulated nodes x 2 processes

Result: one run, id ``{run_name}-{action_name}``, no group. Each process is a writer of it with its own label
(``rank-0``, ``rank-1``...); rank 0 is the primary, which creates the run and alone sets its final state.
Use it to compare ranks in one view (load imbalance, per-GPU throughput).

Online, the writers share one run on the W&B server (W&B's shared mode). Offline, each writer keeps its own files
(two processes cannot write one offline file), so the summary lists one row and one directory per writer, all with
the same run id, and its one upload command replays the writers' directories in order.
"""

from __future__ import annotations

import os
import time

import _common
import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="layout_shared", plugin_config=Elastic(nnodes=1, nproc_per_node=2))


@wandb_init(run_mode="shared")
@env.task
def train(steps: int = 40) -> float:
    run = get_wandb_run()  # every rank has one: the same run, each with its own label
    loss = float("nan")
    with _common.process_group():
        started = time.perf_counter()
        for step, loss in _common.train(_common.make_model(), steps):
            if run:
                run.log({"train/loss": loss, "train/steps_per_sec": (step + 1) / (time.perf_counter() - started)})
        if run:
            run.summary["rank"] = int(os.environ["RANK"])
    return loss


if __name__ == "__main__":
    _common.launch(train, __doc__.splitlines()[0], nnodes=1, nproc_per_node=2)
