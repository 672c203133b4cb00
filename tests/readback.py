"""Read what W&B really wrote: offline runs parsed with ``wandb leet inspect --json``."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyteplugins_wandb.readback._wandb_cli import _inspect_command, wandb_cli


def _wandb_cli() -> str:
    return wandb_cli() or "wandb"


@dataclass
class OfflineRun:
    """One offline run file, as written."""

    path: Path
    run_id: str
    project: str
    entity: str
    group: str
    job_type: str
    tags: list[str]
    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    state: str | None = None
    stats_keys: set[str] = field(default_factory=set)
    start_time: str = ""
    sweep_id: str = ""
    name: str = ""
    """The display name."""
    notes: str = ""

    def metric(self, key: str) -> list[Any]:
        """Every logged value of ``key``, in order."""
        return [row[key] for row in self.history if key in row]


def inspect_command(run_file: Path, *flags: str) -> list[str]:
    """The command that prints ``wandb leet inspect <flags> <run_file>``.

    ``wandb leet inspect`` is a Python front end that starts ``wandb-core leet inspect`` with the run file and its
    wandb directory (wandb/cli/leet.py); calling the binary the same way prints the same bytes without the front
    end's start-up (about 0.6 s a call, most of a test's reading time). The plugin builds it the same way for the
    report tab (``readback._wandb_cli``); tests/test_readback.py holds the two outputs equal.
    """
    return _inspect_command(_wandb_cli(), run_file, flags)


def _history_row(record: dict[str, Any]) -> dict[str, Any]:
    return dict(record.get("history", {}).get("item", {}))


def _inspect(run_file: Path, *flags: str) -> str:
    return subprocess.run(inspect_command(run_file, *flags), capture_output=True, text=True, check=True).stdout


def inspect_run(run_file: Path) -> OfflineRun:
    records = [json.loads(line) for line in _inspect(run_file, "--json").splitlines() if line.strip()]
    summary = json.loads(_inspect(run_file, "--summary", "--json"))
    runs = [r["run"] for r in records if r.get("type") == "run"]
    # A file whose service died before writing anything (a worker killed with its own service) holds no run.
    assert runs, f"{run_file} holds no run record ({run_file.stat().st_size} bytes): nothing of this run was written"
    run_rec = runs[0]
    config = {k: v for k, v in summary.get("config", {}).items() if k != "_wandb"}
    out = OfflineRun(
        path=run_file,
        run_id=run_rec["run_id"],
        project=run_rec.get("project", ""),
        entity=run_rec.get("entity", ""),
        group=run_rec.get("run_group", ""),
        job_type=run_rec.get("job_type", ""),
        tags=list(run_rec.get("tags", [])),
        config=config,
        summary=summary.get("summary", {}),
        exit_code=summary.get("exit_code"),
        state=summary.get("state"),
        start_time=run_rec.get("start_time", ""),
        sweep_id=run_rec.get("sweep_id", ""),
        name=run_rec.get("display_name", ""),
        notes=run_rec.get("notes", ""),
    )
    for r in records:
        if r.get("type") == "history":
            out.history.append(_history_row(r))
        elif r.get("type") == "stats":
            out.stats_keys.update(r["stats"].get("item", {}).keys())
    return out


def offline_runs(root: Path) -> list[OfflineRun]:
    """Every offline run file under ``root`` (shared-mode writers each have their own), sorted by run id."""
    files = sorted(root.rglob("offline-run-*/run-*.wandb"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(inspect_run, files))
    return sorted(runs, key=lambda r: (r.run_id, str(r.path)))


def recorded_calls(log: Path, event: str = "init") -> list[dict[str, Any]]:
    """The ``wandb.init`` (``event="init"``) or ``Run.finish`` calls recorded by the test hook of
    ``tests/faults/sitecustomize.py`` (``FAULT_LOG``), in the order they returned or failed."""
    if not log.exists():
        return []
    calls = (json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip())
    return [c for c in calls if c["event"] == event]


def by_rank(calls: list[dict[str, Any]]) -> dict[str | None, list[dict[str, Any]]]:
    """Recorded calls grouped by the RANK of the process that made them (None outside distributed training)."""
    out: dict[str | None, list[dict[str, Any]]] = {}
    for c in calls:
        out.setdefault(c["rank"], []).append(c)
    return out
