"""Elastic tasks for the end-to-end tests, kept out of the test modules so that the spawned agents and workers
import nothing but this (no pytest, no wandb): whether a rank imported wandb is one of the things observed.

The W&B tasks write what each rank saw to ``{out_dir}/rank-{rank}.json`` (see :func:`read_facts`): its place,
its run, whether it imported wandb before its body's own ``import wandb``, the W&B service it was handed, and what
wandb's module API did there.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init

PROJECT = "p"
ENTITY = "e"
ROWS = 5
"""Rows of ``{"row": i}`` that :func:`log_rank` logs after its one ``{"x": x, "rank": rank}``."""

two_nodes = flyte.TaskEnvironment(name="wandb_e2e_2x2", plugin_config=Elastic(nnodes=2, nproc_per_node=2))
one_node = flyte.TaskEnvironment(name="wandb_e2e_1x2", plugin_config=Elastic(nnodes=1, nproc_per_node=2))
plain = flyte.TaskEnvironment(name="wandb_e2e_plain")


def log_rank(out_dir: str, x: int) -> str:
    """Log a metric carrying this rank (then ROWS rows) from every rank that has a run, then use wandb's module API
    as W&B's guides write it (:func:`_use_module_api`); record what the rank saw, and return a value that names the
    rank (the task's output must be global rank 0's)."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    try:
        rank = dist.get_rank()
        run = get_wandb_run()
        if run is not None:
            run.log({"x": x, "rank": rank})
            for i in range(ROWS):
                run.log({"row": i})
        facts = _facts(rank, run)  # before the body imports wandb itself, below
        facts.update(_use_module_api(rank, run))
        Path(out_dir, f"rank-{rank}.json").write_text(json.dumps(facts), encoding="utf-8")
        dist.barrier()  # every rank logs before any finishes, as in real training
    finally:
        dist.destroy_process_group()
    return f"rank-{rank}"


def _use_module_api(rank: int, run: Any) -> dict[str, str | None]:
    """``wandb.log``/``wandb.config``/``wandb.summary`` in the body: a rank with a run writes ROWS rows of
    ``module_loss``/``module_rank``, a config key and a summary key that name it; a rank without one records the
    errors its first ``wandb.log`` and ``wandb.config`` raise."""
    import wandb

    if run is not None:
        wandb.config.update({f"config_from_rank_{rank}": rank})
        wandb.define_metric("module_loss", summary="min")
        for i in range(ROWS):
            wandb.log({"module_loss": 1.0 / (i + 1), "module_rank": rank})
        wandb.summary[f"summary_from_rank_{rank}"] = rank
        return {}
    return {
        "log_error": _error_of(lambda: wandb.log({"module_loss": 0.0})),
        "config_error": _error_of(lambda: wandb.config.epochs),
    }


def _error_of(call: Any) -> str | None:
    try:
        call()
    except Exception as e:
        return f"{type(e).__module__}.{type(e).__name__}: {e}"
    return None


def _write_facts(out_dir: str, rank: int, run: Any) -> None:
    Path(out_dir, f"rank-{rank}.json").write_text(json.dumps(_facts(rank, run)), encoding="utf-8")


def _facts(rank: int, run: Any) -> dict[str, Any]:
    # A W&B service's token names the process that started it: the agent (the pod) or this worker.
    service = os.environ.get("WANDB_SERVICE") or ""
    return {
        "rank": rank,
        "local_rank": int(os.environ["LOCAL_RANK"]),
        "worker_index": int(os.environ["GROUP_RANK"]),
        "run_id": None if run is None else run.id,
        "wandb_imported": "wandb" in sys.modules,
        # wandb's module API (wandb.run), read without importing wandb where the plugin did not.
        "module_run_id": getattr(getattr(sys.modules.get("wandb"), "run", None), "id", None),
        "service": service,
        "own_service": service.split("-")[1:2] == [str(os.getpid())],
    }


def read_facts(out_dir: str | os.PathLike[str]) -> dict[int, dict[str, Any]]:
    """What each rank recorded, by global rank."""
    facts = (json.loads(p.read_text(encoding="utf-8")) for p in Path(out_dir).glob("rank-*.json"))
    return {f["rank"]: f for f in facts}


# One task per layout: the layout is fixed at decoration time.


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="auto", rank_scope="global")
@two_nodes.task
def auto_global(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="auto", rank_scope="worker")
@two_nodes.task
def auto_worker(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


# With its report tab too: four writers' lines, gathered across two nodes (tests/test_report.py reads it).
@wandb_init(project=PROJECT, entity=ENTITY, run_mode="shared", rank_scope="global", report=True)
@two_nodes.task
def shared_global(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="shared", rank_scope="worker")
@two_nodes.task
def shared_worker(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="new", rank_scope="global")
@two_nodes.task
def new_global(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="new", rank_scope="worker")
@two_nodes.task
def new_worker(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


# On one node rank_scope has no effect: "worker" is given to show that it changes nothing.


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="auto", rank_scope="worker")
@one_node.task
def single_auto(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="shared", rank_scope="worker")
@one_node.task
def single_shared(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="new", rank_scope="worker")
@one_node.task
def single_new(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


# The layout, project and entity come from the run context only.


@wandb_init
@two_nodes.task
def from_context(out_dir: str, x: int) -> str:
    return log_rank(out_dir, x)


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="new")
@one_node.task
def fails_everywhere(out_dir: str, x: int) -> str:
    """Logs, then raises on every rank at once (after a barrier, so that no rank is stopped by the agent before
    its own failure)."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    run = get_wandb_run()
    if run is not None:
        run.log({"x": x, "rank": rank})
    _write_facts(out_dir, rank, run)
    dist.barrier()
    raise RuntimeError(f"deliberate failure {x} on rank {rank}")


# Launcher tests: no W&B at all.


LAUNCH_MARKER = "FLYTEPLUGINS_WANDB_TEST_LAUNCH"
"""An environment variable a test sets to find every process of its launch."""
STALE_MARKER = "FLYTEPLUGINS_WANDB_TEST_STALE"
"""An environment variable a test removes before its launch, which the launch's processes must not see."""


@one_node.task
def hang_on_rank_1(out_dir: str) -> str:
    """Rank 0 returns at once; rank 1 records its pid and the launch marker it inherited, then never returns."""
    rank = int(os.environ["RANK"])
    if rank == 1:
        seen = {"pid": os.getpid(), "marker": os.environ.get(LAUNCH_MARKER), "stale": os.environ.get(STALE_MARKER)}
        Path(out_dir, "hanging.json").write_text(json.dumps(seen), encoding="utf-8")
        while True:
            time.sleep(1)
    return f"rank-{rank}"


@plain.task
def not_elastic(x: int) -> int:
    return x


def _fails_on(rank: int) -> str:
    me = int(os.environ["RANK"])
    if me == rank:
        raise ValueError(f"deliberate failure on rank {me}")
    return f"rank-{me}"


@one_node.task
def fails_on_rank_1x2(rank: int) -> str:
    """Raises on global rank ``rank`` (none if out of range); the others return at once."""
    return _fails_on(rank)


@two_nodes.task
def fails_on_rank_2x2(rank: int) -> str:
    """As :func:`fails_on_rank_1x2`, on two simulated nodes."""
    return _fails_on(rank)
