"""Elastic tasks whose bodies use wandb's module API (``wandb.log``, ``wandb.config``, ``wandb.summary``...) as W&B's
own guides write it, kept out of the test modules so that the spawned workers import neither pytest nor wandb:
whether a rank imported wandb before its body did is one of the things observed.

Each rank writes what it saw to ``{out_dir}/rank-{rank}.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init

PROJECT = "modapi"
ENTITY = "e"
ROWS = 5

one_node = flyte.TaskEnvironment(name="wandb_modapi_1x2", plugin_config=Elastic(nnodes=1, nproc_per_node=2))


def log_with_module_api(out_dir: str) -> str:
    """Every rank: note whether wandb was imported before the body, then use wandb's module API the way W&B's
    guides do; a rank without a run records the error its first ``wandb.log`` and ``wandb.config`` raise."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    seen: dict[str, Any] = {"rank": rank, "wandb_before_body": "wandb" in sys.modules}
    import wandb

    run = get_wandb_run()
    seen["run_id"] = None if run is None else run.id
    seen["module_run_id"] = None if wandb.run is None else wandb.run.id
    if run is not None:
        wandb.config.update({f"config_from_rank_{rank}": rank})
        wandb.define_metric("module_loss", summary="min")
        for i in range(ROWS):
            wandb.log({"module_loss": 1.0 / (i + 1), "module_rank": rank})
        wandb.summary[f"summary_from_rank_{rank}"] = rank
    else:
        seen["log_error"] = _error_of(lambda: wandb.log({"module_loss": 0.0}))
        seen["config_error"] = _error_of(lambda: wandb.config.epochs)
    Path(out_dir, f"rank-{rank}.json").write_text(json.dumps(seen), encoding="utf-8")
    dist.barrier()
    dist.destroy_process_group()
    return f"rank-{rank}"


def _error_of(call: Any) -> str | None:
    try:
        call()
    except Exception as e:
        return f"{type(e).__module__}.{type(e).__name__}: {e}"
    return None


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="auto")
@one_node.task
def module_api_auto(out_dir: str) -> str:
    return log_with_module_api(out_dir)


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="shared")
@one_node.task
def module_api_shared(out_dir: str) -> str:
    return log_with_module_api(out_dir)


@wandb_init(project=PROJECT, entity=ENTITY, run_mode="new")
@one_node.task
def module_api_new(out_dir: str) -> str:
    return log_with_module_api(out_dir)


def read_seen(out_dir: str | Path) -> dict[int, dict[str, Any]]:
    """What each rank recorded, by global rank."""
    seen = (json.loads(p.read_text(encoding="utf-8")) for p in Path(out_dir).glob("rank-*.json"))
    return {s["rank"]: s for s in seen}
