"""A key the W&B server refuses (HTTP 401/403) fails the task at its first refusal, with an error that names where
the key came from; an error that may pass (HTTP 5xx) is still retried. Online runs against the fake W&B server
on 127.0.0.1 (``tests/fake_wandb_server.py``); the requests are counted at the server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import flyte
import pytest
from fake_wandb_server import LONG_KEY, FakeWandb, serve
from readback import recorded_calls
from remote_task import run_as_pod

from flyteplugins_wandb import get_wandb_run, wandb_init

FAULTS = str(Path(__file__).parent / "faults")
env = flyte.TaskEnvironment(name="refused-key")


@wandb_init(project="p", entity="e", start_timeout=2)
@env.task
def trains(x: int) -> tuple[int, bool]:
    """Logs x if it has a run; returns x and whether it had one."""
    run = get_wandb_run()
    if run is not None:
        run.log({"x": x})
    return x, run is not None


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandb]:
    """A fake W&B server, this environment online against it, each ``wandb.init`` recorded in FAULT_LOG."""
    fake = FakeWandb()
    with serve(fake) as url:
        monkeypatch.setenv("WANDB_MODE", "online")
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_API_KEY", LONG_KEY)
        monkeypatch.setenv("FAULT_LOG", str(tmp_path / "calls.jsonl"))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([FAULTS, os.environ.get("PYTHONPATH", "")]))
        yield fake


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_fails_the_task_at_the_first_refusal_naming_the_environment_variable(
    server: FakeWandb, tmp_path: Path, status: int
) -> None:
    server.status = status
    outcome, message = run_as_pod(trains, run_name="R", action_name="a1", x=5)
    assert outcome == "error"
    assert message.startswith("ApiKeyRefusedError: "), message
    assert "the environment variable WANDB_API_KEY" in message
    assert f"HTTP {status}" in message
    assert len(server.auth) == 1, "one request reached the server: the refusal was not retried"
    assert len(recorded_calls(tmp_path / "calls.jsonl")) == 1


def test_a_refused_key_from_a_netrc_file_names_that_file(
    server: FakeWandb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    machine = os.environ["WANDB_BASE_URL"].split("://")[1]  # wandb looks up host:port
    netrc.write_text(f"machine {machine}\n  login user\n  password {'x' * 40}\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("NETRC", str(netrc))
    server.status = 401
    outcome, message = run_as_pod(trains, run_name="R", action_name="a1", x=5)
    assert outcome == "error"
    assert f"the netrc file {netrc} (machine {machine})" in message, message
    assert len(server.auth) == 1


def test_a_server_error_is_retried_and_training_goes_on_without_a_run(server: FakeWandb, tmp_path: Path) -> None:
    server.status = 500
    warnings: list[str] = []
    assert run_as_pod(trains, run_name="R", action_name="a1", warnings=warnings, x=5) == ("ok", (5, False))
    assert len(recorded_calls(tmp_path / "calls.jsonl")) == 3, "wandb.init is tried three times"
    assert len(server.auth) >= 3, "each try reached the server"
    assert any("on this process" in w and "training goes on without it" in w for w in warnings), warnings
