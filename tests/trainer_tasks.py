"""Tasks that train with the trainers people use, each through its own W&B logger, on CPU with tiny models built
from config objects (nothing is downloaded): PyTorch Lightning's ``WandbLogger``, Hugging Face's
``Trainer(report_to="wandb")`` and Accelerate's ``Accelerator(log_with="wandb")``. Each body runs as a plain task
(one process) and as a 1 x 2 Elastic task (gloo); the tests read back which runs were made and what is in them.

Kept out of the test modules so that the spawned workers import no pytest.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import wandb_init

PROJECT = "trainers"
ENTITY = "e"
STEPS = 4

plain = flyte.TaskEnvironment(name="wandb_trainers_plain")
one_node = flyte.TaskEnvironment(name="wandb_trainers_1x2", plugin_config=Elastic(nnodes=1, nproc_per_node=2))


def _where() -> dict[str, Any]:
    action = flyte.ctx().action
    return {"run_name": str(action.run_name), "action_name": str(action.name), "rank": int(os.environ.get("RANK", 0))}


def train_lightning(out_dir: str) -> dict[str, Any]:
    """A linear regression fitted by Lightning for a few steps, logged with ``WandbLogger()`` as its docs show."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import WandbLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Regression(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("lightning_loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=4)
    distributed = "WORLD_SIZE" in os.environ
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
        strategy="ddp" if distributed else "auto",
        max_steps=STEPS,
        log_every_n_steps=1,
        logger=WandbLogger(project="ignored-by-the-task"),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out_dir,
    )
    with warnings.catch_warnings():  # Lightning's advice about data loader workers and the like
        warnings.simplefilter("ignore")
        trainer.fit(Regression(), data)
    return _where()


def train_hugging_face(out_dir: str) -> dict[str, Any]:
    """A one-layer BERT classifier (from a ``BertConfig``) trained by ``Trainer(report_to="wandb")``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    rows = [
        {"input_ids": torch.randint(0, 32, (8,)), "attention_mask": torch.ones(8, dtype=torch.long), "labels": i % 2}
        for i in range(16)
    ]
    args = TrainingArguments(
        output_dir=str(Path(out_dir, "hf")),
        max_steps=STEPS,
        per_device_train_batch_size=2,
        logging_steps=1,
        report_to="wandb",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None,
    )
    Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=rows).train()
    return _where()


def train_accelerate(out_dir: str) -> dict[str, Any]:
    """A linear model trained with ``Accelerator(log_with="wandb")``: ``init_trackers(..., config=...)``, then
    ``accelerator.log`` each step and ``end_training()``, as Accelerate's tracking guide does."""
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True, log_with="wandb")
    accelerator.init_trackers("ignored-by-the-task", config={"accelerate_lr": 0.1})
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    for step in range(STEPS):
        loss = torch.nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 1))
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        accelerator.log({"accelerate_loss": loss.item()}, step=step)
    accelerator.end_training()
    return _where()


TRAINERS = {"lightning": train_lightning, "hugging_face": train_hugging_face, "accelerate": train_accelerate}


@wandb_init(project=PROJECT, entity=ENTITY)
@plain.task
def plain_trainer(trainer: str, out_dir: str) -> str:
    return json.dumps(TRAINERS[trainer](out_dir))


@wandb_init(project=PROJECT, entity=ENTITY, report=True)
@one_node.task
def elastic_trainer(trainer: str, out_dir: str) -> str:
    return json.dumps(TRAINERS[trainer](out_dir))
