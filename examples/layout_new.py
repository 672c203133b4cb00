"""Layout ``run_mode="new"``: every rank gets a W&B run of its own, all in one group.

    python examples/layout_new.py                   # 1 node x 2 processes
    python examples/layout_new.py --nnodes 2        # 2 simulated nodes x 2 processes

Result: one run per rank, id ``{run_name}-{action_name}-rank-{rank}``, all in the group
``{run_name}-{action_name}`` (the Flyte link opens that group). Use it to keep each GPU's training dynamics and
system metrics apart.
"""

from __future__ import annotations

import os

import _common
import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="layout_new", plugin_config=Elastic(nnodes=1, nproc_per_node=2))


@wandb_init(run_mode="new")
@env.task
def train(steps: int = 40) -> float:
    run = get_wandb_run()  # every rank has its own run
    loss = float("nan")
    with _common.process_group():
        for step, loss in _common.train(_common.make_model(), steps):
            if run:
                run.log({"train/loss": loss, "train/step": step})
        if run:
            run.summary["rank"] = int(os.environ["RANK"])
    return loss


if __name__ == "__main__":
    _common.launch(train, __doc__.splitlines()[0], nnodes=1, nproc_per_node=2)
