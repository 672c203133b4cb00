"""While a task runs, its run files are saved to Flyte storage every period (``FLYTEPLUGINS_WANDB_SAVE_EVERY``),
sending only what changed, so that a pod killed whole keeps what its runs had logged. Real offline W&B runs, read
back with ``wandb leet inspect``; the pod is a real process with real torch elastic workers, killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
import wandb
from readback import inspect_run
from records import run_record

from flyteplugins_wandb.local import MANIFEST_ENV
from flyteplugins_wandb.pod import RunRecord, assemble_parts, save_every
from flyteplugins_wandb.pod._live_copy import LiveCopy
from flyteplugins_wandb.pod._run_files import descendants, wait_until_written
from flyteplugins_wandb.sync import run_directories

TESTS = Path(__file__).parent
PERIOD = 1.0
ROWS = 20


def _joined_copy(saved: Path, into: Path) -> Path:
    """The saved copy with its parts joined, as the sync command reads it."""
    copy = Path(shutil.copytree(saved, into))
    assemble_parts(copy)
    return copy


def _rows(run_dir: Path) -> list[tuple[int, int]]:
    [run_file] = run_dir.glob("run-*.wandb")
    return [(row["rank"], row["i"]) for row in inspect_run(run_file).history if "i" in row]


def _wait_for(paths: list[Path], proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert proc.poll() is None, f"the pod ended before its workers had logged (exit code {proc.returncode})"
        assert time.monotonic() < deadline, f"the workers did not log within {timeout:.0f}s"
        time.sleep(0.2)


def _kill_pod(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the pod process, its workers and every other process below it (its W&B service): the whole pod."""
    pids = [proc.pid, *descendants(proc.pid)]
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(30)


@pytest.mark.elastic
@pytest.mark.timeout(400)
@pytest.mark.parametrize(("kind", "ranks"), [("elastic", (0, 1)), ("plain", (0,))])
def test_a_pod_killed_whole_keeps_in_storage_every_row_logged_a_period_before_the_kill(
    tmp_path: Path, kind: str, ranks: tuple[int, ...]
) -> None:
    out, root, manifest = tmp_path / "out", tmp_path / "pod", tmp_path / "manifest"
    for d in (out, root, manifest):
        d.mkdir()
    env = {**os.environ, "FLYTEPLUGINS_WANDB_SAVE_EVERY": str(PERIOD), MANIFEST_ENV: str(manifest)}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "live_copy_pod.py"), str(out), str(root), str(ROWS), kind],
        env=env,
        start_new_session=True,
    )
    try:
        _wait_for([out / f"logged-{rank}" for rank in ranks], proc, timeout=240)
        # More than one period after the last row: the copy must hold every row by now (a busy machine gets slack).
        time.sleep(PERIOD * 5)
    finally:
        _kill_pod(proc)
    [note] = manifest.glob("live-*.txt")
    saved = Path(note.read_text(encoding="utf-8").strip())
    assert saved.is_relative_to(root / "raw"), "the copy is in the task's raw data path"
    copy = _joined_copy(saved, tmp_path / "joined")
    runs = run_directories(copy)
    assert sorted(row for run_dir in runs for row in _rows(run_dir)) == [
        (rank, i) for rank in ranks for i in range(ROWS)
    ]
    listed = subprocess.run(
        [sys.executable, "-m", "flyteplugins_wandb.sync", str(saved), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [Path(p).relative_to(Path(p).parents[1]) for p in listed] == [r.relative_to(copy) for r in runs]


def _record(directory: str) -> RunRecord:
    return run_record(run_id=Path(directory).name, run_mode="new", entity="e", directory=directory)


def test_each_save_sends_only_what_changed_and_the_joined_copy_holds_every_row(tmp_path: Path) -> None:
    run = wandb.init(project="p", mode="offline", id="live")
    try:
        record = _record(run.settings.sync_dir)
        copy = LiveCopy(str(tmp_path / "copy"), fsspec.filesystem("file"))
        for i in range(50):
            run.log({"i": i, "rank": 0})
        time.sleep(1.5)  # W&B's service writes the log out in its own time
        copy.save([record])
        assert copy.save([record]) == 0, "nothing changed, nothing sent"
        for i in range(50, 100):
            run.log({"i": i, "rank": 0})
    finally:
        run.finish()
    # W&B writes the log's last records when the run's stream closes, moments after finish returns (the pod's final
    # save waits the same way).
    assert wait_until_written([record.directory or ""], timeout=30)
    copy.save([record])
    run_file = next(Path(run.settings.sync_dir).glob("run-*.wandb"))
    [saved] = (tmp_path / "copy").rglob(run_file.name)
    first = saved.stat().st_size
    parts = sorted((saved.parent / f"{saved.name}.parts").iterdir())
    # The second save sent the log's new bytes alone, as one part that starts where the first save ended.
    assert [(int(p.name), p.stat().st_size) for p in parts] == [(first, run_file.stat().st_size - first)]
    joined = _joined_copy(tmp_path / "copy", tmp_path / "joined")
    [run_dir] = run_directories(joined)
    assert (run_dir / run_file.name).read_bytes() == run_file.read_bytes()
    assert _rows(run_dir) == [(0, i) for i in range(100)]


@pytest.mark.parametrize(
    ("value", "period"),
    [("", 30.0), ("1", 1.0), ("0.5", 0.5), (" 60 ", 60.0), ("0", None)],
)
def test_the_period_is_read_from_the_environment(value: str, period: float | None) -> None:
    assert save_every({"FLYTEPLUGINS_WANDB_SAVE_EVERY": value}) == period


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", "1s"])
def test_a_bad_period_is_refused_naming_the_value(value: str) -> None:
    with pytest.raises(ValueError, match=rf"FLYTEPLUGINS_WANDB_SAVE_EVERY must be .*got '{value}'"):
        save_every({"FLYTEPLUGINS_WANDB_SAVE_EVERY": value})
