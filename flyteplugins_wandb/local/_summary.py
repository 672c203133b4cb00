"""A plain-text account of what a local launch produced: its W&B runs, their state and last metrics, the task's
links and, for offline runs, where the files are and how to upload them.

Reading (a ``wandb leet inspect`` subprocess per offline run) is kept apart from formatting
(:func:`render_summary`, pure), so the table can be tested from plain values. wandb is never imported here.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..pod import RunRecord, runs_to_save, writer_label
from ..readback import leet_inspect

if TYPE_CHECKING:
    from ._launcher import LocalElasticResult

__all__ = ["UPLOAD_COMMAND", "RunState", "format_runs", "format_summary", "read_offline_state", "render_summary"]

UPLOAD_COMMAND: Final = "python -m flyteplugins_wandb.sync"
"""Uploads offline runs wherever their files are; plain ``wandb sync`` of several directories uploads up to five
at once, which can replay a shared run's writers or a restarted run's lives out of order."""

_MAX_METRICS: Final = 4
_NO_VALUE: Final = "-"
# W&B's own summary keys, and the plugin's bookkeeping (attempt, restart count: the WRITER column shows them).
_HIDDEN_PREFIXES: Final = ("_", "flyte/")


@dataclass(frozen=True)
class RunState:
    """What an offline run's files say about it."""

    state: str | None
    """W&B's run state (``finished``, ``failed``, ``running``...), None when it could not be read."""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    """The run's summary: the last value logged for each metric."""
    error: str | None = None
    """Why the files could not be read, when they could not."""
    missing: bool = False
    """The run's files are not there (nothing to upload)."""


def read_offline_state(directory: str | os.PathLike[str], timeout: float = 30.0) -> RunState:
    """Read an offline run's state and summary metrics with ``wandb leet inspect --summary --json``.

    Never raises for a run that cannot be read (missing files, no CLI, a timeout, bad output): the returned
    :class:`RunState` says why in ``error``.
    """
    path = Path(directory)
    if not path.is_dir() or not any(path.glob("run-*.wandb")):
        return RunState(None, error=f"no run file in {path}", missing=True)
    out, error = leet_inspect(path, "--summary", "--json", timeout=timeout)
    if out is None:
        return RunState(None, error=error)
    try:
        data = json.loads(out)
    except json.JSONDecodeError as e:
        return RunState(None, error=f"wandb leet inspect printed no JSON: {e}")
    if not isinstance(data, dict):
        return RunState(None, error="wandb leet inspect printed JSON that is not an object")
    summary = data.get("summary")
    return RunState(data.get("state"), dict(summary) if isinstance(summary, dict) else {})


def _readable(record: RunRecord) -> bool:
    return record.wandb_mode == "offline" and bool(record.directory)


def format_summary(result: LocalElasticResult, *, timeout: float = 30.0) -> str:
    """A readable table of the runs a local launch produced, then its links and, for offline runs, where they are
    and the ``wandb sync`` command that uploads them.

    Offline runs' state and last metrics are read from their files, each read bounded by ``timeout`` seconds;
    online runs are listed by id (their pages are behind the links).
    """
    return format_runs(result.runs, result.links, timeout=timeout)


def format_runs(
    runs: Sequence[RunRecord], links: Sequence[tuple[str, str]] | None = None, *, timeout: float = 30.0
) -> str:
    """:func:`format_summary` for any list of run records (``links=None`` leaves the links section out)."""
    directories = sorted({str(r.directory) for r in runs if _readable(r)})
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(directories)))) as pool:
        states = dict(zip(directories, pool.map(lambda d: read_offline_state(d, timeout), directories), strict=True))
    return render_summary(runs, links, states)


def _uploadable(record: RunRecord, states: Mapping[str, RunState]) -> bool:
    state = states.get(str(record.directory))
    return _readable(record) and not (state is not None and state.missing)


def _value(value: Any) -> str | None:
    if isinstance(value, (int, str)):  # bool included
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return None  # histograms, tables, media: not for a one-line summary


def _metrics(metrics: Mapping[str, Any]) -> str:
    shown = [
        f"{key}={text}"
        for key, value in sorted(metrics.items())
        if not key.startswith(_HIDDEN_PREFIXES) and (text := _value(value)) is not None
    ]
    if not shown:
        return _NO_VALUE
    more = len(shown) - _MAX_METRICS
    return "  ".join(shown[:_MAX_METRICS]) + (f"  (+{more} more)" if more > 0 else "")


def _state_cells(record: RunRecord, states: Mapping[str, RunState]) -> tuple[str, str]:
    if record.wandb_mode != "offline":
        return record.wandb_mode, _NO_VALUE
    state = states.get(str(record.directory)) if record.directory else None
    if state is None:
        return "not read", _NO_VALUE
    if state.error is not None:
        return "unreadable", _NO_VALUE
    return state.state or "unknown", _metrics(state.metrics)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def render_summary(
    runs: Sequence[RunRecord],
    links: Sequence[tuple[str, str]] | None = (),
    states: Mapping[str, RunState] | None = None,
) -> str:
    """The summary text, from run records, links (None: no links section) and the states read from offline runs
    (keyed by run directory; an offline run missing from ``states`` shows as "not read")."""
    states = states or {}
    lines: list[str] = []
    ids = sorted({r.run_id for r in runs})
    modes = sorted({r.wandb_mode for r in runs})
    if not runs:
        lines.append("W&B runs: none (no process opened a run)")
    else:
        processes = "" if len(runs) == len(ids) else f", written by {len(runs)} processes"
        lines.append(f"W&B runs: {len(ids)} ({', '.join(modes)}{processes})")
        body = []
        for r in runs:
            state, metrics = _state_cells(r, states)
            body.append((r.run_id, r.group or _NO_VALUE, writer_label(r), state, metrics))
        lines.extend(_table(("RUN ID", "GROUP", "WRITER", "STATE", "LAST METRICS"), body))
    problems = [
        f"  {r.run_id}, {writer_label(r)}: {s.error}"
        for r in runs
        if r.directory and (s := states.get(str(r.directory))) is not None and s.error is not None
    ]
    if problems:
        lines += ["", "Could not read:", *problems]

    if links is not None:
        lines.append("")
        if links:
            lines.append("Links (as the Flyte UI shows them):")
            lines.extend(f"  {name}: {url}" for name, url in links)
        else:
            lines.append("Links: none")

    lines += _upload_instruction(runs, states)
    return "\n".join(lines)


def _upload_instruction(runs: Sequence[RunRecord], states: Mapping[str, RunState]) -> list[str]:
    """One command that uploads every offline run of the launch from where its files are (this machine), each
    directory in the order it was written, as a pod's saved copy would be replayed."""
    offline = [str(r.directory) for r in runs_to_save(runs, (), download_logs=False) if _uploadable(r, states)]
    if not offline:
        return []
    where = os.path.commonpath(offline) if len(offline) > 1 else os.path.dirname(offline[0])
    return [
        "",
        f"Offline runs are under {where}",
        "Upload them to W&B (after `wandb login`) with:",
        f"  {UPLOAD_COMMAND} {shlex.join(offline)}",
    ]
