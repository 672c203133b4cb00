"""Run every benchmark and print one table per group: each figure is the median of several repetitions,
measured side by side with its baseline in this one run. ``--quick`` runs tiny sizes (CI smoke-runs it).

    python benchmarks/run.py [--quick] [--only import,overhead,scale,elastic,log_reduced,report,node_service,live_copy]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import machine, table  # noqa: E402

GROUPS = ("import", "overhead", "scale", "log_reduced", "elastic", "report", "node_service", "live_copy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that the benchmarks still run")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated subset of {GROUPS}")
    args = parser.parse_args()
    chosen = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(chosen) - set(GROUPS))
    if unknown:
        parser.error(f"unknown benchmark group(s) {unknown}; choose from {GROUPS}")

    print(f"# flyteplugins_wandb benchmarks{' (quick)' if args.quick else ''}\n\n{machine()}\n")
    for group in chosen:
        start = time.perf_counter()
        if group == "log_reduced":
            # A separate process: it spawns its own gloo ranks.
            script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_log_reduced.py")
            if not os.path.exists(script):
                print("## log_reduced\n\n(not available)\n")
                continue
            subprocess.run([sys.executable, script, *(["--quick"] if args.quick else [])], check=True)
            continue
        module = __import__(f"bench_{group}")
        rows = module.main(args.quick)
        print(table(group, rows))
        print(f"\n({time.perf_counter() - start:.0f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
