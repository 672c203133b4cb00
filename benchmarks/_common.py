"""Shared bits of the benchmarks: medians, a result row, a table, and a remote-mode Flyte context."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Row:
    """One comparison: a measured value against its baseline, taken side by side in the same run."""

    name: str
    value: float
    baseline: float
    unit: str
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


def median_time(fn: Callable[[], Any], repeat: int, number: int = 1) -> float:
    """Median over ``repeat`` samples of the mean time of ``number`` calls, in seconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def table(title: str, rows: list[Row]) -> str:
    lines = [f"## {title}", "", "| benchmark | value | baseline | ratio | note |", "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r.name} | {r.value:.4g} {r.unit} | {r.baseline:.4g} {r.unit} | {r.ratio:.3f} | {r.note} |")
    return "\n".join(lines)


def machine() -> str:
    import torch
    import wandb

    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}, wandb {wandb.__version__}"
    )


@contextlib.contextmanager
def offline_wandb() -> Iterator[str]:
    """W&B offline into a temporary directory, restored afterwards."""
    saved = dict(os.environ)
    root = tempfile.mkdtemp(prefix="bench-wandb-")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        path = os.path.join(root, name.lower())
        os.makedirs(path, exist_ok=True)
        os.environ[name] = path
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true")
    try:
        yield root
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def task_context(run_name: str = "bench", action_name: str = "a0") -> Iterator[None]:
    """A remote-mode Flyte TaskContext, as a pod has, so decorated task functions run as they do on a cluster."""
    from flyteplugins_wandb.local import pod_context

    with pod_context(run_name, action_name, root=tempfile.mkdtemp(prefix="bench-flyte-"), project="p"):
        yield


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (0 where it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return 0


def largest_descendant_rss() -> int:
    """Resident bytes of the largest process this one started (directly or not): an agent, a worker, a service."""
    from flyteplugins_wandb.pod._run_files import descendants

    return max((rss_bytes(pid) for pid in descendants(os.getpid())), default=0)


class PeakSampler:
    """The largest value ``measure()`` returned while the block ran (sampled every 20 ms, off the main thread)."""

    def __init__(self, measure: Callable[[], int]) -> None:
        self.peak = 0
        self._measure = measure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._measure())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
