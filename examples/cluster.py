"""Multi-node training on a Flyte cluster, tracked in W&B: 2 nodes x 4 GPUs, one W&B run for the whole job.

Not for your laptop (try ``quick_start.py`` there first). Once per project, store your W&B API key as a Flyte
secret and have a registry the cluster can pull from::

    flyte create secret wandb_api_key            # paste the key from https://wandb.ai/authorize
    export FLYTE_IMAGE_REGISTRY=ghcr.io/you      # where the image built from ../Dockerfile is pushed
    export WANDB_ENTITY=your-team                # optional: makes the Flyte link open the run itself
    python examples/cluster.py                   # uses your Flyte config (flyte create config ...)

``flyte run examples/cluster.py train --epochs 3`` works as well; the W&B project then comes from the decorator
alone, as the ``flyte run`` command line has no way to pass ``wandb_config(...)``.

The image is the repository's ``Dockerfile`` (CPU torch by default; build it for CUDA with
``--build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128``). The secret becomes ``WANDB_API_KEY`` in
every pod. With the default layout (``run_mode="auto"``, ``rank_scope="global"``) only global rank 0 opens a run,
id ``{run_name}-{action_name}``, and the Flyte UI shows one link to it.
"""

from __future__ import annotations

import os
from pathlib import Path

import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_config, wandb_init

PROJECT = "flyteplugins-wandb-examples"

image = flyte.Image.from_dockerfile(
    Path(__file__).resolve().parent.parent / "Dockerfile",  # built with the repository root as its context
    registry=os.environ.get("FLYTE_IMAGE_REGISTRY", "localhost:30000"),
    name="flyteplugins-wandb",
)

env = flyte.TaskEnvironment(
    name="wandb_multi_node",
    image=image,
    resources=flyte.Resources(cpu=8, memory="32Gi", gpu="A100:4", shm="auto"),
    plugin_config=Elastic(nnodes=2, nproc_per_node=4),  # nproc_per_node = GPUs per node
    env_vars={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"},  # a store per restart: dead workers can restart
    secrets=flyte.Secret(key="wandb_api_key", as_env_var="WANDB_API_KEY"),
)


# run_mode="auto" with rank_scope="global": one run, logged by global rank 0. Naming the scope here (rather than
# leaving it to the run context) also gives the task a single Flyte link instead of one per node.
@wandb_init(project=PROJECT, rank_scope="global")
@env.task
def train(epochs: int = 3, batch_size: int = 256, lr: float = 1e-3) -> float:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    dist.init_process_group("nccl")
    try:
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ["LOCAL_RANK"])
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)

        # A synthetic classification problem, the same on every rank; DistributedSampler shards it.
        generator = torch.Generator().manual_seed(0)
        features = torch.randn(65_536, 128, generator=generator)
        labels = (features @ torch.randn(128, 10, generator=generator)).argmax(dim=1)
        dataset = TensorDataset(features, labels)
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)

        model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        model = DistributedDataParallel(model.to(device), device_ids=[local_rank])
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)

        run = get_wandb_run()  # None on every rank but global rank 0
        loss = torch.zeros((), device=device)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for batch, (x, y) in enumerate(loader):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss = torch.nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if run and batch % 20 == 0:
                    run.log({"train/loss": loss.item(), "train/epoch": epoch})
        dist.barrier()  # every rank finishes training before the process group goes away
        return float(loss.item())
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    flyte.init_from_config()
    context = wandb_config(
        project=PROJECT, entity=os.environ.get("WANDB_ENTITY") or None, tags=["distributed", "multi-node"]
    )
    run = flyte.with_runcontext(custom_context=context).run(train, epochs=3)
    print(f"submitted: {run.url}")
    run.wait()
