"""Read what a task's runs wrote locally (``wandb leet inspect --json`` on each writer's run directory) and turn it,
with the run records, into the values the report tab shows. Works offline: nothing is asked of a W&B server, and
wandb is never imported (the CLI runs in a subprocess, bounded by a timeout).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from ..pod import RunRecord, writer_label
from ._report import Line, ReportView, RunRow
from ._wandb_cli import leet_inspect

__all__ = ["WriterData", "build_view", "out_of_reach", "parse_records", "read_writer", "read_writers"]

# W&B's own keys (_step, _runtime, _timestamp) and the plugin's bookkeeping are not the user's metrics.
_HIDDEN_PREFIXES: Final = ("_", "flyte/")
_HISTORY: Final = '"type":"history"'
_EXIT: Final = '"type":"exit"'


@dataclass(frozen=True)
class WriterData:
    """What one writer's run directory holds."""

    state: str | None
    """``finished``, ``failed`` (from the exit record), ``running`` (no exit record yet); None if unread."""
    series: Mapping[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    """Scalar metric -> (steps, values), in logged order."""
    last: Mapping[str, Any] = field(default_factory=dict)
    """The last logged value of every user metric, scalars and strings alike."""
    error: str | None = None
    missing: bool = False
    """The directory or its run file is not there (for example on another node)."""


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_records(lines: Sequence[str]) -> WriterData:
    """A writer's data from the JSON lines of ``wandb leet inspect --json``; only history and exit records are
    parsed (the rest is skipped without decoding, which keeps a long run's read cheap)."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    last: dict[str, Any] = {}
    exit_code: int | None = None
    for text in lines:
        if _HISTORY in text:
            item = json.loads(text).get("history", {}).get("item", {})
            step = item.get("_step")
            for key, value in item.items():
                if key.startswith(_HIDDEN_PREFIXES):
                    continue
                last[key] = value
                if _scalar(value) and _scalar(step):
                    steps, values = series.setdefault(key, ([], []))
                    steps.append(step)
                    values.append(value)
                elif value in ("NaN", "Infinity", "-Infinity") and _scalar(step):
                    # JSON has no NaN: W&B writes it as a string. It stays a point (not drawn) so counts match.
                    steps, values = series.setdefault(key, ([], []))
                    steps.append(step)
                    values.append(float(value.replace("Infinity", "inf")))
        elif _EXIT in text:
            exit_code = json.loads(text).get("exit", {}).get("exit_code", 0)
    state = "running" if exit_code is None else "finished" if exit_code == 0 else "failed"
    return WriterData(state, series, last)


def read_writer(directory: str | os.PathLike[str] | None, timeout: float = 60.0) -> WriterData:
    """Read one writer's run directory. Never raises: what could not be read is said in ``error``."""
    if not directory:
        return WriterData(None, error="the run has no local directory", missing=True)
    path = Path(directory)
    if not path.is_dir() or not any(path.glob("run-*.wandb")):
        return WriterData(None, error=f"no run file in {path} on this host", missing=True)
    out, error = leet_inspect(path, "--json", timeout=timeout)
    if out is None:
        return WriterData(None, error=error)
    try:
        return parse_records(out.splitlines())
    except (json.JSONDecodeError, AttributeError) as e:
        return WriterData(None, error=f"wandb leet inspect printed something unexpected: {e}")


def read_writers(records: Sequence[RunRecord], timeout: float = 60.0) -> dict[str, WriterData]:
    """:func:`read_writer` for each record's directory (side by side, at most four at once), keyed by directory."""
    directories = sorted({str(r.directory) for r in records if r.directory and r.wandb_mode != "disabled"})
    if not directories:
        return {}
    with ThreadPoolExecutor(max_workers=min(4, len(directories))) as pool:
        return dict(zip(directories, pool.map(lambda d: read_writer(d, timeout), directories), strict=True))


def out_of_reach(
    records: Sequence[RunRecord], data: Mapping[str, WriterData], writers_hosts: Mapping[str, str], here: str
) -> dict[str, str]:
    """Directory -> why its data is not shown, for each writer whose files could not be found from ``here``.
    ``writers_hosts`` maps a directory to the host whose process wrote it (when another rank reported it)."""
    missing = {}
    for r in records:
        key = str(r.directory)
        got = data.get(key)
        if not r.directory or got is None or not got.missing:
            continue
        where = writers_hosts.get(key, here)
        if where != here:
            missing[key] = (
                f"not reachable: written on host {where} (at {r.directory}), this report is written on {here}"
            )
        else:
            missing[key] = got.error or "no run file"
    return missing


def _url(record: RunRecord, host: str | None) -> str | None:
    if not host or not record.entity or record.wandb_mode != "online":
        return None
    project = record.project or "uncategorized"
    return f"{host}/{quote(record.entity)}/{quote(project)}/runs/{quote(record.run_id)}"


def build_view(
    records: Sequence[RunRecord],
    data: Mapping[str, WriterData],
    *,
    unreachable: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    host: str | None = None,
    updated: str = "",
    final: bool = True,
) -> ReportView:
    """The tab's values from the run records, what was read from their directories (keyed by directory) and
    ``unreachable`` (directory -> why this process cannot read it, e.g. it lies on another node)."""
    unreachable = unreachable or {}
    records = sorted(records, key=lambda r: (r.run_id, -1 if r.rank is None else r.rank, r.restart_count))
    several_runs = len({r.run_id for r in records}) > 1
    writers_per_run: dict[str, int] = {}
    for r in records:
        writers_per_run[r.run_id] = writers_per_run.get(r.run_id, 0) + 1
    rows: list[RunRow] = []
    charts: dict[str, list[Line]] = {}
    for r in records:
        key = str(r.directory) if r.directory else ""
        got = data.get(key)
        problem = unreachable.get(key)
        if problem is None and r.wandb_mode != "disabled":
            problem = "not read" if got is None else got.error
        state = r.wandb_mode if r.wandb_mode == "disabled" else (got.state if got and got.state else "unknown")
        rows.append(
            RunRow(
                run_id=r.run_id,
                group=r.group,
                writer=writer_label(r),
                mode=r.wandb_mode,
                state=state if problem is None else "not read",
                last=dict(got.last) if got and problem is None else {},
                directory=r.directory,
                url=_url(r, host),
                problem=problem,
            )
        )
        if got is None or problem is not None:
            continue
        who = writer_label(r)
        if several_runs:
            label = f"{r.run_id} \u00b7 {who}" if writers_per_run[r.run_id] > 1 else r.run_id
        else:
            label = who if r.rank is not None or r.label else r.run_id
        for metric, (steps, values) in got.series.items():
            charts.setdefault(metric, []).append(Line(label, steps, values))
    return ReportView(rows, dict(sorted(charts.items())), notes, updated, final)
