"""The cost of the report tab (``report=True``) at a task's end: reading an offline run's files, rendering the
runs table and charts, and flushing Flyte's report, for 1 and 16 metrics x 10,000 steps, against the time the task
spent logging those steps."""

from __future__ import annotations

import time

from _common import Row, median_time, offline_wandb, task_context

from flyteplugins_wandb.pod._manifest import RunRecord
from flyteplugins_wandb.readback._report import render_report
from flyteplugins_wandb.readback._report_read import build_view, read_writers
from flyteplugins_wandb.task._report_task import _flush, write_tab


def _logged_run(metrics: int, steps: int) -> tuple[RunRecord, float]:
    """An offline run with ``metrics`` scalars logged at each of ``steps`` steps; and how long the logging took."""
    import wandb

    run = wandb.init(project="bench-report", mode="offline", reinit="create_new")
    names = [f"m{i:02d}" for i in range(metrics)]
    start = time.perf_counter()
    for step in range(steps):
        run.log({name: (i + 1) / (step + 1) for i, name in enumerate(names)}, step=step)
    logging = time.perf_counter() - start
    run.finish()
    record = RunRecord(run.id, None, None, None, "auto", "global", "offline", None, None, None, 0, 0,
                       "bench-report", None, run.settings.sync_dir)  # fmt: skip
    return record, logging


def main(quick: bool) -> list[Row]:
    steps = 200 if quick else 10_000
    repeat = 1 if quick else 5
    rows = []
    with offline_wandb(), task_context():
        for metrics in (1, 16):
            record, logging = _logged_run(metrics, steps)

            def end_of_task(record: RunRecord = record) -> None:
                write_tab([record])
                _flush(60.0)

            total = median_time(end_of_task, repeat)
            read = median_time(lambda record=record: read_writers([record]), repeat)
            data = read_writers([record])
            view = build_view([record], data)
            render = median_time(lambda view=view: render_report(view), repeat)
            size = len(render_report(view).encode()) / 1024
            rows.append(
                Row(
                    f"report at the task's end, {metrics} metric{'s' if metrics > 1 else ''} x {steps:,} steps",
                    total,
                    logging,
                    "s",
                    f"vs logging the steps; reading {read:.2f} s, rendering {render * 1000:.0f} ms, {size:.0f} KiB",
                )
            )
    return rows
