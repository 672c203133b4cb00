"""The end-of-launch summary: real offline runs read back through ``wandb leet inspect``, and the table's text."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from records import run_record

from flyteplugins_wandb.local import LocalElasticResult
from flyteplugins_wandb.local._summary import (
    UPLOAD_COMMAND,
    RunState,
    format_runs,
    format_summary,
    read_offline_state,
    render_summary,
)
from flyteplugins_wandb.pod._manifest import RunRecord

LINK = ("Weights & Biases", "https://wandb.ai/team/proj/runs/local-1-a0")


def _record(run_id: str, **changes: Any) -> RunRecord:
    return run_record(run_id=run_id, project="proj", **changes)


def _offline_run(run_id: str, metrics: dict[str, Any], exit_code: int = 0) -> str:
    """A real offline run (the conftest points WANDB_DIR at this test's directory); returns its directory."""
    import wandb

    run = wandb.init(project="proj", id=run_id, mode="offline", reinit="create_new")
    run.log(metrics)
    directory = str(run.settings.sync_dir)
    run.finish(exit_code=exit_code)
    return directory


@pytest.fixture
def result() -> LocalElasticResult:
    """Two offline runs of a 'new' layout, one finished and one failed, as a local launch reports them."""
    ok = _offline_run("local-1-a0-rank-0", {"loss": 0.25, "accuracy": 0.875})
    failed = _offline_run("local-1-a0-rank-1", {"loss": 1.5}, exit_code=1)
    runs = (
        _record("local-1-a0-rank-0", group="local-1-a0", run_mode="new", directory=ok),
        _record("local-1-a0-rank-1", group="local-1-a0", run_mode="new", rank=1, local_rank=1, directory=failed),
    )
    return LocalElasticResult(output=0.25, runs=runs, links=(LINK,), run_name="local-1", action_name="a0")


def _row(text: str, run_id: str) -> str:
    rows = [line for line in text.splitlines() if line.strip().startswith(run_id + " ")]
    assert len(rows) == 1, text
    return rows[0]


def test_summary_shows_each_run_with_its_group_ranks_and_state(result: LocalElasticResult) -> None:
    text = format_summary(result)

    assert text.startswith("W&B runs: 2 (offline)")
    finished, failed = _row(text, "local-1-a0-rank-0"), _row(text, "local-1-a0-rank-1")
    assert finished.split()[:6] == ["local-1-a0-rank-0", "local-1-a0", "rank", "0", "(node", "0)"]
    assert " finished " in finished
    assert " failed " in failed


def test_summary_shows_the_last_logged_metrics_read_from_the_run_files(result: LocalElasticResult) -> None:
    text = format_summary(result)

    assert _row(text, "local-1-a0-rank-0").endswith("accuracy=0.875  loss=0.25")
    assert _row(text, "local-1-a0-rank-1").endswith("loss=1.5")


def test_summary_lists_the_links_and_one_upload_command_for_every_offline_run(result: LocalElasticResult) -> None:
    text = format_summary(result)

    assert f"  {LINK[0]}: {LINK[1]}" in text
    commands = [line for line in text.splitlines() if "sync" in line]
    assert commands == [f"  {UPLOAD_COMMAND} {shlex.join(str(run.directory) for run in result.runs)}"]
    assert f"Offline runs are under {Path(str(result.runs[0].directory)).parent}" in text


def test_online_runs_are_listed_by_id_without_reading_files() -> None:
    online = _record("local-2-a0", wandb_mode="online", directory="/nonexistent/run-dir")

    text = format_runs([online], [LINK])

    assert _row(text, "local-2-a0").split()[-2:] == ["online", "-"]
    assert UPLOAD_COMMAND not in text
    assert "Could not read" not in text


def test_an_offline_run_whose_files_are_gone_is_reported_not_hidden(tmp_path: Path) -> None:
    missing = _record("local-3-a0", directory=str(tmp_path / "gone"))

    text = format_runs([missing])

    assert " unreadable " in _row(text, "local-3-a0")
    assert f"  local-3-a0, rank 0 (node 0): no run file in {tmp_path / 'gone'}" in text.splitlines()
    assert UPLOAD_COMMAND not in text, "nothing to upload"


def test_read_offline_state_reads_state_and_summary_of_a_real_run() -> None:
    directory = _offline_run("local-4-a0", {"loss": 0.5})

    state = read_offline_state(directory)

    assert state.error is None
    assert state.state == "finished"
    assert state.metrics["loss"] == 0.5


def test_shared_writers_are_rows_of_one_run_with_their_labels() -> None:
    writers = [
        _record("local-5-a0", run_mode="shared", label="rank-0", primary=True, directory="/w/rank-0/d"),
        _record("local-5-a0", run_mode="shared", label="rank-1", primary=False, rank=1, directory="/w/rank-1/d"),
    ]
    states = {"/w/rank-0/d": RunState("finished", {"loss": 1}), "/w/rank-1/d": RunState("finished", {"loss": 2})}

    text = render_summary(writers, None, states)

    assert text.splitlines()[0] == "W&B runs: 1 (offline, written by 2 processes)"
    rows = [line.split("  ") for line in text.splitlines() if line.strip().startswith("local-5-a0")]
    assert [[cell.strip() for cell in row if cell.strip()][:4] for row in rows] == [
        ["local-5-a0", "-", "rank 0 (primary, node 0)", "finished"],
        ["local-5-a0", "-", "rank 1 (node 0)", "finished"],
    ]
    assert "Links" not in text
    assert "Offline runs are under /w" in text


def test_retries_and_restarts_are_shown_and_bookkeeping_metrics_are_not() -> None:
    record = _record("local-6-a0", rank=3, worker_index=1, restart_count=2, attempt=1, directory="/d")
    state = RunState("finished", {"_step": 9, "flyte/attempt": 1, "a": 1.0, "b": "x", "c": 3, "d": 4, "e": {"h": 1}})

    row = _row(render_summary([record], (), {"/d": state}), "local-6-a0")

    assert "rank 3 (node 1, restart 2, retry 1)" in row
    assert row.endswith("a=1  b=x  c=3  d=4")
    assert "flyte/" not in row and "_step" not in row


def test_a_launch_without_runs_says_so() -> None:
    text = render_summary([], ())

    assert text.splitlines() == ["W&B runs: none (no process opened a run)", "", "Links: none"]
