"""What @wandb_init costs a process: on ranks without a run (auto mode), at start-up where there is a run, and
per run.log call."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap

from _common import Row, median_time, offline_wandb, task_context

# A fresh interpreter per sample: import costs and peak memory only show there.
_NO_RUN_PROBE = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ.update(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", LOCAL_WORLD_SIZE="2", GROUP_RANK="0")
    import flyte
    sys.path.insert(0, {bench_dir!r})
    from _common import task_context
    decorate = {decorate!r}
    env = flyte.TaskEnvironment(name="bench")
    def body(x: int) -> int:
        return x + 1
    if decorate:
        from flyteplugins_wandb import wandb_init
        task = wandb_init(env.task(body))
    else:
        task = env.task(body)
    with task_context():
        start = time.perf_counter()
        task.func(1)
        elapsed = time.perf_counter() - start
    # VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, and this probe's parent (the benchmark) is large.
    with open("/proc/self/status") as f:
        rss1 = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({{"elapsed": elapsed, "rss_kb": rss1, "wandb": "wandb" in sys.modules}}))
    """
)


def _probe(decorate: bool) -> dict[str, float]:
    code = _NO_RUN_PROBE.format(bench_dir=os.path.dirname(os.path.abspath(__file__)), decorate=decorate)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def no_run_rank(repeat: int) -> list[Row]:
    plain = [_probe(False) for _ in range(repeat)]
    decorated = [_probe(True) for _ in range(repeat)]
    assert not any(d["wandb"] for d in decorated), "a rank without a run imported wandb"
    med = statistics.median
    extra = (med(d["elapsed"] for d in decorated) - med(p["elapsed"] for p in plain)) * 1e3
    grew = (med(d["rss_kb"] for d in decorated) - med(p["rss_kb"] for p in plain)) / 1024
    return [
        Row(
            "rank without a run: task call (auto, rank 1)",
            med(d["elapsed"] for d in decorated) * 1e3,
            med(p["elapsed"] for p in plain) * 1e3,
            "ms",
            f"{extra:+.2f} ms (target < 5 ms); wandb not imported",
        ),
        Row(
            "rank without a run: peak RSS of the process",
            med(d["rss_kb"] for d in decorated) / 1024,
            med(p["rss_kb"] for p in plain) / 1024,
            "MiB",
            f"{grew:+.2f} MiB (target < 1 MiB)",
        ),
    ]


def run_start_and_log(repeat: int, logs: int) -> list[Row]:
    import flyte
    import wandb

    from flyteplugins_wandb import get_wandb_run, wandb_init

    env = flyte.TaskEnvironment(name="bench-run")
    rows = []
    with offline_wandb(), task_context():

        def direct() -> None:
            run = wandb.init(project="bench", id="direct", mode="offline", reinit="create_new", resume="allow")
            run.finish()

        @wandb_init(project="bench")
        @env.task
        def decorated() -> None:
            pass

        direct()  # warm up wandb's service for both sides
        t_direct = median_time(direct, repeat)
        t_plugin = median_time(lambda: decorated.func(), repeat)
        rows.append(Row("start-up + finish of a run", t_plugin, t_direct, "s", "@wandb_init vs wandb.init"))

        payload = {"loss": 0.5, "acc": 0.9}

        @wandb_init(project="bench")
        @env.task
        def log_both() -> tuple[float, float]:
            # Both runs are open side by side and measured alternately, so neither gets a quieter machine.
            theirs = wandb.init(project="bench", id="log-direct", mode="offline", reinit="create_new")
            ours = get_wandb_run()
            assert ours is not None
            mine, direct = [], []
            for _ in range(repeat):
                mine.append(median_time(lambda: ours.log(payload), 1, logs))
                direct.append(median_time(lambda: theirs.log(payload), 1, logs))
            theirs.finish()
            return statistics.median(mine), statistics.median(direct)

        t_log_plugin, t_log_direct = log_both.func()
        rows.append(Row("run.log call", t_log_plugin * 1e6, t_log_direct * 1e6, "us", "get_wandb_run() is wandb's run"))
    return rows


def main(quick: bool) -> list[Row]:
    return no_run_rank(3 if quick else 9) + run_start_and_log(repeat=2 if quick else 7, logs=50 if quick else 1000)
