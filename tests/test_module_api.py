"""wandb's module API (``wandb.run``, ``wandb.log``, ``wandb.config``, ``wandb.summary``...) in the bodies of real
local Flyte tasks, W&B offline, read back from the files W&B wrote: bound to the task's run in a plain task, in a
trace, in nested tasks (the child's run while it runs, the parent's again after), beside concurrent siblings, and
unbound after the task.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path
from typing import Any

import flyte
import pytest
import wandb
from readback import offline_runs

from flyteplugins_wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="test_module_api")
ROWS = 5


def _log_rows(tag: str) -> None:
    for i in range(ROWS):
        wandb.log({f"{tag}_loss": 1.0 / (i + 1)})


@wandb_init(project="modapi", config={"given": 1})
@env.task
def plain_body() -> dict[str, Any]:
    bound = wandb.run is get_wandb_run() and wandb.run is not None
    epochs = wandb.config.given
    wandb.config.update({"epochs": 3})
    wandb.define_metric("plain_loss", summary="min")
    _log_rows("plain")
    wandb.summary["best"] = 0.2
    return {"bound": bound, "given": epochs, "run_id": get_wandb_run().id}  # type: ignore[union-attr]


def test_a_plain_task_logs_configures_and_summarises_through_the_module_api(wandb_env: Path) -> None:
    seen = flyte.run(plain_body).outputs()[0]

    assert seen["bound"] and seen["given"] == 1
    (written,) = offline_runs(wandb_env)
    assert written.run_id == seen["run_id"]
    assert written.metric("plain_loss") == [1.0 / (i + 1) for i in range(ROWS)]
    assert (written.config["epochs"], written.config["given"]) == (3, 1)
    assert written.summary["best"] == 0.2
    assert written.state == "finished"


def test_after_the_task_nothing_of_its_run_stays_bound() -> None:
    from wandb.sdk.lib import module

    # Every attribute a binding changes is given back as it was before the task. (Compared with the state before,
    # not with a pristine wandb: an earlier plain wandb.init/finish in this process leaves wandb.alert bound to its
    # finished run, which wandb's own unset_globals does not undo.)
    names = [*inspect.signature(module.set_global).parameters, "init"]
    before = {name: getattr(wandb, name) for name in names}
    flyte.run(plain_body)

    assert wandb.run is None
    assert [name for name in names if getattr(wandb, name) != before[name]] == []
    for use in (lambda: wandb.log({"late": 1}), lambda: wandb.config.epochs):
        with pytest.raises(wandb.Error, match=r"wandb.init\(\)"):
            use()


# --- traces and nested tasks --------------------------------------------------------------------------------------


@flyte.trace
async def traced_step(i: int) -> str:
    wandb.log({"trace_step": i})
    return wandb.run.id if wandb.run is not None else ""


@wandb_init(project="modapi")
@env.task
async def child_in_parents_run() -> str:
    wandb.log({"joined": 1})
    return wandb.run.id if wandb.run is not None else ""


@wandb_init(project="modapi")
@env.task
async def parent_of_children() -> dict[str, str]:
    own = get_wandb_run().id  # type: ignore[union-attr]
    traced = await traced_step(7)
    joined = await child_in_parents_run()
    after = wandb.run.id if wandb.run is not None else ""
    _log_rows("parent")
    return {"own": own, "traced": traced, "joined": joined, "after": after}


def test_a_trace_and_a_child_joining_its_parents_run_log_into_it_through_the_module_api(wandb_env: Path) -> None:
    seen = flyte.run(parent_of_children).outputs()[0]

    assert seen["traced"] == seen["own"], "a trace logs into its task's run"
    assert seen["joined"] == seen["own"], "an auto child in the same process logs into its parent's run"
    assert seen["after"] == seen["own"], "after the child, the parent's run is still bound"
    runs = {r.run_id: r for r in offline_runs(wandb_env)}
    assert list(runs) == [seen["own"]], "no other run"
    parent = runs[seen["own"]]
    assert parent.metric("trace_step") == [7]
    assert parent.metric("joined") == [1]
    assert parent.metric("parent_loss") == [1.0 / (i + 1) for i in range(ROWS)]


@wandb_init(project="modapi", run_mode="new")
@env.task
async def new_child() -> str:
    _log_rows("child")
    return wandb.run.id if wandb.run is not None else ""


@wandb_init(project="modapi")
@env.task
async def parent_of_new_child() -> dict[str, str]:
    own = get_wandb_run().id  # type: ignore[union-attr]
    child = await new_child()
    after = wandb.run.id if wandb.run is not None else ""
    _log_rows("parent")
    return {"own": own, "child": child, "after": after}


def test_a_child_with_its_own_run_binds_it_and_gives_the_parents_run_back(wandb_env: Path) -> None:
    seen = flyte.run(parent_of_new_child).outputs()[0]

    assert seen["child"] and seen["child"] != seen["own"]
    assert seen["after"] == seen["own"]
    runs = {r.run_id: r for r in offline_runs(wandb_env)}
    assert sorted(runs) == sorted([seen["own"], seen["child"]])
    assert runs[seen["child"]].metric("child_loss") == [1.0 / (i + 1) for i in range(ROWS)]
    assert runs[seen["own"]].metric("parent_loss") == [1.0 / (i + 1) for i in range(ROWS)]
    assert runs[seen["own"]].metric("child_loss") == [], "the child's rows are not in the parent's run"
    assert wandb.run is None


# --- concurrent siblings ------------------------------------------------------------------------------------------

_started: list[str] = []


async def _until_both_started(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_started) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


@wandb_init(project="modapi", run_mode="new")
@env.task
async def sibling(name: str) -> dict[str, str]:
    _started.append(name)
    await _until_both_started()
    seen = {"own": get_wandb_run().id, "module": wandb.run.id if wandb.run else ""}  # type: ignore[union-attr]
    _started.append(f"{name}-saw")
    while sum(s.endswith("-saw") for s in _started) < 2:  # both look before either ends
        await asyncio.sleep(0.02)
    return seen


@wandb_init(project="modapi")
@env.task
async def parent_of_siblings() -> list[dict[str, str]]:
    _started.clear()
    return list(await asyncio.gather(sibling("a"), sibling("b")))


def test_concurrent_siblings_each_get_their_own_run_and_the_module_api_points_at_the_latest(
    wandb_env: Path,
) -> None:
    first, second = flyte.run(parent_of_siblings).outputs()[0]

    assert first["own"] != second["own"], "get_wandb_run() is exact per task"
    latest = second["own"] if _started.index("b") > _started.index("a") else first["own"]
    assert first["module"] == second["module"] == latest, "wandb.run: the most recently started running task's"
    assert wandb.run is None
