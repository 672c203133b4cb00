"""Layout ``rank_scope="worker"`` on two nodes: one W&B run per node.

    python examples/layout_worker_scope.py          # 2 simulated nodes x 2 processes

With ``run_mode="auto"`` and ``rank_scope="worker"`` the first process of each node (local rank 0) opens a run:
two runs, ids ``{run_name}-{action_name}-worker-0`` and ``...-worker-1``, no group, and one Flyte link per node.
Each node trains on its own data shard, so their loss curves differ. Use it for per-node analysis; the default
``rank_scope="global"`` gives one run for the whole job.
"""

from __future__ import annotations

import os

import _common
import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="layout_worker_scope", plugin_config=Elastic(nnodes=2, nproc_per_node=2))


@wandb_init(rank_scope="worker")  # run_mode="auto": local rank 0 of each node logs
@env.task
def train(steps: int = 40) -> float:
    run = get_wandb_run()  # on local rank 0 of each node; None elsewhere
    loss = float("nan")
    with _common.process_group():
        for step, loss in _common.train(_common.make_model(), steps):
            if run:
                run.log({"train/loss": loss, "train/step": step})
        if run:
            run.summary["node"] = int(os.environ["GROUP_RANK"])
    return loss


if __name__ == "__main__":
    _common.launch(train, __doc__.splitlines()[0], nnodes=2, nproc_per_node=2)
