"""Run files that must outlive the pod: which to save, and saving them to Flyte's storage as a ``flyte.io.Dir``.

A pod's filesystem goes with the pod. Offline runs (``WANDB_MODE=offline``, sweep trials forced offline, every
shared-mode writer's directory) and online runs whose finish timed out exist nowhere else, so they are saved when
the task's processes have ended; ``download_logs=True`` saves online runs too. The saved directory holds one
numbered sub-directory per writer, in the order they ran, and ``python -m flyteplugins_wandb.sync`` turns it into
W&B runs later.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from .._keys import MANIFEST_ENV
from ._manifest import RunRecord

__all__ = [
    "SAVED_ENV",
    "TRACE_NAME",
    "descendants",
    "runs_to_save",
    "save_run_files",
    "stage_run_files",
    "wait_until_written",
]

logger = logging.getLogger("flyteplugins_wandb")

TRACE_NAME: Final = "wandb_run_files"
"""The name the Flyte UI shows for the saved directory (a trace of the task)."""
SAVED_ENV: Final = MANIFEST_ENV
"""Where the saved directory's address is also noted (``saved-<pid>.txt``), when set."""


def runs_to_save(runs: Iterable[RunRecord], unfinished: Collection[str], download_logs: bool) -> list[RunRecord]:
    """The runs whose files must be saved, one per directory, in the order they were written: offline runs always;
    online runs whose finish timed out (``unfinished`` holds their directories) or all of them with
    ``download_logs``; disabled runs never."""
    chosen: dict[str, RunRecord] = {}
    for r in runs:
        if not r.directory or r.directory in chosen or r.wandb_mode == "disabled":
            continue
        if r.wandb_mode == "offline" or download_logs or r.directory in unfinished:
            chosen[r.directory] = r
    return sorted(
        chosen.values(),
        key=lambda r: (r.attempt, r.restart_count, r.run_id, -1 if r.rank is None else r.rank, r.directory or ""),
    )


def _writer_name(r: RunRecord) -> str:
    who = r.label or (f"rank-{r.rank}" if r.rank is not None else "run")
    return f"{r.run_id}-{who}-attempt-{r.attempt}-restart-{r.restart_count}"


def descendants(pid: int) -> list[int]:
    """The pids of every process below ``pid`` (from /proc; empty where there is none)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    # The command name in parentheses may hold spaces: the parent pid follows its closing one.
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [c for c, p in parents.items() if p in frontier]
        found.extend(children)
        frontier = children
    return found


def _holds_open(pid: int, roots: tuple[str, ...]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        # Only the run's log: the service keeps its own debug log in the run directory open until it exits.
        if target.startswith(roots) and target.endswith(".wandb"):
            return True
    return False


def wait_until_written(directories: Iterable[str], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until no process started by this one (its own W&B service) holds a file of
    ``directories`` open: W&B writes out a run's log file when the run's stream closes, moments after ``finish``
    returns. True when nothing holds them, or where this cannot be checked (no ``/proc``)."""
    if not os.path.isdir("/proc"):
        return True
    roots = tuple(os.path.join(os.path.abspath(d), "") for d in directories)
    deadline = time.monotonic() + timeout
    while any(_holds_open(pid, roots) for pid in descendants(os.getpid())):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stage_run_files(runs: list[RunRecord], root: str | os.PathLike[str]) -> list[Path]:
    """Copy each run's directory to ``root/NNN-<run id>-<writer>-attempt-<a>-restart-<r>/<its own name>``; the
    number keeps the order in which ``wandb sync`` must replay them. Missing directories are skipped with a
    warning."""
    staged = []
    for i, r in enumerate(runs):
        source = Path(str(r.directory))
        if not source.is_dir():
            logger.warning("the files of run %s are gone from %s; they cannot be saved", r.run_id, source)
            continue
        target = Path(root, f"{i:03d}-{_writer_name(r)}", source.name)
        # Sockets and the like in tmp/ cannot be copied and are not needed to sync.
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.sock", "*.lock"), symlinks=True)
        staged.append(target)
    return staged


def _upload(path: str) -> Any:
    from flyte._context import internal_ctx
    from flyte.io import Dir

    ctx = internal_ctx()
    # Name the destination: given none, a local raw-data store would keep pointing at the staging copy.
    destination = ctx.raw_data.get_random_remote_path("wandb-run-files") if ctx.has_raw_data else None
    return Dir.from_local_sync(path, remote_destination=destination)


@functools.cache
def _traced_upload() -> Any:
    import flyte
    from flyte.io import Dir

    def wandb_run_files(path: str) -> Any:
        """The W&B run files of this task, as a directory: sync them with ``python -m flyteplugins_wandb.sync``."""
        return _upload(path)

    # Flyte reads the step's interface from real types; this module's annotations are strings.
    wandb_run_files.__annotations__ = {"path": str, "return": Dir}
    return flyte.trace(wandb_run_files)


def save_run_files(
    runs: list[RunRecord], environ: Mapping[str, str] = os.environ, *, settle_timeout: float = 30.0
) -> Any:
    """Save ``runs``' directories to Flyte's storage as one ``flyte.io.Dir``, shown in the Flyte UI as the output
    of a ``wandb_run_files`` step; returns it, or None when there was nothing to save or saving failed (a
    warning then says what is lost)."""
    if not runs:
        return None
    if not wait_until_written([str(r.directory) for r in runs], settle_timeout):
        logger.warning("W&B was still writing run files after %.0fs; saving them as they are", settle_timeout)
    staging = tempfile.mkdtemp(prefix="wandb-run-files-")
    saved = None
    try:
        if not stage_run_files(runs, staging):
            return None  # each missing directory was warned about
        try:
            saved = _traced_upload()(staging)
        except RuntimeError as e:
            # No Flyte controller in this process (a clustered worker): upload without the UI step.
            logger.info("saving W&B run files without a Flyte trace (%s)", e)
            saved = _upload(staging)
        # A caller that asked for the address (a local launch) reports the runs itself, with the one upload command
        # that is right for where their files are; a pod's log is where a cluster's user finds it.
        noted = _note(saved.path, environ)
        logger.log(
            logging.INFO if noted else logging.WARNING,
            "W&B run files of %d run(s) saved to %s; turn them into W&B runs with: "
            "python -m flyteplugins_wandb.sync %s",
            len(runs),
            saved.path,
            saved.path,
        )
        return saved
    except Exception as e:  # saving must never fail the task
        logger.warning(
            "saving the W&B run files of %s failed (%s: %s); they are lost with the pod",
            ", ".join(sorted({r.run_id for r in runs})),
            type(e).__name__,
            e,
        )
        return None
    finally:
        if saved is None or os.path.abspath(str(saved.path)) != os.path.abspath(staging):
            shutil.rmtree(staging, ignore_errors=True)


def _note(path: str, environ: Mapping[str, str]) -> bool:
    """Note ``path`` where ``SAVED_ENV`` asks for it; True when it was noted."""
    target = environ.get(SAVED_ENV)
    if not (target and os.path.isdir(target)):
        return False
    with open(os.path.join(target, f"saved-{os.getpid()}.txt"), "a", encoding="utf-8") as f:
        f.write(path + "\n")
    return True
