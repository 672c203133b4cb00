"""Quick start: distributed training on one node, tracked in W&B, on your laptop.

    python examples/quick_start.py

Two worker processes (``Elastic(nnodes=1, nproc_per_node=2)``) train a tiny model with DDP over gloo on the CPU.
With the default ``run_mode="auto"`` only rank 0 opens a W&B run: the job produces exactly one run, with id
``{run_name}-{action_name}`` and no group, holding rank 0's ``train/loss`` curve.

Without ``WANDB_API_KEY`` the run is written offline (under ``$WANDB_DIR/wandb`` or ``./wandb``) and the summary at
the end prints the one command that uploads it from there, ``python -m flyteplugins_wandb.sync <run directory>``.
The same task runs on a cluster as is (see ``cluster.py``); there the same command takes the ``wandb_run_files``
directory the task saved, as the pod's log says.
"""

from __future__ import annotations

import _common
import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init
from flyteplugins_wandb.local import run_elastic_locally

env = flyte.TaskEnvironment(
    name="quick_start",
    plugin_config=Elastic(nnodes=1, nproc_per_node=2),
    # A store per restart, so that a worker that dies can be restarted (torch's own default cannot: README,
    # "A worker that dies"); without it the pod says so in one warning.
    env_vars={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"},
)


@wandb_init  # run_mode="auto" (the default): rank 0 logs, the other ranks get no run
@env.task
def train(steps: int = 40) -> float:
    run = get_wandb_run()  # None on every rank but 0: check before logging
    loss = float("nan")
    with _common.process_group():
        for step, loss in _common.train(_common.make_model(), steps):
            if run:
                run.log({"train/loss": loss, "train/step": step})
    return loss


if __name__ == "__main__":
    _common.choose_wandb_mode()
    result = run_elastic_locally(train, custom_context=_common.run_context(), max_restarts=_common.MAX_RESTARTS)
    print(f"final loss on rank 0: {result.output:.4f}")
    _common.print_summary(result)
