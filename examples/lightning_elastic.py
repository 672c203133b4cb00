"""PyTorch Lightning inside an Elastic task: Lightning's own ``WandbLogger`` logs into the task's W&B run.

    python examples/lightning_elastic.py

Two worker processes (``Elastic(nnodes=1, nproc_per_node=2)``) fit a tiny model with Lightning's DDP strategy over
gloo on the CPU. The body is plain Lightning code: ``Trainer(logger=WandbLogger())`` and ``self.log(...)``. The
plugin binds wandb's module API (``wandb.run``) to the task's run, so Lightning's logger on rank 0 uses that run
instead of opening one of its own (Lightning says "There is a wandb run already in progress ..."). With the default
``run_mode="auto"`` the job produces exactly one run, ``{run_name}-{action_name}``, holding ``train/loss``; the other
rank has no run and Lightning does not log there. Needs ``pip install lightning``.
"""

from __future__ import annotations

from typing import Any

import _common
import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import wandb_init
from flyteplugins_wandb.local import run_elastic_locally

env = flyte.TaskEnvironment(name="lightning_elastic", plugin_config=Elastic(nnodes=1, nproc_per_node=2))


def _lightning_module() -> Any:
    import lightning.pytorch as pl
    import torch

    class Regression(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = _common.make_model()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.model(x), y)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Regression()


@wandb_init  # run_mode="auto": rank 0 has the run, and Lightning logs from rank 0
@env.task
def train(steps: int = 40) -> float:
    import os
    from itertools import islice

    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import WandbLogger

    torch.set_num_threads(1)  # the workers share the machine's cores
    rank = int(os.environ.get("RANK", 0))
    shard = list(islice(_common.batches(seed=0, shard=rank), steps))  # each rank its own samples, as DDP wants
    module = _lightning_module()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
        strategy="ddp",
        max_steps=steps,
        log_every_n_steps=1,
        logger=WandbLogger(),  # finds the task's run (wandb.run); no project or run id to pass
        use_distributed_sampler=False,  # the shard above is this rank's already
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, torch.utils.data.DataLoader(shard, batch_size=None))
    return float(trainer.callback_metrics["train/loss"])


if __name__ == "__main__":
    _common.choose_wandb_mode()
    result = run_elastic_locally(train, custom_context=_common.run_context(), max_restarts=_common.MAX_RESTARTS)
    print(f"final loss on rank 0: {result.output:.4f}")
    _common.print_summary(result)
