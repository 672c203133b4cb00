"""Shared pieces of the local examples: where W&B data goes, a tiny real model, and the end-of-run summary.

Nothing here is needed to use the plugin; it keeps the examples short and alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flyteplugins_wandb import WandbContext, wandb_config

if TYPE_CHECKING:
    import torch

    from flyteplugins_wandb.local import LocalElasticResult, RunRecord

PROJECT = "flyteplugins-wandb-examples"

# Elastic retries a failed worker group three times by default; an example should fail at once and say why.
MAX_RESTARTS = 0


def choose_wandb_mode() -> str:
    """Log online when a W&B API key is set, offline otherwise; an explicit ``WANDB_MODE`` wins.

    The choice is written to ``WANDB_MODE`` so that the agents and workers this process starts inherit it.
    """
    given = os.environ.get("WANDB_MODE")
    mode = given or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    os.environ["WANDB_MODE"] = mode
    # Several processes printing W&B's banners drown the example's own output; the summary says where runs went.
    os.environ.setdefault("WANDB_SILENT", "true")
    if mode == "offline":
        where = os.path.join(os.environ.get("WANDB_DIR") or os.getcwd(), "wandb")
        reason = "WANDB_MODE is set" if given else "WANDB_API_KEY is not set"
        print(f"W&B: offline ({reason}); runs are written under {where}")
        print("     To log online, set WANDB_API_KEY (or WANDB_MODE=online after `wandb login`).")
    else:
        print(f"W&B: {mode}, project {PROJECT!r}")
    return mode


def run_context() -> WandbContext:
    """``wandb_config(...)`` for the examples' project. With ``WANDB_ENTITY`` set, the Flyte links point at the
    runs themselves instead of the W&B home page."""
    return wandb_config(project=PROJECT, entity=os.environ.get("WANDB_ENTITY") or None)


def launch(task: Any, description: str, *, nnodes: int, nproc_per_node: int) -> LocalElasticResult:
    """Run an example's task with real workers on this machine (sizes from the command line, defaulting to the
    example's own), then print rank 0's final loss and the summary of the runs it made."""
    from flyteplugins_wandb.local import run_elastic_locally

    nodes, procs = nodes_and_processes(nnodes, nproc_per_node, description)
    choose_wandb_mode()
    result = run_elastic_locally(
        task, nnodes=nodes, nproc_per_node=procs, custom_context=run_context(), max_restarts=MAX_RESTARTS
    )
    print(f"final loss on rank 0: {result.output:.4f}")
    print_summary(result)
    return result


def nodes_and_processes(nnodes: int, nproc_per_node: int, description: str) -> tuple[int, int]:
    """``--nnodes`` / ``--nproc-per-node`` from the command line, defaulting to the example's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--nnodes", type=int, default=nnodes, help=f"simulated nodes (default {nnodes})")
    parser.add_argument(
        "--nproc-per-node", type=int, default=nproc_per_node, help=f"processes per node (default {nproc_per_node})"
    )
    args = parser.parse_args()
    return args.nnodes, args.nproc_per_node


# --- A tiny but real training job: linear regression on the CPU, data-parallel when a process group is up. -----

FEATURES = 16


def make_model(seed: int = 0) -> torch.nn.Linear:
    import torch

    torch.manual_seed(seed)  # every rank starts from the same weights (DDP would broadcast rank 0's anyway)
    return torch.nn.Linear(FEATURES, 1)


def _problem(seed: int) -> torch.Tensor:
    import torch

    return torch.randn(FEATURES, 1, generator=torch.Generator().manual_seed(seed))


def batches(seed: int, shard: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches of a synthetic regression problem; each ``shard`` (rank) draws its own samples."""
    import torch

    true_w = _problem(seed)
    noise = torch.Generator().manual_seed(seed * 1000 + shard + 1)
    while True:
        x = torch.randn(64, FEATURES, generator=noise)
        yield x, x @ true_w + 0.01 * torch.randn(64, 1, generator=noise)


def train(model: torch.nn.Module, steps: int = 40, seed: int = 0) -> Iterator[tuple[int, float]]:
    """Train ``model`` with SGD and yield ``(step, loss)`` after each step.

    Inside a ``torch.distributed`` process group (see :func:`process_group`) the model is wrapped in
    DistributedDataParallel: every rank trains on its own shard and the gradients are averaged over the ranks.
    """
    import torch
    import torch.distributed as dist

    shard = 0
    if dist.is_available() and dist.is_initialized():
        from torch.nn.parallel import DistributedDataParallel

        shard = dist.get_rank()
        model = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = batches(seed, shard)
    for step in range(steps):
        x, y = next(data)
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        yield step, float(loss.item())


def held_out_loss(weights: list[float], bias: float, seed: int = 0) -> float:
    """Mean squared error of a linear model with these parameters on held-out data of the same problem."""
    import torch

    x, y = next(batches(seed, shard=10_000))
    prediction = x @ torch.tensor(weights).reshape(FEATURES, 1) + bias
    return float(torch.nn.functional.mse_loss(prediction, y).item())


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """``torch.distributed`` over gloo (CPU) for the duration of the block; on GPUs you would use nccl."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # the workers share the machine's cores
    dist.init_process_group("gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


# --- The end of an example: what was produced, and where. -------------------------------------------------------


def print_summary(result: LocalElasticResult) -> None:
    """The table of runs that the launch produced, its links, and the one command that uploads its offline runs
    from this machine, where their files are."""
    from flyteplugins_wandb.local import format_summary

    print()
    print(format_summary(result))


@contextlib.contextmanager
def recorded_runs() -> Iterator[list[RunRecord]]:
    """Collect the runs that the plugin opens in this block, in any process started from it (``flyte.run``
    returns no list of runs, unlike ``run_elastic_locally``). The list is filled when the block ends."""
    from flyteplugins_wandb.local import MANIFEST_ENV, read_manifest

    runs: list[RunRecord] = []
    previous = os.environ.get(MANIFEST_ENV)
    with tempfile.TemporaryDirectory(prefix="wandb-runs-") as directory:
        os.environ[MANIFEST_ENV] = directory
        try:
            yield runs
        finally:
            if previous is None:
                os.environ.pop(MANIFEST_ENV, None)
            else:
                os.environ[MANIFEST_ENV] = previous
            runs.extend(read_manifest(directory))


def print_runs(runs: list[RunRecord]) -> None:
    from flyteplugins_wandb.local import format_runs

    print()
    print(format_runs(runs))
