"""Runs made offline on this machine, read back into the directory layout of a download: a run that never reached
a W&B server is found in its own run files instead of being asked of the server."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from .. import _keys as keys
from ._wandb_cli import leet_inspect

__all__ = ["DownloadError", "copy_offline_run", "find_offline_run"]

SUMMARY_FILE: Final = "summary.json"
HISTORY_FILE: Final = "metrics_history.json"


class DownloadError(RuntimeError, ValueError):
    """A download helper could not tell which run or sweep to read, or could not read it. A RuntimeError, as every
    failure of the download helpers is (it is also a ValueError, which bad arguments raised before)."""


def find_offline_run(run_id: str, roots: Iterable[str | None], environ: Mapping[str, str] = os.environ) -> Path | None:
    """The newest offline run directory of ``run_id`` under ``roots`` (W&B directories: the task's ``dir``, then
    ``WANDB_DIR``, then the working directory), or None. A shared-mode run's writers each have one
    (``wandb-writers/<run id>/<label>/``); the primary's (label ``rank-0``/``worker-0-rank-0``) is preferred."""
    found: list[Path] = []
    for root in (*roots, environ.get(keys.WANDB_DIR), os.getcwd()):
        if not root:
            continue
        base = Path(root)
        pattern = f"offline-run-*-{run_id}"
        found += [p for p in (base / "wandb").glob(pattern) if p.is_dir()]
        writers = sorted((base / "wandb-writers" / run_id).glob(f"*/wandb/{pattern}"), key=_primary_first)
        found += [p for p in writers if p.is_dir()]
        if found:
            break  # the first root that has the run is where this workflow wrote it
    if not found:
        return None
    return max(found, key=lambda p: (p.parent.parent.name.endswith("rank-0"), p.name))


def _primary_first(path: Path) -> tuple[bool, str]:
    label = path.parent.parent.name
    return (not label.endswith("rank-0"), str(path))


def copy_offline_run(directory: Path, path: str | os.PathLike[str], include_history: bool, timeout: float) -> str:
    """Lay out offline run ``directory`` as a download does: the run's files, ``summary.json`` and, with
    ``include_history``, ``metrics_history.json`` (read from its run file with ``wandb leet inspect``)."""
    root = Path(path).absolute()
    root.mkdir(parents=True, exist_ok=True)
    files = directory / "files"
    if files.is_dir():
        shutil.copytree(files, root, dirs_exist_ok=True)
    summary, error = leet_inspect(directory, "--summary", "--json", timeout=timeout)
    if summary is None:
        raise DownloadError(f"cannot read offline run {directory}: {error}")
    _write_json(root / SUMMARY_FILE, _summary(summary))
    if include_history:
        rows, error = leet_inspect(directory, "--json", timeout=timeout)
        if rows is None:
            raise DownloadError(f"cannot read the history of offline run {directory}: {error}")
        _write_json(root / HISTORY_FILE, _history(rows.splitlines()))
    return str(root)


def _summary(text: str) -> Any:
    value = json.loads(text)
    return value.get("summary", {}) if isinstance(value, dict) else {}


def _history(lines: list[str]) -> list[Any]:
    rows: list[Any] = []
    for line in lines:
        if '"type":"history"' in line:
            rows.append(json.loads(line).get("history", {}).get("item", {}))
    return rows


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))
