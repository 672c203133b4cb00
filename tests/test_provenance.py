"""Every run says where it came from: Flyte provenance, a link back, roles, and W&B's conventions and limits.
Runs are real (offline) and read back from the files W&B wrote."""

from __future__ import annotations

import sys
from pathlib import Path

import flyte
import pytest
from layout_launches import LayoutLaunch
from readback import offline_runs
from remote_task import run_as_pod

from flyteplugins_wandb import get_wandb_run, wandb_config, wandb_init

plain = flyte.TaskEnvironment(name="prov-plain")


@wandb_init(project="p")
@plain.task
def tracked() -> bool:
    run = get_wandb_run()
    if run is not None:
        run.log({"x": 1})
    return "wandb" in sys.modules


@wandb_init(project="p", job_type="eval")
@plain.task
def tracked_eval() -> None:
    pass


def test_a_run_records_its_flyte_provenance_and_a_link_back(wandb_env: Path) -> None:
    env = {"_U_EP_OVERRIDE": "dns:///flyte.example.com:443", "FLYTE_ATTEMPT_NUMBER": "2"}
    assert run_as_pod(tracked, run_name="r1", action_name="a7", env=env) == ("ok", True)
    (run,) = offline_runs(wandb_env)
    assert run.config["flyte"] == {
        "project": "p",
        "domain": "development",
        "run_name": "r1",
        "action_name": "a7",
        "task_name": "prov-plain.tracked",
        "version": "v1",
        "run_mode": "auto",
        "rank_scope": "global",
        "url": "https://flyte.example.com/v2/domain/development/project/p/runs/r1?i=a7",
    }
    assert run.summary["flyte/attempt"] == 2
    assert run.job_type == ""  # not distributed: no role is implied


def test_the_console_address_can_be_given_explicitly(wandb_env: Path) -> None:
    run_as_pod(tracked, run_name="r1", action_name="a7", env={"FLYTE_CONSOLE_URL": "http://localhost:8080/"})
    (run,) = offline_runs(wandb_env)
    assert run.config["flyte"]["url"] == "http://localhost:8080/v2/domain/development/project/p/runs/r1?i=a7"


def test_job_type_from_the_environment_applies_and_the_decorator_wins_over_it(wandb_env: Path) -> None:
    run_as_pod(tracked, run_name="r1", action_name="a1", env={"WANDB_JOB_TYPE": "from-env"})
    run_as_pod(tracked_eval, run_name="r1", action_name="a2", env={"WANDB_JOB_TYPE": "from-env"})
    assert {r.run_id: r.job_type for r in offline_runs(wandb_env)} == {"r1-a1": "from-env", "r1-a2": "eval"}


def test_wandb_disabled_means_no_run_and_no_wandb_import(wandb_env: Path) -> None:
    assert run_as_pod(tracked, run_name="r1", action_name="a1", env={"WANDB_DISABLED": "true"}) == ("ok", False)
    assert offline_runs(wandb_env) == []


def test_wandb_tags_notes_and_group_from_the_environment_apply_when_nothing_else_sets_them(wandb_env: Path) -> None:
    env = {"WANDB_TAGS": "a,b", "WANDB_NOTES": "from env", "WANDB_RUN_GROUP": "g-env"}
    run_as_pod(tracked, run_name="r1", action_name="a1", env=env)
    run_as_pod(tracked, run_name="r1", action_name="a2", env=env, context=wandb_config(tags=["ctx"], group="g-ctx"))
    runs = {r.run_id: r for r in offline_runs(wandb_env)}
    assert (runs["r1-a1"].tags, runs["r1-a1"].group) == (["a", "b"], "g-env")
    assert (runs["r1-a2"].tags, runs["r1-a2"].group) == (["ctx"], "g-ctx")


@pytest.mark.parametrize("bad", ["", "x" * 65], ids=["empty", "65-chars"])
def test_a_tag_outside_wandb_limits_is_refused_where_it_is_written(bad: str) -> None:
    with pytest.raises(ValueError, match="1 to 64 characters"):
        wandb_init(tags=[bad])
    with pytest.raises(ValueError, match="1 to 64 characters"):
        wandb_config(tags=["ok", bad])


def test_a_name_longer_than_wandb_allows_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 128 characters"):
        wandb_init(name="n" * 129)


@pytest.mark.elastic
@pytest.mark.parametrize("layout_launch", ["1x2-new"], indirect=True)  # a run per rank, 1 node x 2
def test_distributed_runs_get_main_and_worker_roles_and_their_own_rank(layout_launch: LayoutLaunch) -> None:
    runs = {r.run_id: r for r in layout_launch.files}
    base = layout_launch.base
    assert {k: (r.job_type, r.config["flyte"]["rank"]) for k, r in runs.items()} == {
        f"{base}-rank-0": ("main", 0),
        f"{base}-rank-1": ("worker", 1),
    }
    assert all(r.config["flyte"]["world_size"] == 2 for r in runs.values())
