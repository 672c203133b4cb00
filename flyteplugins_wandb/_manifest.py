"""An opt-in record of the runs this plugin opened, one JSON line per run, for local launches and tests.

Set ``FLYTEPLUGINS_WANDB_MANIFEST`` to a directory and every process that opens a run appends a line to a file
of its own there (no locking needed across processes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path

from . import _keys as keys

__all__ = ["RunRecord", "collecting", "read_manifest", "record_run"]


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


# The records of the task body running in this context, for its report tab (a ContextVar: sibling tasks in one
# process each keep their own).
_collected: ContextVar[list[RunRecord] | None] = ContextVar("flyteplugins_wandb_collected", default=None)


@contextmanager
def collecting() -> Iterator[list[RunRecord]]:
    """Gather the records of the runs opened in this context while the block runs (whether or not the manifest
    file is enabled)."""
    sink: list[RunRecord] = []
    token = _collected.set(sink)
    try:
        yield sink
    finally:
        _collected.reset(token)


def record_run(entry: RunRecord, environ: Mapping[str, str] = os.environ) -> None:
    sink = _collected.get()
    if sink is not None:
        sink.append(entry)
    target = environ.get(keys.MANIFEST_ENV)
    if not target:
        return
    path = Path(target) / f"runs-{os.getpid()}.jsonl"
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(entry)) + "\n")


def read_manifest(directory: str | os.PathLike[str]) -> list[RunRecord]:
    """Every record under ``directory``, ordered by (run id, rank)."""
    records = [
        RunRecord(**json.loads(line))
        for path in sorted(Path(directory).glob("runs-*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return sorted(records, key=lambda r: (r.run_id, -1 if r.rank is None else r.rank))
