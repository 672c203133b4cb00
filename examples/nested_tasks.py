"""Nested tasks: a task that trains calls a task that evaluates, and both log into one W&B run.

    python examples/nested_tasks.py

``train_and_evaluate`` (a plain, not distributed task) opens a run; the ``evaluate`` task it calls is decorated
too, runs in the same process (as it does with ``flyte.run`` on your machine) and, with the default
``run_mode="auto"``, logs into its parent's run instead of opening one of its own. Result: one run, id
``{run_name}-{action_name}`` of the parent, holding both ``train/loss`` and ``eval/loss``. The W&B settings given
with ``wandb_config(...)`` reach every task of the run.
"""

from __future__ import annotations

import _common
import flyte

from flyteplugins_wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="nested_tasks")


@wandb_init
@env.task
def evaluate(weights: list[float], bias: float) -> float:
    loss = _common.held_out_loss(weights, bias)
    run = get_wandb_run()  # the parent's run
    if run:
        run.log({"eval/loss": loss})
    return loss


@wandb_init
@env.task
def train_and_evaluate(steps: int = 40) -> float:
    run = get_wandb_run()
    model = _common.make_model()
    for step, loss in _common.train(model, steps):
        if run:
            run.log({"train/loss": loss, "train/step": step})
    return evaluate(model.weight.detach().flatten().tolist(), float(model.bias.item()))


if __name__ == "__main__":
    _common.choose_wandb_mode()
    flyte.init()
    with _common.recorded_runs() as runs:
        run = flyte.with_runcontext(custom_context=_common.run_context()).run(train_and_evaluate)
        run.wait()
    print(f"held-out loss: {run.outputs()[0]:.4f}")
    _common.print_runs(runs)
