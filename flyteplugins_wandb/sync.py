"""Turn the W&B run files a task saved (its ``wandb_run_files`` directory in the Flyte UI) into W&B runs.

    python -m flyteplugins_wandb.sync <directory or its Flyte storage address>... [--dry-run] [wandb sync options]

The one command for uploading offline runs, wherever their files are: the ``wandb_run_files`` directory a task saved
(on a cluster the pod's own disk is gone), or the runs' own directories on this machine (a local launch's summary
prints the command with them). Several sources are synced one after the other, in the order given. A storage
address (``s3://...``, ``gs://...``) is downloaded first, with the Flyte configuration that
``flyte.init_from_config()`` finds. A copy saved while the task ran (``wandb-run-files-live/...``, what is left of
a pod that died whole) has its logs in parts; they are joined first, in a copy. Then ``wandb sync`` runs on each run
directory in the order they were written (so a restarted or retried run is replayed after the life before it),
every shared-mode writer included.
``--dry-run`` only prints the directories. Options after the directory go to ``wandb sync`` (for example
``--project``, ``--entity``). Exits non-zero if any sync failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .pod import assemble_parts
from .readback import wandb_cli

__all__ = ["main", "run_directories"]


def run_directories(root: str | os.PathLike[str]) -> list[Path]:
    """Every run directory under ``root`` (one that holds a ``run-*.wandb`` file), in the order to sync them."""
    return sorted({p.parent for p in Path(root).rglob("run-*.wandb")})


def _local_copy(source: str, into: str) -> str:
    if os.path.isdir(source):
        return source
    if "://" not in source:
        raise SystemExit(f"no such directory: {source!r} (give a local directory or a storage address like s3://...)")
    import flyte
    from flyte.io import Dir

    flyte.init_from_config()
    return str(Dir.from_existing_remote(source).download_sync(into))


def _joined(local: str, into: str) -> str:
    """``local`` with the parts of a live copy joined onto their files (in a copy under ``into`` where ``local``
    is the user's own directory)."""
    if not any(p.is_dir() for p in Path(local).rglob("*.parts")):
        return local
    if not os.path.abspath(local).startswith(os.path.join(os.path.abspath(into), "")):
        local = shutil.copytree(local, os.path.join(into, "joined"), symlinks=True)
    assemble_parts(local)
    return local


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flyteplugins_wandb.sync", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "sources", nargs="+", metavar="source", help="a saved or run directory: a local path or a Flyte storage address"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the run directories, sync nothing")
    args, wandb_args = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="wandb-run-files-") as tmp:
        runs = []
        for i, source in enumerate(args.sources):
            found = run_directories(_joined(_local_copy(source, into := os.path.join(tmp, str(i))), into))
            if not found:
                print(f"no W&B run directories in {source}", file=sys.stderr)
                return 1
            runs += [r for r in found if r not in runs]
        failed = 0
        for run_dir in runs:
            print(run_dir, flush=True)
            if not args.dry_run:
                failed += (
                    subprocess.run([wandb_cli() or "wandb", "sync", *wandb_args, str(run_dir)], check=False).returncode
                    != 0
                )
        if failed:
            print(f"{failed} of {len(runs)} run directories failed to sync", file=sys.stderr)
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
