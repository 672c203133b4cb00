"""A record of the runs this plugin opened, one JSON line per run: opt-in for local launches and tests, and kept
by a pod for its workers so that their run files can be saved when they end.

Set ``FLYTEPLUGINS_WANDB_MANIFEST`` to a directory and every process that opens a run appends a line to a file
of its own there (no locking needed across processes). Within one process, :func:`collecting` gathers the same
records (and the runs whose finish timed out) for the task body that runs inside it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import _keys as keys

__all__ = [
    "RunRecord",
    "collecting",
    "collecting_unfinished",
    "read_manifest",
    "read_unfinished",
    "record_next_step",
    "record_run",
    "recorded_next_step",
    "record_unfinished",
    "writer_label",
]


@dataclass(frozen=True)
class RunRecord:
    """A run that one process opened (or, in shared mode, attached to as one writer)."""

    run_id: str
    group: str | None
    label: str | None
    primary: bool | None
    run_mode: str
    rank_scope: str
    wandb_mode: str
    rank: int | None
    local_rank: int | None
    worker_index: int | None
    restart_count: int
    attempt: int
    project: str | None
    entity: str | None
    directory: str | None
    """The run's local files (offline runs can be synced from here with ``wandb sync``)."""


def writer_label(record: RunRecord) -> str:
    """Who wrote a run, in the words the launch table and the report tab both use: the shared-mode writer label
    (``rank 0``, ``worker 1 rank 0``), else ``rank N``, else ``not distributed``; then, in brackets, ``primary``,
    the node (unless the label names it), the elastic restart and the Flyte retry, where they apply."""
    notes = []
    if record.label:
        who = record.label.replace("-", " ")
        if record.primary:
            notes.append("primary")
    elif record.rank is None:
        who = "not distributed"
    else:
        who = f"rank {record.rank}"
    if record.worker_index is not None and not (record.label and record.label.startswith("worker")):
        notes.append(f"node {record.worker_index}")
    if record.restart_count:
        notes.append(f"restart {record.restart_count}")
    if record.attempt > 0:  # Flyte counts attempts from 0
        notes.append(f"retry {record.attempt}")
    return f"{who} ({', '.join(notes)})" if notes else who


# What the task bodies running in this context gather (ContextVars: sibling tasks in one process each keep their
# own). Every active gatherer gets each record, so that nested ones (the report tab around the saved run files)
# see the same runs.
_collected: ContextVar[tuple[list[RunRecord], ...]] = ContextVar("flyteplugins_wandb_collected", default=())
_unfinished: ContextVar[tuple[set[str], ...]] = ContextVar("flyteplugins_wandb_unfinished", default=())


@contextlib.contextmanager
def collecting() -> Iterator[list[RunRecord]]:
    """Gather the records of the runs opened in this context while the block runs (whether or not the manifest
    file is enabled)."""
    sink: list[RunRecord] = []
    token = _collected.set((*_collected.get(), sink))
    try:
        yield sink
    finally:
        _collected.reset(token)


@contextlib.contextmanager
def collecting_unfinished() -> Iterator[set[str]]:
    """Gather the directories of the runs opened in this context whose finish did not complete in time."""
    sink: set[str] = set()
    token = _unfinished.set((*_unfinished.get(), sink))
    try:
        yield sink
    finally:
        _unfinished.reset(token)


def record_unfinished(directory: str | None, environ: Mapping[str, str] = os.environ) -> None:
    """Note that the run whose files are in ``directory`` did not finish in time."""
    if not directory:
        return
    for sink in _unfinished.get():
        sink.add(directory)
    for target in _targets(environ):
        with (Path(target) / f"unfinished-{os.getpid()}.txt").open("a", encoding="utf-8") as f:
            f.write(directory + "\n")


def read_unfinished(directory: str | os.PathLike[str]) -> set[str]:
    """The directories :func:`record_unfinished` noted under ``directory``."""
    return {
        line
        for path in Path(directory).glob("unfinished-*.txt")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line
    }


def record_run(entry: RunRecord, environ: Mapping[str, str] = os.environ) -> None:
    for sink in _collected.get():
        sink.append(entry)
    for target in _targets(environ):
        with (Path(target) / f"runs-{os.getpid()}.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(entry)) + "\n")


def _targets(environ: Mapping[str, str]) -> list[str]:
    """The user's manifest and the pod's ledger (its own workers' runs only), where set."""
    return list(dict.fromkeys(d for d in (environ.get(keys.MANIFEST_ENV), environ.get(keys.POD_LEDGER_ENV)) if d))


def read_manifest(directory: str | os.PathLike[str]) -> list[RunRecord]:
    """Every record under ``directory``, ordered by (run id, rank)."""
    records = [
        RunRecord(**json.loads(line))
        for path in sorted(Path(directory).glob("runs-*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return sorted(records, key=lambda r: (r.run_id, -1 if r.rank is None else r.rank))


def _step_file(ledger: str, run_id: str, label: str | None) -> Path:
    # Run ids and labels are W&B-safe names, but a path separator in either must not leave the ledger.
    name = f"{run_id}--{label or ''}".replace(os.sep, "_")
    return Path(ledger) / f"next-step-{name}-{os.getpid()}.txt"


def record_next_step(run_id: str, label: str | None, step: int, environ: Mapping[str, str] = os.environ) -> None:
    """Note, in the pod's ledger, the step the next row of this writer of ``run_id`` would have had: a restart of
    the writer in this pod continues from there (wandb restarts an offline run's steps at 0)."""
    ledger = environ.get(keys.POD_LEDGER_ENV)
    if ledger:
        _step_file(ledger, run_id, label).write_text(str(step), encoding="utf-8")


def recorded_next_step(run_id: str, label: str | None, environ: Mapping[str, str] = os.environ) -> int:
    """The highest step :func:`record_next_step` noted for this writer of ``run_id`` in this pod; 0 if none."""
    ledger = environ.get(keys.POD_LEDGER_ENV)
    if not ledger:
        return 0
    prefix = _step_file(ledger, run_id, label).name.rsplit("-", 1)[0] + "-"
    steps = [0]
    for path in Path(ledger).glob("next-step-*.txt"):
        if path.name.startswith(prefix) and path.name[len(prefix) : -len(".txt")].isdigit():
            try:
                steps.append(int(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):  # a writer killed while writing: the others still tell
                continue
    return max(steps)
