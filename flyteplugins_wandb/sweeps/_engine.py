"""An offline sweep engine: proposes trials from a :class:`SweepConfig`, takes their results, applies hyperband-style
early termination and saves its state as JSON. No W&B server, no Flyte: ``run_sweep`` drives it;
its only I/O is the state file, read by :meth:`LocalSweep.open` and written by :meth:`LocalSweep.save`.

Methods:

- ``grid``: every combination of the (finite) parameters, in the order the parameters and their values are given.
- ``random``: each trial's parameters drawn from a generator seeded by ``(seed, sweep_id, trial number)``, so a
  resumed sweep proposes exactly what an uninterrupted one would.
- ``bayes``: Optuna's TPE sampler (Tree-structured Parzen Estimator, not W&B's Gaussian-process bayes), rebuilt
  each round from the recorded trials (stopped trials count as pruned, failed as failed) and seeded by
  ``seed`` plus the round's first trial number; it samples at random for its first ``BAYES_STARTUP_TRIALS``
  trials. Needs the ``sweeps`` extra (``optuna``). Categorical prior ``probabilities`` are not used by TPE.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final, Literal

from ._config import SweepConfig, parameter_distribution
from ._trials import Trial, best_trial, store_outcome

__all__ = [
    "BAYES_STARTUP_TRIALS",
    "LocalSweep",
    "brackets",
    "should_stop",
    "stop_thresholds",
]

BAYES_STARTUP_TRIALS: Final = 4
_STATE_VERSION: Final = 1
_MAX_BRACKETS: Final = 64
# Normal-family parameters are sampled through their quantile; the bounds keep inv_cdf finite.
_QUANTILE_EPS: Final = 1e-6


def brackets(early_terminate: Mapping[str, Any] | None) -> list[int]:
    """The steps at which hyperband compares trials: ``min_iter * eta**k`` for k = 0, 1, ..., or with
    ``max_iter`` and ``s``: ``max_iter / eta**k`` for k = s .. 1 (as W&B defines them)."""
    if not early_terminate:
        return []
    eta = float(early_terminate.get("eta", 3))
    if "min_iter" in early_terminate:
        steps = [round(early_terminate["min_iter"] * eta**k) for k in range(_MAX_BRACKETS)]
        steps = [s for s in steps if s <= 10**9]
    else:
        steps = [round(early_terminate["max_iter"] / eta**k) for k in range(int(early_terminate["s"]), 0, -1)]
    return sorted({s for s in steps if s >= 1})


def _quantile(values: Sequence[float], q: float) -> float:
    # Linear interpolation between order statistics (numpy's default), without needing numpy.
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def stop_thresholds(
    early_terminate: Mapping[str, Any] | None, goal: str, finished: Sequence[Trial]
) -> dict[int, float]:
    """Per bracket step, the value a running trial must reach to go on: the 1/eta quantile (from the good side)
    of the values that earlier trials reported at that step. A bracket judges nobody until at least ``ceil(eta)``
    earlier trials reached it, so one lucky first trial does not stop the rest."""
    if not early_terminate:
        return {}
    eta = float(early_terminate.get("eta", 3))
    out: dict[int, float] = {}
    for step in brackets(early_terminate):
        seen = [t.history[step - 1] for t in finished if len(t.history) >= step]
        if len(seen) >= math.ceil(eta):
            out[step] = _quantile(seen, 1 / eta if goal == "minimize" else 1 - 1 / eta)
    return out


def should_stop(thresholds: Mapping[int, float], goal: str, step: int, value: float) -> bool:
    """Whether a trial that reports ``value`` at ``step`` falls short of the bracket at that step."""
    bar = thresholds.get(step)
    if bar is None:
        return False
    return value > bar if goal == "minimize" else value < bar


def _quantize(x: float, q: float) -> float | int:
    out = round(x / q) * q
    return int(out) if float(q).is_integer() else out


def _to_value(spec: Mapping[str, Any], raw: Any) -> Any:
    """The parameter value for a point in the sampler's space (shared by random and bayes)."""
    dist = parameter_distribution(spec)
    q = spec.get("q", 1)
    if dist == "categorical":
        return spec["values"][raw]
    if dist in ("int_uniform", "uniform", "log_uniform_values", "inv_log_uniform_values"):
        return raw
    if dist == "q_uniform" or dist == "q_log_uniform_values":
        return _quantize(raw, q)
    if dist == "log_uniform":
        return math.exp(raw)
    normal = statistics.NormalDist(spec.get("mu", 0.0), spec.get("sigma", 1.0)).inv_cdf(raw)
    if dist == "normal":
        return normal
    if dist == "q_normal":
        return _quantize(normal, q)
    if dist == "log_normal":
        return math.exp(normal)
    return _quantize(math.exp(normal), q)  # q_log_normal


