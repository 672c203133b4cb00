"""The tests' reader of offline runs prints exactly what ``wandb leet inspect`` prints, through ``wandb-core``
directly (tests/readback.py): every test that reads a run back relies on it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from readback import _wandb_cli, inspect_command, inspect_run


@pytest.fixture
def run_file(wandb_env: Path) -> Path:
    """A real offline run: a config, two logged rows, a summary value, finished."""
    import wandb

    run = wandb.init(project="p", id="readback", mode="offline", config={"lr": 0.5})
    run.log({"loss": 2.0})
    run.log({"loss": 1.0})
    run.summary["best"] = 1.0
    run.finish()
    (found,) = wandb_env.rglob("offline-run-*/run-readback.wandb")
    return found


@pytest.mark.parametrize("flags", [("--json",), ("--summary", "--json")], ids=["records", "summary"])
def test_the_reader_prints_what_wandb_leet_inspect_prints(run_file: Path, flags: tuple[str, ...]) -> None:
    command = inspect_command(run_file, *flags)
    assert Path(command[0]).name == "wandb-core", "the installed wandb has its wandb-core binary"
    direct = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    cli = subprocess.run(
        [_wandb_cli(), "leet", "inspect", *flags, str(run_file)], capture_output=True, text=True, timeout=120
    )
    assert cli.returncode == 0, cli.stderr
    assert direct == cli.stdout
    assert "readback" in direct


def test_the_reader_parses_the_run_as_written(run_file: Path) -> None:
    run = inspect_run(run_file)
    assert (run.run_id, run.project, run.config) == ("readback", "p", {"lr": 0.5})
    assert run.metric("loss") == [2.0, 1.0]
    assert run.summary["best"] == 1.0
    assert (run.state, run.exit_code) == ("finished", 0)
