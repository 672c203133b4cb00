"""log_reduced against the per-metric all_gather that users write by hand (the seed's pattern: every rank gathers
each metric, rank 0 averages), with 16 metrics on 4 real gloo ranks, side by side in one run.

No W&B run is open, so only what differs is timed: packing, communication, and getting the result back. Each
figure is the median over several repetitions of the mean time per call, measured on rank 0 after a barrier.

    python benchmarks/bench_log_reduced.py [--quick] [--ranks 4] [--metrics 16]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import Row, table  # noqa: E402


def seed_pattern(metrics: dict[str, Any], rank: int, world: int) -> dict[str, float] | None:
    """The hand-written way: one all_gather per metric on every rank, the mean taken on rank 0."""
    import torch
    import torch.distributed as dist

    means: dict[str, float] = {}
    for key, value in metrics.items():
        mine = value.detach().clone()
        if mine.is_cuda:
            mine = mine.cpu()
        gathered = [torch.zeros_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine)
        if rank == 0:
            means[key] = torch.stack(gathered).mean().item()
    return means if rank == 0 else None


def _worker(rank: int, world: int, port: int, n_metrics: int, number: int, repeat: int, results: Any) -> None:
    import torch
    import torch.distributed as dist

    from flyteplugins_wandb.run._reduce import log_reduced

    torch.set_num_threads(1)  # several ranks share few cores; intra-op threads would only add noise
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        metrics = {f"train/m{i:02d}": torch.tensor(float(rank * n_metrics + i)) for i in range(n_metrics)}
        candidates: dict[str, Callable[[], Any]] = {
            "log_reduced": lambda: log_reduced(metrics),
            "all_gather per metric": lambda: seed_pattern(metrics, rank, world),
        }
        # Same answer first: a faster wrong result would be no result.
        ours, theirs = log_reduced(metrics), seed_pattern(metrics, rank, world)
        if theirs is not None and any(abs(ours[k] - theirs[k]) > 1e-6 * max(1.0, abs(theirs[k])) for k in ours):
            raise AssertionError(f"the two methods disagree: {ours} != {theirs}")
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(repeat):
            for name, fn in candidates.items():  # interleaved, so drifting load hits both alike
                dist.barrier()
                start = time.perf_counter()
                for _ in range(number):
                    fn()
                samples[name].append((time.perf_counter() - start) / number)
        if rank == 0:
            results.put(samples)
    finally:
        dist.destroy_process_group()


def machine() -> str:
    """What the figures were taken on (wandb is not needed: no run is opened)."""
    import torch

    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(ranks: int, n_metrics: int, number: int, repeat: int) -> dict[str, list[float]]:
    """Per-call times (seconds) of each method on rank 0: one sample per repetition."""
    # fork where there is one: the ranks start in milliseconds instead of re-importing torch each.
    ctx: Any = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    results = ctx.Queue()
    port = _free_port()
    import torch  # noqa: F401  imported once here, inherited by forked ranks

    procs = [
        ctx.Process(target=_worker, args=(r, ranks, port, n_metrics, number, repeat, results)) for r in range(ranks)
    ]
    for p in procs:
        p.start()
    try:
        samples: dict[str, list[float]] = results.get(timeout=600)
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.terminate()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise RuntimeError(f"benchmark ranks failed with exit codes {failed}")
    return samples


def main(quick: bool = False, ranks: int = 4, n_metrics: int = 16) -> list[Row]:
    number, repeat = (5, 3) if quick else (100, 7)
    samples = measure(ranks, n_metrics, number, repeat)
    ours = statistics.median(samples["log_reduced"]) * 1e3
    theirs = statistics.median(samples["all_gather per metric"]) * 1e3
    return [
        Row(
            f"log_reduced, {n_metrics} metrics, {ranks} gloo ranks",
            ours,
            theirs,
            "ms/call",
            f"baseline: one all_gather per metric (seed pattern); {theirs / ours:.1f}x faster; "
            f"median of {repeat} x {number} calls",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that the benchmark still runs")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--metrics", type=int, default=16)
    args = parser.parse_args()
    if args.ranks < 1 or args.metrics < 1:
        parser.error("--ranks and --metrics must be >= 1")
    started = time.perf_counter()
    print(f"{machine()}\n")
    print(table("log_reduced", main(args.quick, args.ranks, args.metrics)))
    print(f"\n({time.perf_counter() - started:.0f} s)\n")
