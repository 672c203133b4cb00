"""Offline runs are read through ``wandb-core`` directly, and that prints exactly what ``wandb leet inspect`` prints:
the tests' reader (tests/readback.py), which every test that reads a run back relies on, and the package's (the
report tab, the launch summary)."""

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


@pytest.mark.parametrize("flags", [("--json",), ("--summary", "--json")], ids=["records", "summary"])
def test_the_package_reads_a_run_directory_as_wandb_leet_inspect_prints_it(
    run_file: Path, flags: tuple[str, ...]
) -> None:
    # The report tab and the launch summary read runs this way, through wandb-core when it is there.
    from flyteplugins_wandb.readback import leet_inspect
    from flyteplugins_wandb.readback._wandb_cli import _inspect_command

    assert Path(_inspect_command(_wandb_cli(), run_file.parent, flags)[0]).name == "wandb-core"
    out, error = leet_inspect(run_file.parent, *flags, timeout=60)
    cli = subprocess.run(
        [_wandb_cli(), "leet", "inspect", *flags, str(run_file.parent)], capture_output=True, text=True, timeout=120
    )
    assert (error, cli.returncode) == (None, 0), cli.stderr
    assert out == cli.stdout


def test_a_directory_without_exactly_one_run_file_is_left_to_the_wandb_cli(run_file: Path, tmp_path: Path) -> None:
    from flyteplugins_wandb.readback._wandb_cli import _inspect_command

    assert _inspect_command("wandb", tmp_path, ("--json",)) == ["wandb", "leet", "inspect", "--json", str(tmp_path)]
    (run_file.parent / "run-other.wandb").write_bytes(run_file.read_bytes())
    assert _inspect_command("wandb", run_file.parent, ())[0] == "wandb"
