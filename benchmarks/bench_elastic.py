"""Real elastic runs on this machine: shared-mode start-up of the writers, and whole runs with the plugin in
each layout against the same run without it."""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flyte
import torch
import torch.distributed as dist
from _common import PeakSampler, Row, largest_descendant_rss, offline_wandb, task_context
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init
from flyteplugins_wandb._keys import NODE_SERVICE_ENV
from flyteplugins_wandb.local import run_elastic_locally

one_node = flyte.TaskEnvironment(name="bench-1x2", plugin_config=Elastic(nnodes=1, nproc_per_node=2))
two_nodes = flyte.TaskEnvironment(name="bench-2x2", plugin_config=Elastic(nnodes=2, nproc_per_node=2))


def train(steps: int) -> float:
    """A tiny but real data-parallel loop: one all_reduce and one log per step."""
    return _loop(steps, get_wandb_run())


def train_with_wandb_init(steps: int) -> float:
    """The same loop, with the run opened the way a plain W&B integration does it: ``wandb.init`` on rank 0 in the
    worker (its own wandb service), ``finish`` at the end; each timed."""
    started = time.time()  # importing wandb is part of opening a run, as it is inside @wandb_init
    import wandb

    run = wandb.init(project="bench", reinit="create_new") if os.environ.get("RANK") == "0" else None
    os.environ["BENCH_INIT_S"] = str(time.time() - started)
    try:
        return _loop(steps, run)
    finally:
        started = time.time()
        if run is not None:
            run.finish()
        os.environ["BENCH_FINISH_S"] = str(time.time() - started)


def _loop(steps: int, run: Any) -> float:
    os.environ["BENCH_BODY_START"] = str(time.time())
    dist.init_process_group("gloo")
    w = torch.zeros(16)
    for step in range(steps):
        grad = torch.randn(16)
        dist.all_reduce(grad)
        w -= 0.01 * grad / dist.get_world_size()
        if run is not None:
            run.log({"w_norm": float(w.norm()), "step": step})
    dist.barrier()
    dist.destroy_process_group()
    os.environ["BENCH_BODY_END"] = str(time.time())
    return float(w.norm())


def first_step(marker_dir: str) -> float:
    """Write how long after the task function was called its body started (this rank)."""
    Path(marker_dir, f"rank{os.environ['RANK']}").write_text(str(time.time() - float(os.environ["BENCH_CALLED_AT"])))
    return 0.0


_TIMES = ("BENCH_INIT_S", "BENCH_FINISH_S", "BENCH_BODY_START", "BENCH_BODY_END")


def _stamped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Record the moment the task function is called, before @wandb_init starts the run, and (with
    ``BENCH_MARKS`` set) write this rank's times to ``$BENCH_MARKS/rank<RANK>.json`` once it has returned."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        called = time.time()
        os.environ["BENCH_CALLED_AT"] = str(called)
        try:
            return fn(*args, **kwargs)
        finally:
            marks = os.environ.get("BENCH_MARKS")
            if marks:
                times = {k: float(os.environ[k]) for k in _TIMES if k in os.environ}
                times.update(called=called, returned=time.time())
                Path(marks, f"rank{os.environ['RANK']}.json").write_text(json.dumps(times))

    return call


