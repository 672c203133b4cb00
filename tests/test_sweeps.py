"""Sweeps: the validated config and its codec, and offline sweeps run as real local Flyte tasks, with the trials'
offline W&B runs read back from what wandb wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import flyte
import pytest
from readback import OfflineRun, offline_runs

from flyteplugins_wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins_wandb.planning._config import decode_config
from flyteplugins_wandb.sweeps._config import SweepConfig, decode_sweep_config, wandb_sweep_config
from flyteplugins_wandb.sweeps._engine import LocalSweep, brackets, stop_thresholds
from flyteplugins_wandb.sweeps._run import get_wandb_sweep_id, run_sweep, sweep_should_stop

env = flyte.TaskEnvironment(name="sweeps")

LOSS = {"name": "loss", "goal": "minimize"}
STEPS = 10


def quadratic(x: float, b: int) -> float:
    return (x - 1.0) ** 2 + b


@wandb_init
@env.task
async def objective(x: float, b: int) -> float:
    run = get_wandb_run()
    assert run is not None
    loss = quadratic(x, b)
    run.log({"loss": loss, "seen_sweep_id": get_wandb_sweep_id()})
    return loss


@wandb_init
@env.task
async def curve(x: float) -> list[float]:
    """A training curve that improves with the steps; stops when the sweep's bracket says so."""
    run = get_wandb_run()
    assert run is not None
    values: list[float] = []
    for step in range(1, STEPS + 1):
        loss = (x - 1.0) ** 2 + 10.0 / step
        run.log({"loss": loss})
        values.append(loss)
        if sweep_should_stop(step, loss):
            break
    return values


def _summary(result: Any) -> dict[str, Any]:
    return {
        "sweep_id": result.sweep_id,
        "best": None if result.best is None else {"params": result.best.params, "value": result.best.value},
        "trials": [
            {"number": t.number, "params": t.params, "status": t.status, "value": t.value, "steps": len(t.history)}
            for t in result.trials
        ],
    }


@env.task
async def driver(config: dict[str, str], parallel: int, count: int, seed: int = 0) -> dict[str, Any]:
    result = await run_sweep(objective, decode_sweep_config(config), parallel=parallel, count=count, seed=seed)
    return _summary(result)


@env.task
async def driver_from_context(parallel: int, count: int) -> dict[str, Any]:
    return _summary(await run_sweep(objective, parallel=parallel, count=count))


@env.task
async def curve_driver(config: dict[str, str], count: int) -> dict[str, Any]:
    return _summary(await run_sweep(curve, decode_sweep_config(config), parallel=2, count=count, seed=3))


@env.task
async def resumable_driver(config: dict[str, str], count: int, state_path: str, crash: bool) -> dict[str, Any]:
    result = await run_sweep(objective, decode_sweep_config(config), parallel=2, count=count, state_path=state_path)
    if crash:
        raise RuntimeError("driver crashed after its rounds")
    return _summary(result)


@pytest.fixture(autouse=True)
def _flyte_local() -> None:
    flyte.init()


def _trial_runs(wandb_dir: Path) -> dict[int, OfflineRun]:
    runs = offline_runs(wandb_dir)
    numbers = [r.config["sweep_trial"] for r in runs]
    assert len(numbers) == len(set(numbers)), f"a trial ran twice: {sorted(numbers)}"
    return {r.config["sweep_trial"]: r for r in runs}


GRID = wandb_sweep_config(
    method="grid", metric=LOSS, parameters={"x": {"values": [-1.0, 0.0, 1.0, 2.0]}, "b": {"values": [0, 1]}}
)


# --- configuration ------------------------------------------------------------------------------------------


GOOD = [
    pytest.param(dict(method="grid", parameters={"x": {"values": [1, 2]}, "y": {"value": "a"}}), id="grid-values"),
    pytest.param(dict(method="grid", parameters={"n": {"min": 1, "max": 4}}), id="grid-int-range"),
    pytest.param(dict(method="random", parameters={"lr": {"min": 1e-5, "max": 0.1}}), id="random-no-metric"),
    pytest.param(
        dict(method="random", parameters={"lr": {"min": 1e-5, "max": 0.1, "distribution": "log_uniform_values"}}),
        id="random-log",
    ),
    pytest.param(dict(method="random", parameters={"d": {"distribution": "normal", "mu": 0, "sigma": 2}}), id="normal"),
    pytest.param(
        dict(
            method="bayes",
            metric={"name": "validation/accuracy", "goal": "maximize"},
            parameters={"lr": {"min": 1e-5, "max": 1e-1}, "batch_size": {"values": [16, 32, 64, 128]}},
            early_terminate={"type": "hyperband", "min_iter": 5, "eta": 3},
            name="n",
            project="p",
            entity="e",
            run_cap=20,
        ),
        id="bayes-full",
    ),
]


