"""A body that calls ``wandb.init(...)``, ``wandb.finish()`` or ``run.finish()`` itself, as code written for W&B does:
real local Flyte tasks, W&B offline, read back from the files W&B wrote."""

from __future__ import annotations

import logging
from pathlib import Path

import flyte
import pytest
import wandb
from readback import offline_runs

from flyteplugins_wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="test_body_init_finish")


@wandb_init(project="inits", config={"from_decorator": 1})
@env.task
def calls_wandb_init() -> dict[str, object]:
    task_run = get_wandb_run()
    run = wandb.init(project="elsewhere", tags=["mine"], config={"epochs": 4})
    again = wandb.init()
    run.log({"loss": 0.5})
    return {"same": run is task_run and again is task_run, "epochs": wandb.config.epochs, "id": run.id}


def test_wandb_init_in_the_body_returns_the_tasks_run_and_warns_once_naming_what_it_ignored(
    wandb_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flyteplugins_wandb"):
        seen = flyte.run(calls_wandb_init).outputs()[0]

    assert seen["same"], "wandb.init() gave the task's run"
    assert seen["epochs"] == 4, "the config given to wandb.init is in the run"
    warnings = [r.getMessage() for r in caplog.records if "wandb.init() inside a @wandb_init task" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "ignored: project, tags" in warnings[0]
    (written,) = offline_runs(wandb_env)
    assert written.run_id == seen["id"]
    assert (written.project, written.tags) == ("inits", []), "the task's settings, not those wandb.init was given"
    assert (written.config["epochs"], written.config["from_decorator"]) == (4, 1)
    assert written.metric("loss") == [0.5]
    assert written.state == "finished"


@wandb_init(project="inits")
@env.task
def finishes_with_module_finish() -> str:
    wandb.log({"loss": 0.25})
    wandb.finish()
    return get_wandb_run().id  # type: ignore[union-attr]


@wandb_init(project="inits")
@env.task
def finishes_its_run_as_failed() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": 0.75})
    run.finish(exit_code=3)
    return run.id


@pytest.mark.parametrize(
    ("task", "loss", "state", "exit_code"),
    [
        pytest.param(finishes_with_module_finish, 0.25, "finished", 0, id="wandb.finish()"),
        pytest.param(finishes_its_run_as_failed, 0.75, "failed", 3, id="run.finish(exit_code=3)"),
    ],
)
def test_a_run_the_body_finishes_ends_once_in_the_state_the_body_gave(
    task: object, loss: float, state: str, exit_code: int, wandb_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flyteplugins_wandb"):
        run_id = flyte.run(task).outputs()[0]

    (written,) = offline_runs(wandb_env)
    assert written.run_id == run_id
    assert written.metric("loss") == [loss]
    assert (written.state, written.exit_code) == (state, exit_code)
    problems = [m for m in (r.getMessage() for r in caplog.records) if "finishing run" in m or "failed" in m]
    assert not problems, "the plugin's own finish and its saving of the run files did not fail"
    assert wandb.run is None
