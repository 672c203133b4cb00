"""Elastic tasks whose worker dies once and is restarted by torch elastic, one per layout, kept out of the test
modules so that the spawned agents and workers import nothing but this.

Every rank opens a gloo process group (as real training does: the restarted workers must be able to meet again),
logs :data:`ROWS` rows, and on the first life global rank 1 dies abruptly (``os._exit``, as an OOM kill ends a
process) once every rank has logged; after the restart every rank logs :data:`ROWS` more.

The environments set ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``, as a user whose job restarts must with torch 2.13:
with torch's default (one store for the whole job), the restarted ranks read the dead life's gloo addresses and
fail in ``init_process_group``, with or without W&B (pytorch/pytorch#135712; README, "A worker that dies").
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init

ROWS = 5
A_STORE_PER_RESTART = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
one_node = flyte.TaskEnvironment(
    name="wandb_restart_1x2", plugin_config=Elastic(nnodes=1, nproc_per_node=2), env_vars=A_STORE_PER_RESTART
)
two_nodes = flyte.TaskEnvironment(
    name="wandb_restart_2x2", plugin_config=Elastic(nnodes=2, nproc_per_node=2), env_vars=A_STORE_PER_RESTART
)


def dies_once(marker_dir: str) -> int:
    """The body of every task here; returns global rank 0's restart count in the life that finished."""
    import torch.distributed as dist

    # Torch's restart count is each node's own (a node restarted because another failed keeps 0): the marker
    # the dying rank leaves says which life this is, alike on every node.
    died = Path(marker_dir, "died")
    first_life = not died.exists() and flyte.ctx().attempt_number == 0
    dist.init_process_group("gloo")
    rank, restart = dist.get_rank(), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    run = get_wandb_run()
    for i in range(ROWS):
        if run is not None:
            run.log({"row": (0 if first_life else ROWS) + i})
    Path(marker_dir, f"rank{rank}-restart{restart}").write_text("logged")
    if run is not None:  # the W&B service this life's run is written by
        Path(marker_dir, f"service-rank{rank}-life{0 if first_life else 1}").write_text(os.environ["WANDB_SERVICE"])
    dist.barrier()  # every rank has logged its rows
    if first_life:
        if int(os.environ["RANK"]) == 1:
            died.write_text("rank 1")
            os._exit(1)
        time.sleep(300)  # stopped by the agent's restart well before this
    dist.destroy_process_group()
    return restart


# One task per layout (fixed at decoration time).


@wandb_init(project="p", run_mode="new", rank_scope="global")
@one_node.task
def new_global(marker_dir: str) -> int:
    return dies_once(marker_dir)


@wandb_init(project="p", run_mode="new")
@one_node.task
def service_dies(marker_dir: str) -> int:
    """Every rank logs 5 rows; then rank 0 kills the node's W&B service (SIGKILL) and every rank logs 5 more."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    run = get_wandb_run()
    assert run is not None
    for i in range(ROWS):
        run.log({"row": i})
    dist.barrier()
    time.sleep(1.0)  # past the transaction log's flush interval (the test sets it short): the rows are on disk
    if rank == 0:
        Path(marker_dir, "killed").write_text(str(kill_node_service()))
    dist.barrier()
    for i in range(ROWS, 2 * ROWS):
        run.log({"row": i})
    dist.barrier()
    dist.destroy_process_group()
    return rank


def _closed(token: str, timeout: float = 30.0) -> None:
    """Wait until the service of ``token`` refuses connections: its sockets close only once every thread of it
    has ended, which can be after its main thread shows as a zombie."""
    from flyteplugins_wandb.pod._node_service import service_reachable

    deadline = time.monotonic() + timeout
    while service_reachable(token):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the W&B service {token} still accepts connections {timeout}s after SIGKILL")
        time.sleep(0.01)


def kill_node_service() -> int:
    """SIGKILL the wandb-core that the pod started (its token, in WANDB_SERVICE, names the pod's pid); its pid."""
    import signal

    starter = os.environ["WANDB_SERVICE"].split("-")[1]
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"wandb-core") and b"--pid" in args and starter.encode() in args:
            os.kill(int(proc.name), signal.SIGKILL)
            _closed(os.environ["WANDB_SERVICE"])  # before any rank logs again: what it logs meets a closed service
            return int(proc.name)
    raise RuntimeError(f"no wandb-core started by pid {starter}")


@wandb_init(project="p", run_mode="shared", rank_scope="worker")
@two_nodes.task
def shared_worker_2x2(marker_dir: str) -> int:
    return dies_once(marker_dir)
