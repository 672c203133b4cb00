"""The seed page's distributed examples (Flyte's W&B plugin documentation, "Distributed training"), as its users
wrote them, for real torch elastic workers on this machine. Only the import line is the page's own code changed
(``flyteplugins.wandb`` is this package), plus what a CPU needs: gloo for nccl, the CPU for ``cuda:{local_rank}``,
and a toy model and data for the page's elided ``MyModel``/``MyDataset``.

Kept out of the test modules so that the spawned workers import nothing but this. Every rank records what it saw
(``get_distributed_info()`` read as the dict the page's users index, its run, the W&B settings in force, its run
directory) in ``{out_dir}/rank-{rank}.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import flyte
import torch
import torch.distributed
import torch.nn as nn
import torch.optim as optim
from flyteplugins.pytorch.task import Elastic
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from flyteplugins.wandb import get_distributed_info, get_wandb_context, get_wandb_run, get_wandb_run_dir, wandb_init

single_node_env = flyte.TaskEnvironment(name="single_node_env", plugin_config=Elastic(nproc_per_node=2, nnodes=1))
multi_node_env = flyte.TaskEnvironment(name="multi_node_env", plugin_config=Elastic(nproc_per_node=2, nnodes=2))


def record(out_dir: str) -> None:
    """What this rank saw, as a user's script reads it."""
    info = get_distributed_info()
    assert info is not None
    context = get_wandb_context()
    facts: dict[str, Any] = {
        "info": {
            k: info[k] for k in ("rank", "local_rank", "world_size", "local_world_size", "worker_index", "num_workers")
        },  # fmt: skip
        "run_id": None if get_wandb_run() is None else get_wandb_run().id,  # type: ignore[union-attr]
        "run_dir": get_wandb_run_dir(),
        "project": None if context is None else context.project,
        "tags": None if context is None or context.tags is None else list(context.tags),
    }
    Path(out_dir, f"rank-{info['rank']}.json").write_text(json.dumps(facts), encoding="utf-8")


def read_facts(out_dir: str | os.PathLike[str]) -> dict[int, dict[str, Any]]:
    facts = (json.loads(p.read_text(encoding="utf-8")) for p in Path(out_dir).glob("rank-*.json"))
    return {f["info"]["rank"]: f for f in facts}


# --- "Basic example with auto mode" (single node) ---------------------------------------------------------------


@wandb_init  # run_mode="auto" (default)
@single_node_env.task
def train_single_node(out_dir: str) -> float:
    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))  # noqa: F841 (the page's code)

    run = get_wandb_run()

    # Training loop - only rank 0 logs
    loss = 0.0
    for epoch in range(3):
        loss = 1.0 / (epoch + 1) + rank * 0.0

        if run:
            run.log({"epoch": epoch, "loss": loss})

    record(out_dir)
    torch.distributed.destroy_process_group()
    return loss


# --- "Using shared mode for per-rank metrics" (single node) ----------------------------------------------------------


@wandb_init(run_mode="shared")
@single_node_env.task
def train_with_per_gpu_metrics(out_dir: str) -> float:
    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()

    # In shared mode, all ranks get a run object
    run = get_wandb_run()

    loss = 0.0
    for step in range(3):
        loss, throughput = 1.0 / (step + 1), 100.0 * (rank + 1)

        # Each rank logs with automatic x_label identification
        if run:
            run.log({"loss": loss, "throughput_samples_per_sec": throughput})

    record(out_dir)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    return loss


# --- "Global scope (default): Single run across all nodes" (multi node, DDP) ----------------------------------------


@wandb_init  # rank_scope="global" by default → 1 run total
@multi_node_env.task
def train_multi_node(epochs: int, batch_size: int, out_dir: str) -> float:
    torch.distributed.init_process_group("gloo")

    rank = torch.distributed.get_rank()
    world_size = torch.distributed.get_world_size()

    device = torch.device("cpu")

    # Model with DDP
    torch.manual_seed(0)
    model = nn.Linear(4, 2).to(device)
    model = DDP(model)

    # Distributed data loading
    dataset = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank)
    dataloader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)

    optimizer = optim.AdamW(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()

    # Only global rank 0 gets a W&B run
    run = get_wandb_run()

    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        model.train()

        for batch_idx, (data, target) in enumerate(dataloader):
            data, target = data.to(device), target.to(device)

            optimizer.zero_grad()
            output = model(data)
            loss = criterion(output, target)
            loss.backward()
            optimizer.step()

            if run and batch_idx % 100 == 0:
                run.log({"train/loss": loss.item(), "train/epoch": epoch, "train/batch": batch_idx})

        if run:
            run.log({"train/epoch_complete": epoch})

    record(out_dir)
    # Barrier ensures all ranks finish before cleanup
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()

    return loss.item()


# --- "Worker scope: One run per node" --------------------------------------------------------------------------------


@wandb_init(rank_scope="worker")  # 1 run per worker/node
@multi_node_env.task
def train_per_worker(epochs: int, batch_size: int, out_dir: str) -> float:
    torch.distributed.init_process_group("gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))  # noqa: F841 (the page's code)
    loss = torch.tensor(0.5 * epochs / batch_size)

    # Local rank 0 of each worker gets a W&B run
    run = get_wandb_run()

    if run:
        # Each worker logs to its own run
        run.log({"train/loss": loss.item()})

    record(out_dir)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    return loss.item()
