"""Real elastic runs on this machine: shared-mode start-up of the writers, and whole runs with the plugin in
each layout against the same run without it."""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flyte
import torch
import torch.distributed as dist
from _common import Row, offline_wandb
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init
from flyteplugins_wandb.local import run_elastic_locally

one_node = flyte.TaskEnvironment(name="bench-1x2", plugin_config=Elastic(nnodes=1, nproc_per_node=2))
two_nodes = flyte.TaskEnvironment(name="bench-2x2", plugin_config=Elastic(nnodes=2, nproc_per_node=2))


def train(steps: int) -> float:
    """A tiny but real data-parallel loop: one all_reduce and one log per step."""
    dist.init_process_group("gloo")
    w = torch.zeros(16)
    run = get_wandb_run()
    for step in range(steps):
        grad = torch.randn(16)
        dist.all_reduce(grad)
        w -= 0.01 * grad / dist.get_world_size()
        if run is not None:
            run.log({"w_norm": float(w.norm()), "step": step})
    dist.barrier()
    dist.destroy_process_group()
    return float(w.norm())


def first_step(marker_dir: str) -> float:
    """Write how long after the task function was called its body started (this rank)."""
    Path(marker_dir, f"rank{os.environ['RANK']}").write_text(str(time.time() - float(os.environ["BENCH_CALLED_AT"])))
    return 0.0


def _stamped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Record the moment the task function is called, before @wandb_init starts the run."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        os.environ["BENCH_CALLED_AT"] = str(time.time())
        return fn(*args, **kwargs)

    return call


def _task(env: flyte.TaskEnvironment, body: Callable[..., float], name: str, **layout: str) -> Any:
    def fn(*args: Any, **kwargs: Any) -> float:
        return body(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__annotations__ = dict(body.__annotations__)
    fn.__wrapped__ = body  # type: ignore[attr-defined]
    task = env.task(fn)
    if layout:
        task = wandb_init(project="bench", **layout)(task)  # type: ignore[arg-type]
    task.func = _stamped(task.func)
    return task


def shared_startup(repeat: int) -> list[Row]:
    task = _task(one_node, first_step, "first_step_shared", run_mode="shared")
    primary, writer = [], []
    for _ in range(repeat):
        marks = tempfile.mkdtemp(prefix="bench-marks-")
        run_elastic_locally(task, marker_dir=marks)
        primary.append(float(Path(marks, "rank0").read_text()))
        writer.append(float(Path(marks, "rank1").read_text()))
    p, w = statistics.median(primary), statistics.median(writer)
    return [
        Row(
            "shared: call to first step, non-primary writer vs primary",
            w,
            p,
            "s",
            f"target: at most primary + 1 s; here {w - p:+.2f} s",
        )
    ]


def end_to_end(repeat: int, steps: int, layouts: list[tuple[str, str]]) -> list[Row]:
    def timed(task: Any) -> float:
        start = time.perf_counter()
        run_elastic_locally(task, steps=steps)
        return time.perf_counter() - start

    baseline = _task(two_nodes, train, "train_plain")
    base = statistics.median(timed(baseline) for _ in range(repeat))
    rows = []
    for run_mode, rank_scope in layouts:
        task = _task(two_nodes, train, f"train_{run_mode}_{rank_scope}", run_mode=run_mode, rank_scope=rank_scope)
        t = statistics.median(timed(task) for _ in range(repeat))
        rows.append(Row(f"2x2 elastic run, {run_mode}/{rank_scope}", t, base, "s", f"{steps} steps, vs no plugin"))
    return rows


def main(quick: bool) -> list[Row]:
    all_layouts = [(m, s) for m in ("auto", "shared", "new") for s in ("global", "worker")]
    with offline_wandb():
        rows = shared_startup(1 if quick else 5)
        rows += end_to_end(1 if quick else 3, 5 if quick else 50, [("auto", "global")] if quick else all_layouts)
    return rows