def _task(env: flyte.TaskEnvironment, body: Callable[..., float], name: str, **layout: Any) -> Any:
    def fn(*args: Any, **kwargs: Any) -> float:
        return body(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__annotations__ = dict(body.__annotations__)
    fn.__wrapped__ = body  # type: ignore[attr-defined]
    task = env.task(fn)
    if layout:
        task = wandb_init(project="bench", **layout)(task)
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
    """Each layout's whole 2 x 2 run against the same run without the plugin."""

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


@dataclass(frozen=True)
class _Job:
    """One launch of a 1 x 2 job, seen from outside (wall, largest process) and from its ranks (their times)."""

    wall: float
    peak_mib: float
    start: float
    """From the launch to the first rank's call of the task function: agent, node service, workers, imports."""
    init: float
    """Rank 0: opening its run (0 without W&B)."""
    finish: float
    """Rank 0: finishing its run."""
    teardown: float
    """From the last rank's return to the launch's end: the agent's end, node service stop, saving run files."""
    runs: tuple[Any, ...] = ()


def _launch_job(task: Any, steps: int, env: dict[str, str]) -> _Job:
    marks = tempfile.mkdtemp(prefix="bench-marks-")
    with PeakSampler(largest_descendant_rss) as sampler:
        launched = time.time()
        result = run_elastic_locally(task, max_restarts=0, env={**env, "BENCH_MARKS": marks}, steps=steps)
        done = time.time()
    ranks = {int(p.stem[4:]): json.loads(p.read_text()) for p in Path(marks).glob("rank*.json")}
    zero = ranks[0]
    init = zero.get("BENCH_INIT_S", zero["BENCH_BODY_START"] - zero["called"])
    finish = zero.get("BENCH_FINISH_S", zero["returned"] - zero["BENCH_BODY_END"])
    return _Job(
        wall=done - launched,
        peak_mib=sampler.peak / 2**20,
        start=min(r["called"] for r in ranks.values()) - launched,
        init=init,
        finish=finish,
        teardown=done - max(r["returned"] for r in ranks.values()),
        runs=result.runs,
    )


# No node service where nothing of the plugin runs: a pod without it has none.
_JOBS: dict[str, tuple[Any, dict[str, str]]] = {
    "none": (_task(one_node, train, "job_no_wandb"), {NODE_SERVICE_ENV: "0"}),
    "wandb.init": (_task(one_node, train_with_wandb_init, "job_wandb_init"), {NODE_SERVICE_ENV: "0"}),
    "plugin": (_task(one_node, train, "job_plugin", run_mode="auto"), {}),
    "report": (_task(one_node, train, "job_plugin_report", run_mode="auto", report=True), {}),
}


def one_node_job(repeat: int, steps: int, names: tuple[str, ...] = tuple(_JOBS)) -> list[Row]:
    """The same 1 x 2 job (auto, offline) without W&B, with a plain ``wandb.init`` on rank 0, with @wandb_init and
    with its report tab (``names``: which of them), launched in turn; then what start-up and teardown parts cost on
    their own. Rows compare the jobs that ran."""
    jobs: dict[str, list[_Job]] = {name: [] for name in names}
    for i in range(repeat):
        for name in list(names) if i % 2 == 0 else list(reversed(names)):
            task, env = _JOBS[name]
            jobs[name].append(_launch_job(task, steps, env))

    def med(name: str, what: str) -> float:
        return float(statistics.median(getattr(j, what) for j in jobs[name]))

    def row(what: str, attr: str, unit: str, mine: str, theirs: str, note: str) -> Row | None:
        if mine not in jobs or theirs not in jobs:
            return None
        return Row(f"1x2 job, {what}: {mine} vs {theirs}", med(mine, attr), med(theirs, attr), unit, note)

    rows = [
        row("wall", "wall", "s", "plugin", "none", f"{steps} steps, whole launch"),
        row("wall", "wall", "s", "wandb.init", "none", "rank 0 opens its run itself, its own service"),
        row("wall", "wall", "s", "plugin", "wandb.init", "@wandb_init vs a plain wandb.init on rank 0"),
        row("wall", "wall", "s", "report", "plugin", "report=True: the tab read and written at the end"),
        row("peak RSS of the largest process", "peak_mib", "MiB", "plugin", "none", "agent, workers, services"),
        row("peak RSS of the largest process", "peak_mib", "MiB", "plugin", "wandb.init", ""),
        row("launch to first body call", "start", "s", "plugin", "none", "agent, node service start, workers"),
        row("init (rank 0)", "init", "s", "plugin", "wandb.init", "plugin: joins the node's service"),
        row("finish (rank 0)", "finish", "s", "plugin", "wandb.init", ""),
        row("last return to launch end", "teardown", "s", "plugin", "none", "node service stop, run files saved"),
        row("last return to launch end", "teardown", "s", "wandb.init", "none", ""),
    ]
    return [r for r in rows if r is not None] + _parts(repeat, jobs["plugin"][-1].runs, med("plugin", "wall"))


def _import_wandb(repeat: int) -> float:
    """Seconds ``import wandb`` adds to a fresh interpreter (median of alternating pairs)."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    pairs = [(run("import wandb"), run("pass")) for _ in range(repeat)]
    return statistics.median(a - b for a, b in pairs)


def _parts(repeat: int, runs: tuple[Any, ...], job_wall: float) -> list[Row]:
    """The pod's own start-up and teardown steps, each timed alone in this process (as the agent runs them), as a
    share of the plugin's job."""
    import flyte

    from flyteplugins_wandb.pod import node_service, runs_to_save, save_run_files

    starts, stops, saves = [], [], []
    with task_context():
        flyte.init(root_dir=tempfile.mkdtemp(prefix="bench-flyte-root-"))
        for _ in range(repeat):
            started = time.perf_counter()
            with node_service(stop_timeout=60.0):
                up = time.perf_counter()
            stops.append(time.perf_counter() - up)
            starts.append(up - started)
            began = time.perf_counter()
            save_run_files(runs_to_save(runs, set(), download_logs=False))
            saves.append(time.perf_counter() - began)
    share = "alone, vs the plugin's whole job (ratio: its share)"
    return [
        Row("part: importing wandb (the pod, to start its service)", _import_wandb(repeat), job_wall, "s", share),
        Row("part: node service start", statistics.median(starts), job_wall, "s", share),
        Row("part: node service stop", statistics.median(stops), job_wall, "s", share),
        Row(f"part: saving the run files ({len(runs)} run)", statistics.median(saves), job_wall, "s", share),
    ]


def _machine_cpu() -> float:
    """CPU seconds this machine has spent busy (all processes): an agent started from the fork server is not this
    process's child, so the machine's count is what both ways of starting agents can be compared by."""
    with open("/proc/stat", encoding="ascii") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def agent_start(repeat: int, procs: int) -> list[Row]:
    """The job without W&B (1 node x ``procs``), its agent started from run_elastic_locally's fork server (torch
    imported once) against a fresh interpreter per agent (spawn), alternately: wall and the machine's CPU."""
    from flyteplugins_wandb.local import _launcher

    task, env = _JOBS["none"]
    forked, spawned = _launcher._agent_processes, _launcher._spawned_agents
    measured: dict[str, list[tuple[float, float]]] = {"fork server": [], "spawn": []}
    try:
        for i in range(repeat):
            for way in ("fork server", "spawn") if i % 2 == 0 else ("spawn", "fork server"):
                _launcher._agent_processes = forked if way == "fork server" else spawned  # type: ignore[method-assign]
                cpu, started = _machine_cpu(), time.perf_counter()
                run_elastic_locally(task, nproc_per_node=procs, max_restarts=0, env=env, steps=5)
                measured[way].append((time.perf_counter() - started, _machine_cpu() - cpu))
    finally:
        _launcher._agent_processes = forked  # type: ignore[method-assign]
    med = {way: [statistics.median(m[k] for m in runs) for k in (0, 1)] for way, runs in measured.items()}
    note = "agents from the fork server vs spawned"
    return [
        Row(f"1x{procs} launch without W&B, wall", med["fork server"][0], med["spawn"][0], "s", note),
        Row(f"1x{procs} launch without W&B, machine CPU", med["fork server"][1], med["spawn"][1], "s", note),
    ]


def main(quick: bool) -> list[Row]:
    all_layouts = [(m, s) for m in ("auto", "shared", "new") for s in ("global", "worker")]
    with offline_wandb():
        # The smoke run (quick): the plugin's job against the one without W&B, and the shared start-up. The full
        # run adds the other jobs and every layout on 2 nodes (end_to_end: the same launch, timed, per layout).
        if quick:
            return one_node_job(1, 5, ("none", "plugin")) + shared_startup(1) + agent_start(1, procs=1)
        return one_node_job(5, 50) + shared_startup(5) + agent_start(5, procs=2) + end_to_end(3, 50, all_layouts)