@pytest.mark.parametrize("kwargs", GOOD)
def test_a_good_config_round_trips_through_the_run_context_exactly(kwargs: dict[str, Any]) -> None:
    ctx = wandb_sweep_config(**kwargs)
    assert all(isinstance(v, str) for v in ctx.values())
    assert decode_sweep_config(dict(ctx)) == ctx.config
    assert ctx.config.to_wandb() == {k: v for k, v in kwargs.items() if v is not None}


BAD = [
    pytest.param(dict(method="grd"), "method must be one of ('grid', 'random', 'bayes'), got 'grd'", id="method"),
    pytest.param(dict(method="bayes", metric=None), "metric is required for method 'bayes'", id="bayes-no-metric"),
    pytest.param(dict(metric={"name": "loss", "goal": "min"}), "metric.goal must be one of", id="goal"),
    pytest.param(dict(metric={"goal": "minimize"}), "metric.name must be a non-empty str, got None", id="metric-name"),
    pytest.param(dict(parameters={"x": {"min": 0.0, "max": 1.0}}), "parameters ['x'] are continuous", id="grid-cont"),
    pytest.param(dict(parameters={}), "parameters must name at least one parameter", id="no-params"),
    pytest.param(dict(parameters={"x": {"values": []}}), "parameters.x.values must be a non-empty list", id="empty"),
    pytest.param(dict(parameters={"x": {"valuez": [1]}}), "parameters.x has unknown keys ['valuez']", id="key"),
    pytest.param(
        dict(method="random", parameters={"x": {"min": 0.0, "max": 1.0, "distribution": "logunif"}}),
        "parameters.x.distribution must be one of ('constant', 'categorical', 'int_uniform', 'uniform'",
        id="distribution",
    ),
    pytest.param(
        dict(method="random", parameters={"x": {"min": 1.0, "max": 0.5}}),
        "parameters.x.min must be below parameters.x.max, got min=1.0 max=0.5",
        id="min-max",
    ),
    pytest.param(
        dict(method="random", parameters={"x": {"min": 0.0, "max": 1.0, "distribution": "log_uniform_values"}}),
        "parameters.x.min must be > 0 for log_uniform_values",
        id="log-zero",
    ),
    pytest.param(
        dict(method="random", parameters={"x": {"max": 1.0, "distribution": "uniform"}}),
        "parameters.x with distribution 'uniform' needs min and max",
        id="no-min",
    ),
    pytest.param(
        dict(metric=None, early_terminate={"type": "hyperband", "min_iter": 2}),
        "metric is required for early_terminate",
        id="et-no-metric",
    ),
    pytest.param(
        dict(early_terminate={"type": "median", "min_iter": 2}),
        "early_terminate.type must be one of ('hyperband',), got 'median'",
        id="et-type",
    ),
    pytest.param(dict(early_terminate={"type": "hyperband"}), "exactly one of min_iter or max_iter", id="et-iter"),
    pytest.param(
        dict(early_terminate={"type": "hyperband", "min_iter": 2, "eta": 1}),
        "early_terminate.eta must be > 1, got 1",
        id="eta",
    ),
    pytest.param(dict(run_cap=0), "run_cap must be a positive int, got 0", id="run-cap"),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_a_bad_config_is_refused_naming_the_field_and_the_value(changes: dict[str, Any], message: str) -> None:
    kwargs: dict[str, Any] = dict(method="grid", metric=LOSS, parameters={"x": {"values": [1, 2]}}) | changes
    with pytest.raises(ValueError) as info:
        wandb_sweep_config(**kwargs).config.check_complete()  # a missing metric is refused when the sweep is made
    assert message in str(info.value)


def test_the_sweep_config_combines_with_wandb_config_and_each_decodes_its_own_keys() -> None:
    combined = {**wandb_config(project="p", config={"year": "2024"}), **GRID}
    assert decode_config(combined).project == "p"
    assert decode_config(combined).config == {"year": "2024"}
    assert decode_sweep_config(combined) == GRID.config
    assert decode_sweep_config(dict(wandb_config(project="p"))) is None


def test_a_malformed_context_value_names_its_key() -> None:
    with pytest.raises(ValueError, match="'wandb_sweep_parameters' must hold JSON"):
        decode_sweep_config({**GRID, "wandb_sweep_parameters": "{not json"})


def test_the_config_is_a_copy_that_the_callers_dicts_cannot_change() -> None:
    params: dict[str, Any] = {"x": {"values": [1, 2]}}
    config = SweepConfig(method="grid", parameters=params)
    params["x"]["values"].append(3)
    assert config.parameters == {"x": {"values": [1, 2]}}


def test_hyperband_brackets_follow_min_iter_or_max_iter_and_s() -> None:
    assert brackets({"type": "hyperband", "min_iter": 2, "eta": 2})[:4] == [2, 4, 8, 16]
    assert brackets({"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3}) == [3, 9]


# --- offline sweeps as real Flyte runs ----------------------------------------------------------------------


def test_grid_runs_every_combination_in_order_each_as_a_tracked_trial(wandb_env: Path) -> None:
    out = flyte.run(driver, config=dict(GRID), parallel=3, count=100).outputs()[0]
    combos = [{"x": x, "b": b} for x in (-1.0, 0.0, 1.0, 2.0) for b in (0, 1)]
    assert [t["params"] for t in out["trials"]] == combos
    assert out["best"] == {"params": {"x": 1.0, "b": 0}, "value": 0.0}
    runs = _trial_runs(wandb_env)
    assert sorted(runs) == list(range(8))
    for number, run in runs.items():
        assert run.group == out["sweep_id"]
        assert run.config["sweep_id"] == out["sweep_id"]
        assert {k: run.config[k] for k in ("x", "b")} == combos[number]
        assert run.summary["loss"] == quadratic(**combos[number])
        assert run.summary["seen_sweep_id"] == out["sweep_id"]


def test_the_sweep_config_and_wandb_settings_can_come_from_the_run_context(wandb_env: Path) -> None:
    ctx = {**wandb_config(project="sweep-project", config={"year": "2024"}), **GRID}
    out = flyte.with_runcontext(custom_context=ctx).run(driver_from_context, parallel=4, count=3).outputs()[0]
    assert len(out["trials"]) == 3
    for run in _trial_runs(wandb_env).values():
        assert run.project == "sweep-project"
        assert run.config["year"] == "2024"
        assert run.config["sweep_id"] == out["sweep_id"]


def test_random_is_seeded_within_bounds_and_returns_the_best_trial(wandb_env: Path) -> None:
    config = wandb_sweep_config(
        method="random", metric=LOSS, parameters={"x": {"min": -3.0, "max": 3.0}, "b": {"values": [0, 1]}}
    )
    out = flyte.run(driver, config=dict(config), parallel=2, count=5, seed=7).outputs()[0]
    trials = out["trials"]
    assert len(trials) == 5 and all(t["status"] == "complete" for t in trials)
    assert all(-3.0 <= t["params"]["x"] <= 3.0 and t["params"]["b"] in (0, 1) for t in trials)
    assert len({t["params"]["x"] for t in trials}) == 5
    assert out["best"]["value"] == min(t["value"] for t in trials)
    # The same seed proposes the same points: the proposal is a function of (seed, sweep id, trial number).
    again = LocalSweep(config.config, sweep_id=out["sweep_id"], seed=7).propose(5)
    assert [t.params for t in again] == [t["params"] for t in trials]
    runs = _trial_runs(wandb_env)
    for t in trials:
        assert runs[t["number"]].config["x"] == t["params"]["x"]
        assert runs[t["number"]].summary["loss"] == t["value"]


def test_bayes_with_tpe_finds_a_plausible_minimum(wandb_env: Path) -> None:
    pytest.importorskip("optuna")
    config = wandb_sweep_config(
        method="bayes", metric=LOSS, parameters={"x": {"min": -3.0, "max": 3.0}, "b": {"value": 0}}
    )
    out = flyte.run(driver, config=dict(config), parallel=2, count=10, seed=1).outputs()[0]
    values = [t["value"] for t in out["trials"]]
    assert len(values) == 10
    assert out["best"]["value"] == min(values)
    # Plausibility with a fixed seed, not a claim that TPE beats random search in 10 trials (it often does not).
    assert out["best"]["value"] < 1.0
    assert abs(out["best"]["params"]["x"] - 1.0) < 1.0
    assert len({t["params"]["x"] for t in out["trials"]}) == 10
    runs = _trial_runs(wandb_env)
    assert len(runs) == 10
    assert all(r.config["b"] == 0 and r.config["sweep_id"] == out["sweep_id"] for r in runs.values())


def test_early_termination_stops_bad_trials_at_a_bracket_and_cuts_their_steps(wandb_env: Path) -> None:
    config = wandb_sweep_config(
        method="random",
        metric=LOSS,
        parameters={"x": {"min": -3.0, "max": 3.0}},
        early_terminate={"type": "hyperband", "min_iter": 2, "eta": 2},
    )
    out = flyte.run(curve_driver, config=dict(config), count=8).outputs()[0]
    trials = out["trials"]
    stopped = [t for t in trials if t["status"] == "stopped"]
    assert stopped, trials
    assert all(t["steps"] in brackets(config.config.early_terminate) and t["steps"] < STEPS for t in stopped)
    assert sum(t["steps"] for t in trials) < len(trials) * STEPS
    # The first round has no earlier trials to compare with, so it always runs to the end.
    assert [t["steps"] for t in trials[:2]] == [STEPS, STEPS]
    runs = _trial_runs(wandb_env)
    for t in trials:
        assert len(runs[t["number"]].metric("loss")) == t["steps"]
    assert out["best"]["value"] == min(t["value"] for t in trials if t["status"] == "complete")


def test_stop_thresholds_keep_the_best_one_over_eta_of_earlier_values() -> None:
    config = SweepConfig(
        method="random",
        metric=LOSS,
        parameters={"x": {"min": 0.0, "max": 1.0}},
        early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2},
    )
    sweep = LocalSweep(config, sweep_id="s")
    for value in (1.0, 3.0):
        trial = sweep.propose(1)[0]
        sweep.record(trial.number, [value], {})
    assert stop_thresholds(config.early_terminate, "minimize", sweep.finished) == {1: 2.0}
    assert sweep.thresholds() == {1: 2.0}
    trial = sweep.propose(1)[0]
    assert sweep.record(trial.number, [2.5], sweep.thresholds()).status == "stopped"


def test_a_restarted_driver_resumes_from_its_state_and_runs_no_trial_twice(wandb_env: Path, tmp_path: Path) -> None:
    config = wandb_sweep_config(
        method="random", metric=LOSS, parameters={"x": {"min": -3.0, "max": 3.0}, "b": {"value": 1}}
    )
    state = tmp_path / "state" / "sweep.json"
    with pytest.raises(Exception, match="driver crashed"):
        flyte.run(resumable_driver, config=dict(config), count=2, state_path=str(state), crash=True)
    saved = json.loads(state.read_text())
    assert [t["status"] for t in saved["trials"]] == ["complete", "complete"]
    out = flyte.run(resumable_driver, config=dict(config), count=5, state_path=str(state), crash=False).outputs()[0]
    assert [t["number"] for t in out["trials"]] == [0, 1, 2, 3, 4]
    assert out["sweep_id"] == saved["sweep_id"]  # the first driver's id, though this is another Flyte run
    assert [t["params"] for t in out["trials"][:2]] == [t["params"] for t in saved["trials"]]
    runs = _trial_runs(wandb_env)  # fails if a trial number has two runs
    assert sorted(runs) == [0, 1, 2, 3, 4]
    assert {r.config["sweep_id"] for r in runs.values()} == {saved["sweep_id"]}


def test_a_state_file_of_another_sweep_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    LocalSweep(GRID.config, sweep_id="a").save(path)
    other = SweepConfig(method="grid", parameters={"y": {"values": [1]}})
    with pytest.raises(ValueError, match="belongs to another sweep configuration"):
        LocalSweep.open(path, other, sweep_id="b")
    assert LocalSweep.open(path, GRID.config, sweep_id="b").sweep_id == "a"
