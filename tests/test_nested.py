"""Runs across task boundaries: parents, children, grandchildren, siblings, traces, run-context blocks.

Real local Flyte runs with W&B offline, read back from the files W&B wrote."""

from __future__ import annotations

import asyncio
from pathlib import Path

import flyte
import pytest
from readback import offline_runs
from remote_task import run_as_pod

from flyteplugins_wandb import get_wandb_run, wandb_config, wandb_init

env = flyte.TaskEnvironment(name="nested")


@wandb_init
@env.task
async def child_auto(x: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({f"child_auto_{x}": x})
    return run.id


@wandb_init(run_mode="new")
@env.task
async def child_new(x: int) -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"child_new": x})
    return run.id


@wandb_init(run_mode="new")
@env.task
async def child_new_with_grandchild(x: int) -> list[str]:
    run = get_wandb_run()
    assert run is not None
    return [run.id, await child_auto(x)]


@wandb_init(run_mode="shared")
@env.task
async def child_shared() -> str:
    run = get_wandb_run()
    assert run is not None
    return run.id


@wandb_init
@env.task
async def child_failing() -> None:
    raise ValueError("child broke")


@wandb_init(run_mode="new")
@env.task
async def child_new_failing() -> None:
    raise ValueError("new child broke")


@flyte.trace
async def traced_step() -> str | None:
    run = get_wandb_run()
    return run.id if run else None


@wandb_init(project="parent-project", entity="parent-entity", tags=["parent"], config={"lr": 0.1})
@env.task
async def parent_auto_children() -> dict[str, object]:
    run = get_wandb_run()
    assert run is not None
    kids = await asyncio.gather(child_auto(1), child_auto(2))
    after = get_wandb_run()
    return {"parent": run.id, "kids": list(kids), "same_after": after is run}


@wandb_init(project="parent-project")
@env.task
async def parent_new_children() -> dict[str, object]:
    run = get_wandb_run()
    assert run is not None
    a, b = await asyncio.gather(child_new(1), child_new(2))
    with wandb_config(project="block-project", tags=["block"]):
        inside = await child_new(3)
    outside = await child_new(4)
    return {"parent": run.id, "siblings": [a, b], "inside": inside, "outside": outside}


@wandb_init
@env.task
async def parent_grandchild() -> dict[str, object]:
    run = get_wandb_run()
    assert run is not None
    return {"parent": run.id, "chain": await child_new_with_grandchild(7)}


@env.task
async def undecorated_parent() -> str:
    return await child_shared()


@wandb_init
@env.task
async def parent_with_shared_child() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    return [run.id, await child_shared()]


@wandb_init
@env.task
async def parent_survives_children() -> dict[str, object]:
    run = get_wandb_run()
    assert run is not None
    raised = []
    for child in (child_failing, child_new_failing):
        try:
            await child()
        except Exception as e:  # Flyte wraps the child's error
            raised.append(str(e))
    run.log({"parent_done": 1})
    return {"parent": run.id, "raised": raised}


@wandb_init(
    project="parent-project",
    entity="parent-entity",
    tags=["parent"],
    config={"lr": 0.1},
    name="parent-name",
    notes="parent-notes",
    job_type="parent-job",
    run_mode="new",
)
@env.task
async def parent_with_every_setting() -> dict[str, object]:
    run = get_wandb_run()
    assert run is not None
    return {"parent": run.id, "new_child": await child_new(1), "bare_child": await child_auto(2)}


@wandb_init
@env.task
async def parent_with_trace() -> list[str | None]:
    run = get_wandb_run()
    assert run is not None
    return [run.id, await traced_step()]


@pytest.fixture(autouse=True)
def _flyte_local() -> None:
    flyte.init()


def _by_id(wandb_dir: Path) -> dict[str, list]:
    runs: dict[str, list] = {}
    for r in offline_runs(wandb_dir):
        runs.setdefault(r.run_id, []).append(r)
    return runs


def test_auto_children_log_into_the_parent_run_object(wandb_env: Path) -> None:
    out = flyte.run(parent_auto_children).outputs()[0]
    assert out["kids"] == [out["parent"], out["parent"]]
    assert out["same_after"] is True
    runs = _by_id(wandb_env)
    assert list(runs) == [out["parent"]]
    (parent,) = runs[out["parent"]]
    assert parent.metric("child_auto_1") == [1] and parent.metric("child_auto_2") == [2]
    assert parent.exit_code == 0


def test_new_children_get_own_runs_grouped_with_the_parent_and_inherit_its_settings(wandb_env: Path) -> None:
    out = flyte.run(parent_new_children).outputs()[0]
    runs = _by_id(wandb_env)
    kids = [*out["siblings"], out["inside"], out["outside"]]
    assert len(set(kids)) == 4 and out["parent"] not in kids
    assert set(runs) == {out["parent"], *kids}
    for kid in kids:
        (r,) = runs[kid]
        assert r.group == out["parent"]
        assert kid.startswith(out["parent"].rsplit("-", 1)[0] + "-")  # {run_name}-{child_action}
    assert [runs[k][0].metric("child_new") for k in out["siblings"]] == [[1], [2]]