def _sample_raw(spec: Mapping[str, Any], rng: random.Random) -> Any:
    dist = parameter_distribution(spec)
    if dist == "categorical":
        n = len(spec["values"])
        return rng.choices(range(n), weights=spec.get("probabilities"))[0]
    if dist == "int_uniform":
        return rng.randint(spec["min"], spec["max"])
    if dist in ("uniform", "q_uniform", "log_uniform"):
        return rng.uniform(spec["min"], spec["max"])
    if dist in ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values"):
        # ln(1/X) uniform is the same law as ln(X) uniform, so inv_log_uniform_values samples like log_uniform_values.
        return math.exp(rng.uniform(math.log(spec["min"]), math.log(spec["max"])))
    return rng.uniform(_QUANTILE_EPS, 1 - _QUANTILE_EPS)  # the normal family, through its quantile


def _optuna_distribution(spec: Mapping[str, Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dist = parameter_distribution(spec)
    if dist == "categorical":
        # Indices, not the values: values may be any JSON (lists, dicts) that Optuna cannot hold as choices.
        return CategoricalDistribution(list(range(len(spec["values"]))))
    if dist == "int_uniform":
        return IntDistribution(spec["min"], spec["max"])
    if dist in ("uniform", "q_uniform", "log_uniform"):
        return FloatDistribution(spec["min"], spec["max"])
    if dist in ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values"):
        return FloatDistribution(spec["min"], spec["max"], log=True)
    return FloatDistribution(_QUANTILE_EPS, 1 - _QUANTILE_EPS)


class LocalSweep:
    """The state of one offline sweep: its trials, proposals and results. ``save()`` writes it as JSON (atomically)
    and ``open()`` reads it back, so a driver that restarts goes on where the last one stopped."""

    def __init__(self, config: SweepConfig, *, sweep_id: str, seed: int = 0, trials: list[Trial] | None = None):
        config.check_complete()  # the sweep is created here: a partial configuration says what it lacks
        self.config = config
        self.sweep_id = sweep_id
        self.seed = seed
        self.trials: list[Trial] = list(trials or [])
        params = config.parameters or {}
        self._varying = {k: v for k, v in params.items() if parameter_distribution(v) != "constant"}
        self._constants = {k: v["value"] for k, v in params.items() if parameter_distribution(v) == "constant"}

    # --- persistence -------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "sweep_id": self.sweep_id,
            "seed": self.seed,
            "config": self.config.to_wandb(),
            "trials": [asdict(t) for t in self.trials],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state to ``path`` atomically (a crash leaves the previous state, never half a file)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_json(), f, indent=1)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str], config: SweepConfig, *, sweep_id: str, seed: int = 0) -> LocalSweep:
        """The sweep saved at ``path``, or a new one if there is no file. Its saved sweep id and seed win over the
        given ones (a restarted driver is a new Flyte run); a file saved for another configuration is an error."""
        target = Path(path)
        if not target.exists():
            return cls(config, sweep_id=sweep_id, seed=seed)
        state = json.loads(target.read_text())
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"sweep state {str(target)!r} has version {state.get('version')!r}, expected {_STATE_VERSION}"
            )
        if state["config"] != config.to_wandb():
            raise ValueError(
                f"sweep state {str(target)!r} belongs to another sweep configuration: {state['config']!r}; "
                f"use another state path for {config.to_wandb()!r}"
            )
        return cls(config, sweep_id=state["sweep_id"], seed=state["seed"], trials=[Trial(**t) for t in state["trials"]])

    # --- proposals ---------------------------------------------------------------------------------------------

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.finished]

    @property
    def pending(self) -> list[Trial]:
        """Trials proposed but without a result: a driver stopped while they ran. They are launched again, as they
        were, before anything new is proposed."""
        return [t for t in self.trials if not t.finished]

    def grid_size(self) -> int | None:
        if self.config.method != "grid":
            return None
        return math.prod(len(self._grid_axis(spec)) for spec in self._varying.values())

    @staticmethod
    def _grid_axis(spec: Mapping[str, Any]) -> list[Any]:
        if parameter_distribution(spec) == "categorical":
            return list(range(len(spec["values"])))
        return list(range(spec["min"], spec["max"] + 1))

    def propose(self, n: int) -> list[Trial]:
        """Up to ``n`` new trials (fewer once a grid is exhausted), recorded as running."""
        first = len(self.trials)
        size = self.grid_size()
        if size is not None:
            n = max(0, min(n, size - first))
        if n <= 0:
            return []
        if self.config.method == "grid":
            points = list(itertools.islice(self._grid_points(), first, first + n))
        elif self.config.method == "random":
            points = [self._random_point(first + i) for i in range(n)]
        else:
            points = self._bayes_points(first, n)
        new = [
            Trial(number=first + i, raw=raw, params={**self._constants, **self._values(raw)})
            for i, raw in enumerate(points)
        ]
        self.trials.extend(new)
        return new

    def _values(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _to_value(self._varying[k], raw[k]) for k in self._varying}

    def _grid_points(self) -> Any:
        names = list(self._varying)
        for combo in itertools.product(*(self._grid_axis(self._varying[k]) for k in names)):
            yield dict(zip(names, combo, strict=True))

    def _random_point(self, number: int) -> dict[str, Any]:
        # A string seed is hashed with SHA-512 by random.Random: stable across processes, unlike hash().
        rng = random.Random(f"{self.seed}:{self.sweep_id}:{number}")
        return {k: _sample_raw(spec, rng) for k, spec in self._varying.items()}

    def _bayes_points(self, first: int, n: int) -> list[dict[str, Any]]:
        try:
            import optuna
        except ImportError as e:
            raise ImportError(
                "method 'bayes' in an offline sweep needs optuna: pip install 'flyteplugins-wandb-distributed[sweeps]'"
            ) from e
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        distributions = {k: _optuna_distribution(spec) for k, spec in self._varying.items()}
        direction: Literal["minimize", "maximize"] = "maximize" if self.config.goal == "maximize" else "minimize"
        sampler = optuna.samplers.TPESampler(
            seed=self.seed + first, n_startup_trials=BAYES_STARTUP_TRIALS, constant_liar=True
        )
        study = optuna.create_study(direction=direction, sampler=sampler)
        state = optuna.trial.TrialState
        for t in self.finished:
            steps = {i + 1: v for i, v in enumerate(t.history)}
            if t.status == "complete" and t.value is not None:
                frozen = optuna.trial.create_trial(
                    params=t.raw, distributions=distributions, value=t.value, intermediate_values=steps
                )
            elif t.status == "stopped":
                frozen = optuna.trial.create_trial(
                    params=t.raw, distributions=distributions, state=state.PRUNED, intermediate_values=steps
                )
            else:
                frozen = optuna.trial.create_trial(params=t.raw, distributions=distributions, state=state.FAIL)
            study.add_trial(frozen)
        asked = [study.ask(distributions) for _ in range(n)]
        return [dict(t.params) for t in asked]

    # --- results -----------------------------------------------------------------------------------------------

    def thresholds(self) -> dict[int, float]:
        """The bars the next round's trials must clear at each bracket (see :func:`stop_thresholds`)."""
        return stop_thresholds(self.config.early_terminate, self.config.goal, self.finished)

    def record(self, number: int, outcome: float | Sequence[float], thresholds: Mapping[int, float]) -> Trial:
        """Store a trial's result: its final metric value, or the metric's values at steps 1..n (the last is the
        result). A history that fell short of a bracket in ``thresholds`` (those the trial ran with) marks the
        trial stopped."""
        trial = self.trials[number]
        try:
            store_outcome(trial, outcome)
        except ValueError as e:
            return self.fail(number, str(e))
        goal = self.config.goal
        stopped = any(should_stop(thresholds, goal, s, v) for s, v in enumerate(trial.history, start=1))
        trial.status = "stopped" if stopped else "complete"
        return trial

    def fail(self, number: int, error: str) -> Trial:
        trial = self.trials[number]
        trial.status, trial.error = "failed", error
        return trial

    def best(self) -> Trial | None:
        """The best complete trial by the metric's goal (a stopped trial only if none completed)."""
        return best_trial(self.trials, self.config.goal)
