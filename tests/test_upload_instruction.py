"""One upload instruction, right for where the run files are: a local launch's summary prints one command for all its
offline runs, which replays them in the order they were written; the pod's own note of the saved copy is left to the
log's info level when a local caller collects the address (that copy lives in the launch's temporary storage)."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import flyte
import pytest
from records import run_record

from flyteplugins_wandb.local import pod_context
from flyteplugins_wandb.local._summary import UPLOAD_COMMAND, RunState, render_summary
from flyteplugins_wandb.pod import RunRecord, save_run_files

ROOT = Path(__file__).resolve().parent.parent


def _offline_run(directory: Path, run_id: str) -> str:
    """A real offline run written under ``directory``; returns its run directory."""
    import wandb

    directory.mkdir(parents=True)
    run = wandb.init(project="p", id=run_id, dir=str(directory), mode="offline", reinit="create_new")
    run.log({"x": 1})
    sync_dir = str(run.settings.sync_dir)
    run.finish()
    return sync_dir


def _record(directory: str, **changes: object) -> RunRecord:
    return run_record(**{"run_mode": "shared", "directory": directory, **changes})


def test_a_local_summary_ends_with_one_command_that_replays_every_offline_run_in_written_order(
    tmp_path: Path,
) -> None:
    # Directory names sort against the written order: the order must come from the records, not the paths.
    first = _record(_offline_run(tmp_path / "c", "r"), label="rank-0", primary=True)
    second = _record(_offline_run(tmp_path / "b", "r"), label="rank-1", primary=False, rank=1)
    restarted = _record(_offline_run(tmp_path / "a", "r"), label="rank-0", primary=True, restart_count=1)
    runs = [restarted, second, first]
    states = {str(r.directory): RunState("finished") for r in runs}

    text = render_summary(runs, None, states)

    commands = [line.strip() for line in text.splitlines() if "sync" in line]
    assert len(commands) == 1, text
    argv = shlex.split(commands[0])
    assert argv[:3] == UPLOAD_COMMAND.split()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, *argv[1:], "--dry-run"], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    replayed = [line for line in out.stdout.splitlines() if line.strip()]
    assert replayed == [first.directory, second.directory, restarted.directory]


@pytest.mark.parametrize(
    ("noted", "level"),
    [pytest.param(True, logging.INFO, id="noted-for-a-local-caller"), pytest.param(False, logging.WARNING, id="pod")],
)
def test_the_saved_copy_is_announced_as_a_warning_only_where_nobody_collects_its_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, noted: bool, level: int
) -> None:
    run = _record(_offline_run(tmp_path / "run", "saved"), run_mode="auto", rank=None, worker_index=None)
    notes = tmp_path / "notes"
    notes.mkdir()
    environ = {"FLYTEPLUGINS_WANDB_MANIFEST": str(notes)} if noted else {}
    flyte.init(root_dir=str(tmp_path))
    with pod_context("r", "a0", root=str(tmp_path / "pod")), caplog.at_level(logging.INFO, "flyteplugins_wandb"):
        saved = save_run_files([run], environ)

    assert saved is not None
    announced = [r for r in caplog.records if "flyteplugins_wandb.sync" in r.getMessage()]
    assert [r.levelno for r in announced] == [level]
    assert bool(list(notes.glob("saved-*.txt"))) is noted
