"""Faults injected for real: retries, elastic restarts, a slow or failing primary, a stuck finish, SIGTERM,
a missing API key, secrets in the config. W&B runs offline and is read back from what it wrote."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import flyte
import pytest
import torch.distributed as dist
from flyteplugins.pytorch.task import Elastic
from readback import by_rank, offline_runs, recorded_calls
from remote_task import run_as_pod

from flyteplugins_wandb import get_wandb_run, wandb_init
from flyteplugins_wandb.local import LocalElasticError, run_elastic_locally

FAULTS = str(Path(__file__).parent / "faults")
plain = flyte.TaskEnvironment(name="faults-plain")
elastic = flyte.TaskEnvironment(name="faults-elastic", plugin_config=Elastic(nnodes=1, nproc_per_node=2))


@wandb_init(project="p")
@plain.task
def flaky(steps: int) -> int:
    run = get_wandb_run()
    assert run is not None
    attempt = flyte.ctx().attempt_number
    for i in range(steps):
        run.log({"attempt_seen": attempt, "i": i})
    if attempt == 0:
        raise RuntimeError("first attempt fails")
    return attempt


@wandb_init(project="p", run_per_attempt=True)
@plain.task
def flaky_fresh_runs(steps: int) -> int:
    return flaky.func.__wrapped__(steps)  # type: ignore[attr-defined, no-any-return]


@wandb_init(project="p", start_timeout=1)
@plain.task
def init_may_hang(x: int) -> tuple[int, bool]:
    return x, get_wandb_run() is None


@wandb_init(project="p", start_timeout=1, strict=True)
@plain.task
def init_may_hang_strict(x: int) -> int:
    return x


@wandb_init(project="p", config={"lr": 0.1, "api_key": "sk-123", "db": {"password": "hunter2", "host": "h"}})
@plain.task
def with_secrets() -> str:
    run = get_wandb_run()
    assert run is not None
    return run.id


@wandb_init(project="p")
@plain.task
def marks_started(marker: str) -> None:
    Path(marker).write_text("body ran")


@wandb_init(project="p", run_mode="shared")
@elastic.task
def shared_training(x: int) -> int:
    dist.init_process_group("gloo")
    run = get_wandb_run()
    if run is not None:
        run.log({f"rank{dist.get_rank()}": x})
    dist.barrier()
    dist.destroy_process_group()
    return x


@wandb_init(project="p", run_mode="shared", start_timeout=2)
@elastic.task
def shared_impatient(x: int) -> int:
    return shared_training.func.__wrapped__(x)  # type: ignore[attr-defined, no-any-return]


@wandb_init(project="p", run_mode="shared")
@elastic.task
def shared_writer_lingers(x: int) -> int:
    """Rank 1 goes on 3 s after the others are done (writing its last data, say) before it returns."""
    out = shared_training.func.__wrapped__(x)
    if int(os.environ["RANK"]) == 1:
        time.sleep(3)
    return out  # type: ignore[no-any-return]


@wandb_init(project="p")
@elastic.task
def trains_until_preempted(marker_dir: str) -> int:
    """Logs once, then says so in ``rank{r}`` (holding its agent's pid, the pod's main process), then trains on."""
    run = get_wandb_run()
    if run is not None:
        run.log({"started": 1})
    Path(marker_dir, f"rank{os.environ['RANK']}").write_text(str(os.getppid()))
    time.sleep(600)
    return 0


def _faults(**variables: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([FAULTS, os.environ.get("PYTHONPATH", "")]), **variables}


def test_a_retry_continues_the_same_run(wandb_env: Path) -> None:
    first = run_as_pod(flaky, run_name="R", action_name="a1", env={"FLYTE_ATTEMPT_NUMBER": "0"}, steps=2)
    second = run_as_pod(flaky, run_name="R", action_name="a1", env={"FLYTE_ATTEMPT_NUMBER": "1"}, steps=3)
    assert first[0] == "error" and "first attempt fails" in first[1]
    assert second == ("ok", 1)
    runs = sorted(offline_runs(wandb_env), key=lambda r: r.start_time)
    assert [r.run_id for r in runs] == ["R-a1", "R-a1"]
    assert [r.exit_code for r in runs] == [1, 0]
    assert [r.summary["flyte/attempt"] for r in runs] == [0, 1]
    assert [r.metric("attempt_seen") for r in runs] == [[0, 0], [1, 1, 1]]


def test_run_per_attempt_opens_a_fresh_grouped_run_each_attempt(wandb_env: Path) -> None:
    for attempt in ("0", "1"):
        run_as_pod(flaky_fresh_runs, run_name="R", action_name="a1", env={"FLYTE_ATTEMPT_NUMBER": attempt}, steps=1)
    runs = offline_runs(wandb_env)
    assert [(r.run_id, r.group, r.exit_code) for r in runs] == [
        ("R-a1-attempt-0", "R-a1", 1),
        ("R-a1-attempt-1", "R-a1", 0),
    ]


# Faults bound to one rank are made in the worker (tests/faults/sitecustomize.py), not at a fake server: every
# writer of a shared run talks to the same server, which cannot tell the primary's requests from the others'.


def _calls(log: Path, event: str = "init") -> dict[str | None, list[dict[str, Any]]]:
    return by_rank(recorded_calls(log, event))


@pytest.mark.elastic
def test_writers_wait_for_a_slow_primary_to_attach_and_the_primary_waits_for_them_to_finish(
    wandb_env: Path, tmp_path: Path
) -> None:
    # One shared run's whole life with both ends slow: the primary's start is held 4 s, and rank 1 goes on 3 s
    # after the others are done before it returns.
    log = tmp_path / "calls.jsonl"
    env = _faults(FAULT_RANKS="0", FAULT_INIT_DELAY="4", FAULT_LOG=str(log))
    result = run_elastic_locally(shared_writer_lingers, env=env, x=7)
    assert result.output == 7
    (primary,), (writer,) = _calls(log)["0"], _calls(log)["1"]
    assert (primary.get("fault"), writer.get("fault")) == ("delay", None), "only the primary was slowed"
    assert writer["called"] > primary["returned"], "the writer attached only after the primary had created the run"
    (primary_finish,), (writer_finish,) = _calls(log, "finish")["0"], _calls(log, "finish")["1"]
    assert primary_finish["called"] > writer_finish["returned"], "the primary's finish waited for the writer's"
    runs = {("rank-0" in str(r.path)): r for r in offline_runs(wandb_env)}
    assert runs[True].metric("rank0") == [7] and runs[False].metric("rank1") == [7]
    assert all((r.exit_code, r.state) == (0, "finished") for r in runs.values())


@pytest.mark.elastic
def test_when_the_primary_cannot_start_the_run_the_writer_goes_on_without_one(
    wandb_env: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "calls.jsonl"
    result = run_elastic_locally(
        shared_training, env=_faults(FAULT_RANKS="0", FAULT_INIT_FAIL="1", FAULT_LOG=str(log)), x=3
    )
    assert result.output == 3
    calls = _calls(log)
    assert [c["error"] for c in calls["0"]] == ["CommError: injected: the W&B server refused the run"] * 3
    # Rank 1's own init was never tried, let alone failed: it stayed without a run because its primary failed.
    assert "1" not in calls
    # It says why, in the primary's words.
    said = "failed to start it (CommError: injected: the W&B server refused the run); rank-1 goes on without a run"
    assert said in capfd.readouterr().err
    assert result.runs == ()
    assert offline_runs(wandb_env) == []


@pytest.mark.elastic
def test_a_writer_whose_primary_never_answers_attaches_after_start_timeout(
    wandb_env: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "calls.jsonl"
    # The primary's init is held 9 s (beyond its own bound, so it is abandoned); the writer waits start_timeout
    # (2 s) for it, then attaches on its own.
    env = _faults(FAULT_RANKS="0", FAULT_INIT_DELAY="9", FAULT_LOG=str(log))
    result = run_elastic_locally(shared_impatient, env=env, x=5)
    assert result.output == 5
    (delay,), (writer,) = _calls(log, "delay")["0"], _calls(log)["1"]
    assert writer["called"] < delay["until"], "the writer attached while the primary's init was still held"
    assert "error" not in writer
    assert "did not start it within 2s; rank-1 attaches anyway" in capfd.readouterr().err
    runs = {("rank-1" in str(r.path)): r for r in offline_runs(wandb_env)}
    assert runs[True].metric("rank1") == [5], "the writer's data was written"


# A hang inside the process, outside wandb's own init_timeout (its service stuck, say), is what the plugin's outer
# bound is for: a server cannot cause one, since wandb's init_timeout ends a stalled request first
# (test_server_faults.py shows that). So it is made in-process.


def test_a_hanging_wandb_init_is_bounded_and_training_goes_on_without_a_run(wandb_env: Path) -> None:
    result = run_as_pod(init_may_hang, run_name="R", action_name="a1", env=_faults(FAULT_INIT_DELAY="600"), x=5)
    assert result == ("ok", (5, True))
    assert offline_runs(wandb_env) == []


def test_a_hanging_wandb_init_fails_a_strict_task_with_a_clear_error(wandb_env: Path) -> None:
    status, message = run_as_pod(
        init_may_hang_strict, run_name="R", action_name="a1", env=_faults(FAULT_INIT_DELAY="600"), x=5
    )
    assert status == "error"
    assert "wandb.init of run R-a1 did not finish within" in message


@pytest.mark.elastic
def test_sigterm_ends_the_runs_cleanly_instead_of_leaving_them_crashed(wandb_env: Path, tmp_path: Path) -> None:
    # Preemption as a cluster does it: SIGTERM to the pod's main process (the elastic agent), once rank 0 has
    # logged (an event, not a clock: a busy machine may take long to get there).
    with ThreadPoolExecutor(1) as pool:
        launch = pool.submit(run_elastic_locally, trains_until_preempted, timeout=600, marker_dir=str(tmp_path))
        marker = tmp_path / "rank0"
        while not marker.exists() and not launch.done():
            time.sleep(0.2)
        assert marker.exists(), launch.exception()
        os.kill(int(marker.read_text()), signal.SIGTERM)
        with pytest.raises(LocalElasticError, match="node 0 failed"):
            launch.result(timeout=300)
    (run,) = offline_runs(wandb_env)
    assert run.exit_code == 143
    assert run.summary["flyte/preempted"] is True
    assert run.metric("started") == [1]


def test_online_mode_without_an_api_key_fails_before_training(
    wandb_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    marker = tmp_path / "marker"
    status, message = run_as_pod(marks_started, run_name="R", action_name="a1", marker=str(marker))
    assert status == "error"
    assert "no API key" in message and "WANDB_API_KEY" in message
    assert not marker.exists()


def test_secret_looking_config_values_are_never_written(wandb_env: Path) -> None:
    status, _ = run_as_pod(with_secrets, run_name="R", action_name="a1")
    assert status == "ok"
    (run,) = offline_runs(wandb_env)
    assert run.config["lr"] == 0.1
    assert run.config["db"] == {"host": "h"}
    assert "api_key" not in run.config
    assert "sk-123" not in str(run.config) and "hunter2" not in str(run.config)
