"""Real local Flyte runs (flyte.run) with W&B offline, read back from the files W&B wrote.

The conftest fixture points W&B at this test's temporary directory, offline; it yields that directory.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flyte
import pytest
from flyteplugins.pytorch.task import Elastic
from readback import OfflineRun, offline_runs

from flyteplugins_wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins_wandb.local import pod_context

env = flyte.TaskEnvironment(name="test_local_tasks")
elastic_env = flyte.TaskEnvironment(name="test_local_tasks_elastic", plugin_config=Elastic(nnodes=1, nproc_per_node=2))


def what_the_task_saw() -> dict[str, str]:
    """The action's names and the run that get_wandb_run() gave the body ("" for none)."""
    action = flyte.ctx().action
    run = get_wandb_run()
    return {"run_name": str(action.run_name), "action_name": action.name, "run_id": run.id if run is not None else ""}


@wandb_init(project="dec-project", entity="dec-entity", tags=["dec", "2024"], config={"year": "2024", "lr": 0.5})
@env.task
def sync_task(x: int) -> dict[str, str]:
    run = get_wandb_run()
    if run is not None:
        run.log({"x": x})
    return what_the_task_saw()


@wandb_init(project="dec-project")
@env.task
async def async_task(x: int) -> dict[str, str]:
    run = get_wandb_run()
    if run is not None:
        run.log({"x": x})
    return what_the_task_saw()


@wandb_init
@env.task
def bare_task() -> dict[str, str]:
    return what_the_task_saw()


@wandb_init(project="dec-project", config={"lr": 0.5})
@env.task
def overriding_task() -> dict[str, str]:
    return what_the_task_saw()


@wandb_init
@env.task
def failing_task() -> dict[str, str]:
    run = get_wandb_run()
    if run is not None:
        run.log({"before": 1})
    raise RuntimeError("the body failed: sentinel-7f3a")


@env.task
@wandb_init(project="beneath")
def beneath_task() -> dict[str, str]:
    return what_the_task_saw()


@wandb_init
@elastic_env.task
def elastic_task() -> dict[str, str]:
    return what_the_task_saw()


def _teardown_wandb() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


@wandb_init
@env.task
async def sibling_task(pause: float) -> dict[str, str]:
    # Yield to the other sibling while this one's run is open, then look again.
    before = what_the_task_saw()
    await asyncio.sleep(pause)
    after = what_the_task_saw()
    return before | {"run_id_after_pause": after["run_id"]}


@env.task
async def parent_of_siblings() -> list[dict[str, str]]:
    return list(await asyncio.gather(sibling_task(0.2), sibling_task(0.1)))


@pytest.fixture(autouse=True)
def local_flyte() -> Iterator[None]:
    # wandb reads WANDB_DIR once per process, at its first setup; every test here has its own directory.
    _teardown_wandb()
    flyte.init()
    yield
    _teardown_wandb()


def launch(task: Any, context: dict[str, str] | None = None, **inputs: Any) -> dict[str, str]:
    runner = flyte.with_runcontext(custom_context=context) if context is not None else flyte
    seen: dict[str, str] = runner.run(task, **inputs).outputs()[0]
    return seen


def the_one_run(wandb_dir: Path) -> OfflineRun:
    runs = offline_runs(wandb_dir)
    assert len(runs) == 1, [r.run_id for r in runs]
    return runs[0]


def user_config(run: OfflineRun) -> dict[str, Any]:
    """The run's config without what the plugin adds about the Flyte execution."""
    return {k: v for k, v in run.config.items() if k != "flyte"}


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def sync_launch(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], OfflineRun]:
    """One launch of ``sync_task`` and its run as written, shared by the tests that look at it: reading a run
    back costs two ``wandb`` CLI calls. Isolated like the conftest fixture, which is per test."""
    root = tmp_path_factory.mktemp("sync-launch")
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("WANDB_")]:
            mp.delenv(key)
        for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
            (root / name).mkdir()
            mp.setenv(name, str(root / name))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DISABLE_GIT", "true")
        _teardown_wandb()
        flyte.init()
        seen = launch(sync_task, x=3)
        _teardown_wandb()
        return seen, the_one_run(root / "WANDB_DIR")


def test_a_sync_task_writes_exactly_one_run_named_after_its_run_and_action(
    sync_launch: tuple[dict[str, str], OfflineRun],
) -> None:
    seen, run = sync_launch
    assert run.run_id == f"{seen['run_name']}-{seen['action_name']}"


def test_what_the_task_logs_is_in_its_run(sync_launch: tuple[dict[str, str], OfflineRun]) -> None:
    assert sync_launch[1].metric("x") == [3]


def test_get_wandb_run_returns_the_tasks_run_inside_the_task(sync_launch: tuple[dict[str, str], OfflineRun]) -> None:
    seen, run = sync_launch
    assert seen["run_id"] == run.run_id


def test_a_finished_task_leaves_its_run_finished_successfully(sync_launch: tuple[dict[str, str], OfflineRun]) -> None:
    run = sync_launch[1]
    assert (run.exit_code, run.state) == (0, "finished")