def test_run_context_block_applies_only_inside_it(wandb_env: Path) -> None:
    out = flyte.run(parent_new_children).outputs()[0]
    runs = _by_id(wandb_env)
    assert runs[out["inside"]][0].project == "block-project"
    assert runs[out["inside"]][0].tags == ["block"]
    assert runs[out["outside"]][0].project == "parent-project"
    assert runs[out["siblings"][0]][0].project == "parent-project"


def test_an_auto_grandchild_joins_its_new_parents_run_grouped_under_the_top_run(wandb_env: Path) -> None:
    out = flyte.run(parent_grandchild).outputs()[0]
    assert out["chain"][1] == out["chain"][0]  # the auto grandchild joins its new parent's run
    runs = _by_id(wandb_env)
    assert set(runs) == {out["parent"], out["chain"][0]}
    assert runs[out["chain"][0]][0].group == out["parent"]


def test_a_child_that_sets_nothing_inherits_project_entity_tags_and_config_from_the_parent_decorator(
    wandb_env: Path,
) -> None:
    out = flyte.run(parent_with_every_setting).outputs()[0]
    runs = _by_id(wandb_env)
    (parent,), (child,) = runs[out["parent"]], runs[out["new_child"]]
    assert (parent.project, parent.entity, parent.tags, parent.config["lr"]) == (
        "parent-project",
        "parent-entity",
        ["parent"],
        0.1,
    )
    assert (child.project, child.entity, child.tags, child.config["lr"]) == (
        parent.project,
        parent.entity,
        parent.tags,
        0.1,
    )


def test_children_do_not_inherit_the_parents_name_notes_job_type_or_layout(wandb_env: Path) -> None:
    out = flyte.run(parent_with_every_setting).outputs()[0]
    runs = _by_id(wandb_env)
    (parent,), (child,) = runs[out["parent"]], runs[out["new_child"]]
    assert (parent.name, parent.notes, parent.job_type) == ("parent-name", "parent-notes", "parent-job")
    assert (child.name, child.notes, child.job_type) == ("", "", "")
    # The parent's run_mode="new" stays the parent's: a child that sets no layout is auto, so it joins the
    # parent's run instead of opening one of its own.
    assert out["bare_child"] == out["parent"]
    assert set(runs) == {out["parent"], out["new_child"]}


def test_settings_given_in_the_run_context_reach_every_descendant(wandb_env: Path) -> None:
    ctx = wandb_config(project="ctx-project", entity="ctx-entity", config={"year": "2024"})
    out = flyte.with_runcontext(custom_context=ctx).run(parent_grandchild).outputs()[0]
    for run in offline_runs(wandb_env):
        assert (run.project, run.entity) == ("ctx-project", "ctx-entity")
        assert run.config["year"] == "2024"
    assert {r.run_id for r in offline_runs(wandb_env)} == {out["parent"], out["chain"][0]}


def test_shared_child_attaches_to_the_parent_run(wandb_env: Path) -> None:
    parent_id, child_id = flyte.run(parent_with_shared_child).outputs()[0]
    assert child_id == parent_id


def test_shared_child_without_a_parent_run_fails_clearly(wandb_env: Path) -> None:
    with pytest.raises(Exception, match="no parent run to share"):
        flyte.run(undecorated_parent).outputs()
    assert offline_runs(wandb_env) == []


def test_failing_children_do_not_fail_the_parent_run(wandb_env: Path) -> None:
    out = flyte.run(parent_survives_children).outputs()[0]
    assert len(out["raised"]) == 2 and all("broke" in e for e in out["raised"]), "each child raised to its parent"
    parent_id = out["parent"]
    runs = _by_id(wandb_env)
    (parent,) = runs.pop(parent_id)
    assert parent.exit_code == 0 and parent.metric("parent_done") == [1]
    ((new_child,),) = runs.values()  # the failing new-mode child's own run
    assert new_child.exit_code == 1 and new_child.state == "failed"
    assert new_child.group == parent_id


def test_trace_inside_a_task_sees_the_task_run(wandb_env: Path) -> None:
    parent_id, traced = flyte.run(parent_with_trace).outputs()[0]
    assert traced == parent_id


def test_child_link_points_at_the_run_the_child_logs_to() -> None:
    launching = {**wandb_config(entity="e", project="p"), "_wandb_run_id": "R-a0", "_wandb_parent_group": "G"}

    def render(task: object) -> list[str]:
        return [
            link.get_link(
                run_name="R",
                project="p",
                domain="d",
                context=launching,
                parent_action_name="a0",
                action_name="{{.actionName}}",
                pod_name="pod",
            )
            for link in task.links  # type: ignore[attr-defined]
        ]

    assert render(child_auto) == ["https://wandb.ai/e/p/runs/R-a0"]
    assert render(child_new) == ["https://wandb.ai/e/p/runs/R-{{.actionName}}"]


def test_auto_child_in_another_pod_joins_the_parent_run_as_a_labelled_non_primary_writer(wandb_env: Path) -> None:
    parent_ctx = {**wandb_config(project="p"), "_wandb_run_id": "R-parent"}
    status, child_id = run_as_pod(child_auto, run_name="R", action_name="child-action", context=parent_ctx, x=5)
    assert (status, child_id) == ("ok", "R-parent")
    (written,) = offline_runs(wandb_env)
    assert written.run_id == "R-parent"
    assert written.metric("child_auto_5") == [5]
    assert any(key.endswith("/l:child-action") for key in written.stats_keys)
    assert "wandb-writers" in str(written.path)
