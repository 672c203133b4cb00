"""A hyperparameter sweep as parallel Flyte tasks: ``python examples/sweep.py``.

A driver task decorated with ``@wandb_sweep`` opens the sweep and runs a bayes search over a toy objective, two
trials at a time with hyperband early termination, then prints every trial and the best one.

- Offline (without ``WANDB_API_KEY``, or with ``WANDB_MODE=offline``): no W&B server is called. The local engine
  (Optuna TPE; needs the ``sweeps`` extra) proposes the trials; each trial is an offline W&B run (under ``./wandb``)
  whose config holds its parameters and the sweep id, grouped under the sweep: ``wandb sync`` uploads them later.
  The state is saved to ``sweep_state.json``: run the command again and it resumes (nothing is run twice; raise
  ``--count`` to go further). ``--method grid`` or ``--method random`` need no extra.
- Online (``WANDB_API_KEY=... python examples/sweep.py --entity <you>``): the sweep is created on the W&B server,
  which proposes the trials and stops the weak ones; its page is printed. A server that does not answer within five
  seconds makes the sweep offline, as above.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

import _common
import flyte

from flyteplugins_wandb import (
    get_wandb_run,
    run_sweep,
    sweep_should_stop,
    wandb_config,
    wandb_init,
    wandb_sweep,
    wandb_sweep_config,
)

env = flyte.TaskEnvironment(name="sweep")


@wandb_init
@env.task
async def train(lr: float, layers: int) -> list[float]:
    """A stand-in for training: a loss curve that is best near lr=0.01 with 3 layers, reported step by step."""
    import math

    run = get_wandb_run()
    losses: list[float] = []
    for step in range(1, 21):
        loss = (math.log10(lr) + 2) ** 2 + 0.1 * (layers - 3) ** 2 + 1.0 / step
        if run is not None:
            run.log({"val/loss": loss, "step": step})
        losses.append(loss)
        if sweep_should_stop(step, loss):
            break
    return losses


# Typed outputs: Flyte passes dataclasses of plain types as structured data. A task returning `dict[str, Any]`
# would make Flyte fall back to a pickle (and warn "Unsupported Type typing.Any").
@dataclass
class TrialOutcome:
    number: int
    status: str
    steps: int
    lr: float
    layers: int
    loss: float | None

    @property
    def params(self) -> dict[str, Any]:
        return {"lr": self.lr, "layers": self.layers}


@dataclass
class SweepOutcome:
    sweep_id: str
    where: str
    trials: list[TrialOutcome]
    best: TrialOutcome | None
    """None when no trial succeeded."""


@wandb_sweep  # the sweep configuration comes from the run context
@env.task
async def sweep(parallel: int, count: int, state_path: str) -> SweepOutcome:
    result = await run_sweep(train, parallel=parallel, count=count, state_path=state_path)
    outcomes = {
        t.number: TrialOutcome(t.number, t.status, len(t.history), t.params["lr"], t.params["layers"], t.value)
        for t in result.trials
    }
    best = None if result.best is None else outcomes[result.best.number]
    return SweepOutcome(result.sweep_id, result.url or "offline", list(outcomes.values()), best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("grid", "random", "bayes"), default="bayes")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--state", default="sweep_state.json")
    parser.add_argument("--entity", default=None, help="W&B entity (online)")
    args = parser.parse_args()
    _common.choose_wandb_mode()
    lr: dict[str, Any] = {"values": [0.001, 0.01, 0.1]}
    if args.method != "grid":  # grid needs finite choices
        lr = {"min": 1e-4, "max": 1.0, "distribution": "log_uniform_values"}
    config = wandb_sweep_config(
        method=args.method,
        metric={"name": "val/loss", "goal": "minimize"},
        parameters={"lr": lr, "layers": {"values": [1, 2, 3, 4]}},
        early_terminate={"type": "hyperband", "min_iter": 3, "eta": 3},
    )
    flyte.init()
    ctx = {**wandb_config(project=_common.PROJECT, entity=args.entity or os.environ.get("WANDB_ENTITY")), **config}
    out = flyte.with_runcontext(custom_context=ctx).run(sweep, args.parallel, args.count, args.state).outputs()[0]
    print(f"sweep {out.sweep_id} ({out.where}; state: {args.state}, W&B mode: {os.environ['WANDB_MODE']})")
    for t in out.trials:
        print(f"  trial {t.number:2d} {t.status:9s} steps={t.steps:2d} loss={t.loss} {t.params}")
    best = out.best
    print(f"best: {'none (every trial failed)' if best is None else {'params': best.params, 'loss': best.loss}}")


if __name__ == "__main__":
    main()
