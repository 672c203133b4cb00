"""One W&B service per node, owned by the pod process: a retry on a user's service continues its run and leaves
the service running, and a service that cannot start costs only the node service (a killed worker and its
restart: tests/test_worker_restart.py). Real torch elastic workers; W&B offline, read back from what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import elastic_tasks
import flyte
import pytest
from flyteplugins.pytorch.task import Elastic
from layout_launches import LayoutLaunch
from readback import offline_runs

from flyteplugins_wandb import get_wandb_run, wandb_init
from flyteplugins_wandb._keys import NODE_SERVICE_ENV
from flyteplugins_wandb.local import LocalElasticError, _launcher, run_elastic_locally
from flyteplugins_wandb.pod._node_service import NodeService, node_service, service_reachable, writer_services

FAULTS = str(Path(__file__).parent / "faults")
elastic = flyte.TaskEnvironment(name="node-service-elastic", plugin_config=Elastic(nnodes=1, nproc_per_node=2))
ROWS = 5


def _log_rows(run: object, first: int) -> None:
    for i in range(first, first + ROWS):
        run.log({"row": i})  # type: ignore[attr-defined]


@wandb_init(project="p", run_mode="new")
@elastic.task
def rank_1_dies_once(marker_dir: str) -> int:
    """Every rank logs 5 rows per attempt; on the first start (restart 0 of attempt 0) rank 1 then dies abruptly,
    as an OOM kill would end it, and rank 0 trains on until the agent stops it."""
    rank, restart = int(os.environ["RANK"]), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
    first_life = restart == 0 and flyte.ctx().attempt_number == 0
    run = get_wandb_run()
    assert run is not None
    Path(marker_dir, f"service-rank{rank}-restart{restart}").write_text(os.environ.get("WANDB_SERVICE", ""))
    _log_rows(run, 0 if first_life else 100)
    Path(marker_dir, f"rank{rank}-restart{restart}").write_text("logged")
    if first_life:
        if rank == 1:
            while not Path(marker_dir, "rank0-restart0").exists():
                time.sleep(0.1)
            # Its rows were handed to wandb; the service writes them asynchronously, as in real training.
            os._exit(1)
        time.sleep(300)  # stopped by the agent's restart well before this
    return restart


def _rows(run: object) -> list[int]:
    return [int(v) for v in run.metric("row")]  # type: ignore[attr-defined]


def _faults(**variables: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([FAULTS, os.environ.get("PYTHONPATH", "")]), **variables}


def _wandb(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("wandb")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.elastic
def test_a_retry_on_a_users_service_continues_the_run_and_leaves_the_service_running(
    wandb_env: Path, tmp_path: Path
) -> None:
    started = _wandb("beta", "core", "start", "--idle-timeout", "5m")
    assert started.returncode == 0, started.stderr
    token = started.stdout.strip()
    try:
        env = {"WANDB_SERVICE": token}
        with pytest.raises(LocalElasticError):
            # No restarts: attempt 0 fails when rank 1 dies, and the user's service still holds its stream.
            run_elastic_locally(
                rank_1_dies_once, max_restarts=0, env=env, run_name="R", timeout=900, marker_dir=str(tmp_path)
            )
        retry = run_elastic_locally(
            rank_1_dies_once, max_restarts=0, env=env, run_name="R", attempt=1, timeout=900, marker_dir=str(tmp_path)
        )
        assert retry.output == 0
        assert service_reachable(token) is True  # the user's service is left running
        runs = sorted((r for r in offline_runs(wandb_env) if r.run_id == "R-a0-rank-1"), key=lambda r: r.start_time)
        assert [_rows(r) for r in runs] == [list(range(ROWS)), list(range(100, 100 + ROWS))]
        assert runs[0].state == "failed" and runs[1].state == "finished"
        assert runs[1].summary["flyte/attempt"] == 1
        assert {p.read_text() for p in tmp_path.glob("service-*")} == {token}
    finally:
        stopped = subprocess.run(
            [str(Path(sys.executable).with_name("wandb")), "beta", "core", "stop"],
            env={**os.environ, "WANDB_SERVICE": token},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert stopped.returncode == 0, stopped.stderr


@wandb_init(project="p", run_mode="new")
@elastic.task
def records_service(marker_dir: str) -> int:
    rank = int(os.environ["RANK"])
    run = get_wandb_run()
    assert run is not None
    _log_rows(run, 0)
    # A service's token names the process that started it: the agent (the pod) or this worker.
    token = os.environ.get("WANDB_SERVICE") or ""
    facts = {"service": token, "own": token.split("-")[1:2] == [str(os.getpid())], "run": run.id}
    Path(marker_dir, f"rank{rank}.json").write_text(json.dumps(facts))
    return rank


@pytest.mark.elastic
def test_when_the_node_service_cannot_start_each_worker_uses_its_own_after_one_warning(
    wandb_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The agent (the pod process) must see the fault from its interpreter's start: a fresh interpreter, not one
    # forked from the launcher's fork server, which started without the fault hooks.
    for name, value in _faults(FAULT_DETACHED_SERVICE_FAIL="1").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(_launcher, "_agent_processes", _launcher._spawned_agents)
    result = run_elastic_locally(records_service, max_restarts=0, timeout=900, marker_dir=str(tmp_path))
    assert result.output == 0
    facts = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert [f["own"] for f in facts] == [True, True]
    err = capfd.readouterr().err
    assert err.count("could not start one W&B service for this node") == 1
    runs = offline_runs(wandb_env)
    assert sorted(r.run_id for r in runs) == sorted(f["run"] for f in facts)
    assert all(_rows(r) == list(range(ROWS)) and r.state == "finished" for r in runs)


@pytest.mark.elastic
@pytest.mark.parametrize("layout_launch", ["1x2-new"], indirect=True)  # a run per rank, 1 node x 2
def test_workers_of_a_node_join_one_service(layout_launch: LayoutLaunch) -> None:
    facts = [layout_launch.facts[rank] for rank in (0, 1)]
    services = {f["service"] for f in facts}
    assert len(services) == 1 and services != {""}
    assert [f["own_service"] for f in facts] == [False, False]
    runs = layout_launch.files
    rows = list(range(elastic_tasks.ROWS))
    assert len(runs) == 2 and all(_rows(r) == rows and r.state == "finished" for r in runs)


def test_the_node_service_runs_for_its_block_only_and_is_handed_over_in_wandb_service() -> None:
    environ: dict[str, str] = {}
    with node_service(stop_timeout=60, environ=environ) as service:
        assert service is not None and service.owned
        assert environ == {"WANDB_SERVICE": service.token}
        assert service_reachable(service.token) is True
    assert environ == {}
    assert service_reachable(service.token) is False


def test_a_service_the_user_started_is_used_and_not_stopped() -> None:
    with node_service(stop_timeout=60, environ={}) as users:
        assert users is not None
        environ = {"WANDB_SERVICE": users.token}
        with node_service(stop_timeout=60, environ=environ) as service:
            assert service == NodeService(users.token, owned=False)
        assert environ == {"WANDB_SERVICE": users.token}
        assert service_reachable(users.token) is True


@pytest.mark.parametrize("off", ["0", "false", "off"])
def test_the_node_service_can_be_turned_off(off: str) -> None:
    environ = {NODE_SERVICE_ENV: off}
    with node_service(stop_timeout=60, environ=environ) as service:
        assert service is None and "WANDB_SERVICE" not in environ


def test_a_layout_that_shares_runs_hides_the_users_service_from_the_workers() -> None:
    environ = {"WANDB_SERVICE": "3-1-unix-/nonexistent/socket", NODE_SERVICE_ENV: "0"}
    with writer_services(2, stop_timeout=60, environ=environ) as services:
        assert services == () and "WANDB_SERVICE" not in environ
    assert environ == {"WANDB_SERVICE": "3-1-unix-/nonexistent/socket", NODE_SERVICE_ENV: "0"}


def test_an_elastic_task_keeps_its_object_class_and_hook_through_override_replace_and_pickling() -> None:
    import dataclasses

    import cloudpickle
    from flyteplugins.pytorch.task import TorchFunctionTask

    from flyteplugins_wandb.task._pod import POD_OPTIONS

    env = flyte.TaskEnvironment(name="node-service-hook", plugin_config=Elastic(nnodes=1, nproc_per_node=2))

    def train(x: int) -> int:
        return x

    task = env.task(train)
    assert wandb_init(project="p")(task) is task
    assert next(iter(env.tasks.values())) is task
    assert isinstance(task, TorchFunctionTask) and type(task).__name__ == "TorchFunctionTask"
    copies = {
        "override": task.override(retries=2),
        "replace": dataclasses.replace(task, plugin_config=Elastic(nnodes=1, nproc_per_node=4)),
        "cloudpickle": cloudpickle.loads(cloudpickle.dumps(task)),
    }
    for how, copy in copies.items():
        assert getattr(type(copy), POD_OPTIONS, None) is not None, how
        assert isinstance(copy, TorchFunctionTask), how


def test_a_plain_task_is_not_hooked() -> None:
    from flyteplugins_wandb.task._pod import POD_OPTIONS

    env = flyte.TaskEnvironment(name="node-service-plain")

    def add(x: int) -> int:
        return x

    task = wandb_init(env.task(add))
    assert not hasattr(type(task), POD_OPTIONS)
