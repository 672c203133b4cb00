"""The live copy (run files saved to storage every period while the task runs) beside the training itself: a real
offline run logs 16 metrics per step of a small torch training loop for a while, with the pod's saver thread
running (``FLYTEPLUGINS_WANDB_SAVE_EVERY`` 1 s and 10 s; the default is 30 s) and without, alternately. Reported
per minute of training: the saver's CPU time, the bytes it sent against the bytes W&B wrote, and the training steps
done."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import fsspec
from _common import Row, offline_wandb

from flyteplugins_wandb.pod import RunRecord
from flyteplugins_wandb.pod._live_copy import LiveCopy, _Saver

METRICS = 16


class _TimedCopy(LiveCopy):
    """A live copy that adds up the CPU time of its passes (they run in the saver's thread)."""

    cpu: float = 0.0
    bytes_sent: int = 0

    def save(self, runs: list[RunRecord]) -> int:
        start = time.thread_time()
        sent = super().save(runs)
        self.cpu += time.thread_time() - start
        self.bytes_sent += sent
        return sent


def _record(directory: str) -> RunRecord:
    return RunRecord(
        run_id="bench",
        group=None,
        label=None,
        primary=None,
        run_mode="new",
        rank_scope="global",
        wandb_mode="offline",
        rank=0,
        local_rank=0,
        worker_index=0,
        restart_count=0,
        attempt=0,
        project="bench",
        entity=None,
        directory=directory,
    )


def _train(seconds: float, period: float | None) -> dict[str, float]:
    """Train and log for ``seconds``; with ``period``, a saver thread saves the run every ``period`` seconds."""
    import torch
    import wandb

    torch.manual_seed(0)
    model = torch.nn.Linear(256, 256)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    data = torch.randn(64, 256)
    # As the pod sets it up (pod._live_copy.start_live_copy): W&B writes its log every quarter period, the saver
    # saves every three quarters; without a live copy, W&B's own default applies.
    flush = min(15.0, period / 4) if period else 15.0
    run = wandb.init(project="bench", mode="offline", settings=wandb.Settings(x_transaction_log_flush_interval=flush))
    copy = _TimedCopy(tempfile.mkdtemp(prefix="bench-live-"), fsspec.filesystem("file"))
    saver = _Saver(copy, lambda: [_record(run.settings.sync_dir)], period - flush) if period else None
    if saver:
        saver.start()
    steps, start, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        loss = model(data).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log({f"m{i}": float(loss.detach()) + i for i in range(METRICS)})
        steps += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    if saver:
        saver.stop()
    written = sum(p.stat().st_size for p in Path(run.settings.sync_dir).glob("run-*.wandb"))
    run.finish()
    per_min = 60.0 / elapsed
    return {
        "steps": steps * per_min,
        "cpu": cpu * per_min,
        "saver_cpu": copy.cpu * per_min,
        "sent": copy.bytes_sent * per_min,
        "written": written * per_min,
    }


def main(quick: bool = False) -> list[Row]:
    seconds, repeat = (2.0, 1) if quick else (15.0, 3)
    results: dict[Any, list[dict[str, float]]] = {None: [], 1.0: [], 10.0: []}
    with offline_wandb():
        _train(min(seconds, 2.0), None)  # warm-up: wandb's first start in a process is slower
        for _ in range(repeat):
            for period in results:  # alternately, so that the machine's load falls on each alike
                results[period].append(_train(seconds, period))

    def med(period: float | None, key: str) -> float:
        return statistics.median(r[key] for r in results[period])

    rows = []
    for period in (1.0, 10.0):
        rows.append(
            Row(
                f"saver CPU per minute of training, period {period:.0f} s",
                med(period, "saver_cpu"),
                med(period, "cpu"),
                "s",
                "vs the training process's CPU per minute",
            )
        )
        rows.append(
            Row(
                f"bytes sent per minute, period {period:.0f} s",
                med(period, "sent") / 1024,
                med(period, "written") / 1024,
                "KiB",
                "vs what W&B wrote (incremental: only new bytes are sent)",
            )
        )
        rows.append(
            Row(
                f"training steps per minute, period {period:.0f} s",
                med(period, "steps"),
                med(None, "steps"),
                "steps",
                f"vs no live copy; {METRICS} metrics logged per step, {os.cpu_count()} CPUs",
            )
        )
    return rows