def test_decorator_settings_reach_the_written_run(sync_launch: tuple[dict[str, str], OfflineRun]) -> None:
    run = sync_launch[1]
    assert (run.project, run.entity, run.tags) == ("dec-project", "dec-entity", ["dec", "2024"])
    assert user_config(run) == {"year": "2024", "lr": 0.5}


def test_an_async_task_writes_exactly_one_run_named_after_its_run_and_action(wandb_env: Path) -> None:
    seen = launch(async_task, x=4)
    run = the_one_run(wandb_env)
    assert run.run_id == f"{seen['run_name']}-{seen['action_name']}"
    assert run.metric("x") == [4]


def test_get_wandb_run_is_none_again_once_the_task_returns_in_the_same_context(tmp_path: Path) -> None:
    # flyte.run executes a task on an event loop of its own, whose context could never leak back here; so the
    # task runs in this very context, as a pod runs it, and the run must be unbound when its body returns.
    async def in_this_context() -> tuple[dict[str, str], object]:
        with pod_context("R", "a1", root=str(tmp_path)):
            seen = await async_task.execute(x=1)
            return seen, get_wandb_run()

    seen, after = asyncio.run(in_this_context())
    assert seen["run_id"] == "R-a1", "the body had its run"
    assert after is None


def test_run_context_settings_reach_the_written_run_with_string_values_kept(wandb_env: Path) -> None:
    context = wandb_config(project="ctx-project", entity="ctx-entity", tags=["ctx"], config={"year": "2024", "n": 2})
    launch(bare_task, context)
    run = the_one_run(wandb_env)
    assert (run.project, run.entity, run.tags) == ("ctx-project", "ctx-entity", ["ctx"])
    assert user_config(run) == {"year": "2024", "n": 2}


def test_a_host_and_unknown_wandb_keys_in_the_run_context_do_not_stop_the_run(wandb_env: Path) -> None:
    # host is for the links only (passing it to wandb.init fails every run); unknown keys may come from another
    # version of the plugin.
    context = {**wandb_config(host="https://wandb.example.com", project="ctx-project"), "wandb_added_later": "{"}
    seen = launch(bare_task, context)
    assert seen["run_id"] == f"{seen['run_name']}-{seen['action_name']}"
    assert files_under(wandb_env) != []


def test_a_shared_run_mode_from_the_run_context_gives_a_plain_task_a_run_of_its_own(wandb_env: Path) -> None:
    # The run context reaches every task of the run, Elastic or not: a plain task (an orchestrating parent, say)
    # is not stopped by a run-wide shared layout, and gets its own run.
    seen = launch(bare_task, wandb_config(run_mode="shared"))
    run = the_one_run(wandb_env)
    assert seen["run_id"] == run.run_id == f"{seen['run_name']}-{seen['action_name']}"


def test_the_decorator_beats_the_run_context_and_configs_merge_key_by_key(wandb_env: Path) -> None:
    context = wandb_config(project="ctx-project", entity="ctx-entity", config={"lr": 0.1, "epochs": 5})
    launch(overriding_task, context)
    run = the_one_run(wandb_env)
    assert (run.project, run.entity) == ("dec-project", "ctx-entity")
    assert user_config(run) == {"lr": 0.5, "epochs": 5}


def test_a_failing_body_propagates_its_exception() -> None:
    with pytest.raises(Exception, match="sentinel-7f3a"):
        launch(failing_task)


def test_a_failing_body_leaves_its_run_written_as_failed(wandb_env: Path) -> None:
    with pytest.raises(Exception, match="sentinel-7f3a"):
        launch(failing_task)
    run = the_one_run(wandb_env)
    assert (run.exit_code, run.state) == (1, "failed")
    assert run.metric("before") == [1]


def test_with_wandb_mode_disabled_the_task_runs_and_nothing_is_written(
    wandb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    seen = launch(sync_task, x=1)
    assert seen["action_name"] and files_under(wandb_env) == []


def test_with_wandb_disabled_the_task_has_no_run_and_nothing_is_written(
    wandb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_DISABLED", "true")
    seen = launch(sync_task, x=1)
    assert seen["run_id"] == ""
    assert files_under(wandb_env) == []


def test_the_decorator_beneath_env_task_still_tracks_the_run(wandb_env: Path) -> None:
    seen = launch(beneath_task)
    run = the_one_run(wandb_env)
    assert (run.run_id, run.project) == (f"{seen['run_name']}-{seen['action_name']}", "beneath")


def test_the_decorator_beneath_env_task_attaches_no_links() -> None:
    assert beneath_task.links == ()


def test_an_elastic_task_run_locally_behaves_as_not_distributed(wandb_env: Path) -> None:
    seen = launch(elastic_task)
    run = the_one_run(wandb_env)
    assert seen["run_id"] == run.run_id == f"{seen['run_name']}-{seen['action_name']}"
    assert run.group == ""


def test_concurrent_sibling_tasks_each_see_only_their_own_run() -> None:
    seen = launch(parent_of_siblings)
    assert [(s["run_id"], s["run_id_after_pause"]) for s in seen] == [
        (f"{s['run_name']}-{s['action_name']}",) * 2 for s in seen
    ]
    assert len({s["action_name"] for s in seen}) == 2
