"""Faults of the W&B server, made at the seam users meet: online runs against a fake W&B server on 127.0.0.1 that
stalls, fails or refuses (``tests/fake_wandb_server.py``). wandb itself runs unchanged (its service, its own
``init_timeout``); what each process passed to ``wandb.init`` is recorded by the test hook of
``tests/faults/sitecustomize.py``, and what reached the server is recorded by the fake."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import flyte
import pytest
import torch.distributed as dist
from fake_wandb_server import LONG_KEY, FakeWandb, serve
from flyteplugins.pytorch.task import Elastic
from readback import by_rank, recorded_calls
from remote_task import run_as_pod

from flyteplugins_wandb import get_wandb_run, wandb_init
from flyteplugins_wandb.local import LocalElasticError, run_elastic_locally

FAULTS = str(Path(__file__).parent / "faults")
plain = flyte.TaskEnvironment(name="server-faults-plain")
elastic = flyte.TaskEnvironment(name="server-faults-elastic", plugin_config=Elastic(nnodes=1, nproc_per_node=2))


@wandb_init(project="p", entity="e", start_timeout=2)
@plain.task
def trains(x: int) -> tuple[int, bool]:
    """Logs x if it has a run; returns x and whether it had one."""
    run = get_wandb_run()
    if run is not None:
        run.log({"x": x})
    return x, run is not None


@wandb_init(project="p", entity="e", start_timeout=2, strict=True)
@plain.task
def trains_strict(x: int) -> int:
    return x


@wandb_init(project="p", entity="e", finish_timeout=1)
@plain.task
def quick(x: int) -> int:
    run = get_wandb_run()
    assert run is not None
    run.log({"x": x})
    return x


@wandb_init(project="p", entity="e", run_mode="shared")
@elastic.task
def shared_training(x: int) -> int:
    dist.init_process_group("gloo")
    run = get_wandb_run()
    if run is not None:
        run.log({f"rank{dist.get_rank()}": x})
    dist.barrier()
    dist.destroy_process_group()
    return x


@wandb_init(project="p", entity="e", run_mode="shared", strict=True)
@elastic.task
def shared_strict(x: int) -> int:
    return shared_training.func.__wrapped__(x)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandb]:
    """A fake W&B server for the test's duration (stopped after it, releasing any stalled request), and an
    environment online against it, with the recording hook loaded in every pod and worker."""
    fake = FakeWandb()
    with serve(fake) as url:
        monkeypatch.setenv("WANDB_MODE", "online")
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_API_KEY", LONG_KEY)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join([FAULTS, os.environ.get("PYTHONPATH", "")]))
        yield fake


@pytest.fixture
def inits_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAULT_LOG", str(log))
    return log


def _final_states(fake: FakeWandb, run: str) -> list[dict[str, object]]:
    """The file_stream posts of ``run`` that set its final state (exit code, complete)."""
    return [s.variables for s in fake.ops("file_stream") if s.run == run and "exitcode" in s.variables]


def test_against_a_working_server_the_run_is_created_logged_and_finished_once(
    server: FakeWandb, inits_log: Path
) -> None:
    # The control for the faults below: this fake really is a W&B server to wandb.
    assert run_as_pod(trains, run_name="R", action_name="a1", x=5) == ("ok", (5, True))
    assert {s.run for s in server.ops("UpsertBucket")} == {"R-a1"}
    history = [s.variables for s in server.ops("file_stream") if "wandb-history.jsonl" in s.variables.get("files", {})]
    assert any('"x":5' in line for post in history for line in post["files"]["wandb-history.jsonl"]["content"])
    assert [(s["complete"], s["exitcode"]) for s in _final_states(server, "R-a1")] == [(True, 0)]
    assert [c.get("error") for c in recorded_calls(inits_log)] == [None]


@pytest.mark.parametrize(
    ("fault", "wandbs_error"),
    [
        pytest.param({"hang": True}, "context deadline exceeded", id="never-answers"),
        pytest.param({"status": 503}, "context deadline exceeded", id="server-error-503"),
    ],
)
def test_a_server_that_cannot_take_the_run_leaves_training_going_on_without_one_after_three_tries(
    server: FakeWandb, inits_log: Path, fault: dict[str, object], wandbs_error: str
) -> None:
    for name, value in fault.items():
        setattr(server, name, value)
    warnings: list[str] = []
    assert run_as_pod(trains, run_name="R", action_name="a1", warnings=warnings, x=5) == ("ok", (5, False))
    calls = recorded_calls(inits_log)
    assert len(calls) == 3, "wandb.init is tried three times"
    assert all(c["error"] for c in calls)
    assert [c["settings"]["init_timeout"] for c in calls] == [2.0] * 3, "start_timeout is wandb's own init_timeout"
    # wandb's own timeout (or refusal) ended each try, not the plugin's outer bound.
    assert all(wandbs_error in c["error"] for c in calls), [c["error"][:200] for c in calls]
    assert not any("did not finish within" in w for w in warnings)
    assert any("training goes on without it" in w for w in warnings)


def test_an_init_refused_twice_then_accepted_gives_the_task_its_run(server: FakeWandb, inits_log: Path) -> None:
    server.bucket_faults = [400, 400]
    assert run_as_pod(trains, run_name="R", action_name="a1", x=5) == ("ok", (5, True))
    assert [bool(c.get("error")) for c in recorded_calls(inits_log)] == [True, True, False]
    assert [(s["complete"], s["exitcode"]) for s in _final_states(server, "R-a1")] == [(True, 0)]


def test_a_strict_task_fails_with_wandbs_error_when_the_server_never_answers(
    server: FakeWandb, inits_log: Path
) -> None:
    server.hang = True
    status, message = run_as_pod(trains_strict, run_name="R", action_name="a1", x=5)
    assert status == "error"
    assert "context deadline exceeded" in message, "wandb's own init_timeout ended it"


def test_a_finish_stalled_by_the_server_is_bounded_and_the_warning_names_the_directory_to_sync(
    server: FakeWandb,
) -> None:
    server.hang_file_stream = True
    warnings: list[str] = []
    assert run_as_pod(quick, run_name="R", action_name="a1", warnings=warnings, x=4) == ("ok", 4)
    [warning] = [w for w in warnings if "did not finish within 1s" in w]
    assert "wandb sync" in warning
    directory = Path(warning.split("stays in ")[1].split(" (upload")[0])
    assert (directory / "run-R-a1.wandb").is_file(), "the named directory holds the run's data"


@pytest.mark.elastic
def test_online_shared_writers_each_carry_their_label_and_only_the_primary_sets_the_final_state(
    server: FakeWandb, inits_log: Path
) -> None:
    result = run_elastic_locally(shared_training, x=7)
    assert result.output == 7
    calls = by_rank(recorded_calls(inits_log))
    layout = ("mode", "x_label", "x_primary", "x_update_finish_state")
    settings = {rank: [{k: c["settings"][k] for k in layout} for c in rank_calls] for rank, rank_calls in calls.items()}
    assert settings == {
        "0": [
            {
                "mode": "shared",
                "x_label": "rank-0",
                "x_primary": True,
                "x_update_finish_state": True,
            }
        ],
        "1": [
            {
                "mode": "shared",
                "x_label": "rank-1",
                "x_primary": False,
                "x_update_finish_state": False,
            }
        ],
    }
    assert {c[0]["kwargs"]["id"] for c in calls.values()} == {result.run_ids[0]}
    # Both writers sent their data; only one post set the run's final state, and it says finished.
    run = result.run_ids[0]
    assert [(s["complete"], s["exitcode"]) for s in _final_states(server, run)] == [(True, 0)]
    # The server has the run whole: the pods saved no run files (only download_logs=True asks for them).
    assert result.run_files == ()


@pytest.mark.elastic
def test_a_strict_shared_task_fails_fast_when_the_server_refuses_the_run(server: FakeWandb) -> None:
    server.status = 401
    with pytest.raises(LocalElasticError, match="returned error 401"):
        run_elastic_locally(shared_strict, max_restarts=0, x=3)
