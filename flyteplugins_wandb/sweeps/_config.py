"""A W&B sweep configuration as a frozen, validated value that also travels in Flyte's run context."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, get_args

from .. import _keys as keys
from ..planning import ContextEntries, check_choice

logger = logging.getLogger("flyteplugins_wandb")

__all__ = [
    "SweepConfig",
    "SweepContext",
    "decode_sweep_config",
    "wandb_sweep_config",
]

SweepMethod = Literal["grid", "random", "bayes"]
MetricGoal = Literal["minimize", "maximize"]
# W&B's distribution names (sweep configuration reference). Each has a local sampler in _local_sweep.py.
Distribution = Literal[
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_log_uniform_values",
    "inv_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
]
EarlyTerminateType = Literal["hyperband"]

SWEEP_METHODS: Final[tuple[str, ...]] = get_args(SweepMethod)
METRIC_GOALS: Final[tuple[str, ...]] = get_args(MetricGoal)
DISTRIBUTIONS: Final[tuple[str, ...]] = get_args(Distribution)
EARLY_TERMINATE_TYPES: Final[tuple[str, ...]] = get_args(EarlyTerminateType)

_RANGE_DISTRIBUTIONS: Final = frozenset(
    {"int_uniform", "uniform", "q_uniform", "log_uniform", "log_uniform_values", "q_log_uniform_values",
     "inv_log_uniform_values"}
)  # fmt: skip
_NORMAL_DISTRIBUTIONS: Final = frozenset({"normal", "q_normal", "log_normal", "q_log_normal"})
_PARAMETER_KEYS: Final = ("values", "value", "min", "max", "distribution", "q", "mu", "sigma", "probabilities")
_METRIC_KEYS: Final = ("name", "goal", "target")
_EARLY_TERMINATE_KEYS: Final = ("type", "min_iter", "max_iter", "s", "eta", "strict")
ControllerType = Literal["cloud", "local"]
CONTROLLER_TYPES: Final[tuple[str, ...]] = get_args(ControllerType)
# The macros W&B expands in a sweep's command (sweep configuration reference); anything else is passed literally.
COMMAND_MACROS: Final = (
    "${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_no_boolean_flags}",
    "${args_json}", "${args_json_file}",
)  # fmt: skip


def _number(path: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path} must be a finite number, got {value!r}")
    return float(value)


def _positive_int(path: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{path} must be a positive int, got {value!r}")
    return value


def _check_keys(path: str, spec: object, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping) or not all(isinstance(k, str) for k in spec):
        raise TypeError(f"{path} must be a mapping with str keys, got {spec!r}")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ValueError(f"{path} has unknown keys {unknown}; allowed: {allowed}")
    return spec


def parameter_distribution(spec: Mapping[str, Any]) -> str:
    """The distribution a (validated) parameter spec samples from, inferred as W&B does when not given:
    ``values`` is categorical, ``value`` constant, int ``min``/``max`` int_uniform, other ``min``/``max`` uniform."""
    if "distribution" in spec:
        return str(spec["distribution"])
    if "values" in spec:
        return "categorical"
    if "value" in spec:
        return "constant"
    if "mu" in spec or "sigma" in spec:
        return "normal"
    both_int = all(isinstance(spec.get(k), int) and not isinstance(spec.get(k), bool) for k in ("min", "max"))
    return "int_uniform" if both_int else "uniform"


def _check_parameter(path: str, spec: object) -> None:
    spec = _check_keys(path, spec, _PARAMETER_KEYS)
    if "distribution" in spec:
        check_choice(f"{path}.distribution", spec["distribution"], DISTRIBUTIONS)
    dist = parameter_distribution(spec)
    if dist == "categorical":
        values = spec.get("values")
        if not isinstance(values, list | tuple) or not values:
            raise ValueError(f"{path}.values must be a non-empty list, got {values!r}")
        if "probabilities" in spec:
            probs = spec["probabilities"]
            if not isinstance(probs, list | tuple) or len(probs) != len(values):
                raise ValueError(f"{path}.probabilities must be a list as long as values, got {probs!r}")
            total = sum(_number(f"{path}.probabilities[{i}]", p) for i, p in enumerate(probs))
            if any(p < 0 for p in probs) or not math.isclose(total, 1.0, abs_tol=1e-6):
                raise ValueError(f"{path}.probabilities must be >= 0 and sum to 1, got {probs!r}")
    elif dist == "constant":
        if "value" not in spec:
            raise ValueError(f"{path} with distribution 'constant' needs value")
    elif dist in _RANGE_DISTRIBUTIONS:
        if "min" not in spec or "max" not in spec:
            raise ValueError(f"{path} with distribution {dist!r} needs min and max, got {dict(spec)!r}")
        low, high = _number(f"{path}.min", spec["min"]), _number(f"{path}.max", spec["max"])
        if dist == "int_uniform":
            for key in ("min", "max"):
                if isinstance(spec[key], bool) or not isinstance(spec[key], int):
                    raise ValueError(f"{path}.{key} must be an int for int_uniform, got {spec[key]!r}")
        if not low < high:
            raise ValueError(f"{path}.min must be below {path}.max, got min={spec['min']!r} max={spec['max']!r}")
        if dist.endswith("log_uniform_values") and low <= 0:
            raise ValueError(f"{path}.min must be > 0 for {dist} (it is the smallest value), got {spec['min']!r}")
    else:  # the normal family
        for key in ("mu", "sigma"):
            if key in spec:
                _number(f"{path}.{key}", spec[key])
        if spec.get("sigma", 1) <= 0:
            raise ValueError(f"{path}.sigma must be > 0, got {spec['sigma']!r}")
    if "q" in spec and _number(f"{path}.q", spec["q"]) <= 0:
        raise ValueError(f"{path}.q must be > 0, got {spec['q']!r}")
    if "values" in spec and dist != "categorical":
        raise ValueError(f"{path} gives values, which only a categorical parameter takes (distribution {dist!r})")


def _finite(spec: Mapping[str, Any]) -> bool:
    return parameter_distribution(spec) in ("categorical", "constant", "int_uniform")


def _check_early_terminate(spec: object) -> None:
    spec = _check_keys("early_terminate", spec, _EARLY_TERMINATE_KEYS)
    check_choice("early_terminate.type", spec.get("type"), EARLY_TERMINATE_TYPES)
    if ("min_iter" in spec) == ("max_iter" in spec):
        raise ValueError(f"early_terminate needs exactly one of min_iter or max_iter, got {dict(spec)!r}")
    if "min_iter" in spec:
        _positive_int("early_terminate.min_iter", spec["min_iter"])
    else:
        _positive_int("early_terminate.max_iter", spec["max_iter"])
        _positive_int("early_terminate.s", spec.get("s"))
    eta = _number("early_terminate.eta", spec.get("eta", 3))
    if eta <= 1:
        raise ValueError(f"early_terminate.eta must be > 1, got {spec['eta']!r}")
    if "strict" in spec and not isinstance(spec["strict"], bool):
        raise ValueError(f"early_terminate.strict must be a bool, got {spec['strict']!r}")


@dataclass(frozen=True)
class SweepConfig:
    """A validated W&B sweep configuration (method, metric, parameters, early termination, name/project/entity,
    run cap, and W&B's other keys: description, program, command, controller). Construction raises a
    ValueError/TypeError naming the field path, the bad value and the choices.

    ``prior_runs`` (run ids) is not part of W&B's configuration but of the sweep's creation, as in
    ``wandb.sweep(..., prior_runs=...)``: those existing runs are attached to the sweep the server creates.

    A configuration may be partial until its sweep is created (``method`` alone, or ``bayes`` without its
    metric): :meth:`check_complete` is called then and says what is missing. ``download_logs`` is not W&B's
    either: it saves the trials' online run files to Flyte's storage (see ``@wandb_sweep``).
    """

    method: str
    parameters: Mapping[str, Mapping[str, Any]] | None = None
    metric: Mapping[str, Any] | None = None
    early_terminate: Mapping[str, Any] | None = None
    name: str | None = None
    project: str | None = None
    entity: str | None = None
    run_cap: int | None = None
    description: str | None = None
    program: str | None = None
    command: tuple[str, ...] | list[str] | None = None
    controller: Mapping[str, Any] | None = None
    prior_runs: tuple[str, ...] | list[str] | None = None
    download_logs: bool | None = None

    def __post_init__(self) -> None:
        check_choice("method", self.method, SWEEP_METHODS)
        self._check_command_and_prior_runs()
        if self.controller is not None:
            controller = _check_keys("controller", self.controller, ("type",))
            check_choice("controller.type", controller.get("type"), CONTROLLER_TYPES)
        for key in ("name", "project", "entity", "description", "program"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{key} must be a str, got {type(value).__name__} {value!r}")
        if self.run_cap is not None:
            _positive_int("run_cap", self.run_cap)
        if self.download_logs is not None and not isinstance(self.download_logs, bool):
            raise TypeError(
                f"download_logs must be a bool, got {type(self.download_logs).__name__} {self.download_logs!r}"
            )
        params = self._checked_parameters()
        self._check_metric_and_early_terminate()
        if self.method == "grid":
            infinite = [p for p, spec in params.items() if not _finite(spec)]
            if infinite:
                raise ValueError(
                    f"method 'grid' needs finite choices (values, value or int_uniform); "
                    f"parameters {infinite} are continuous ({[parameter_distribution(params[p]) for p in infinite]})"
                )
        try:
            plain = json.loads(json.dumps(self._structured(), allow_nan=False))
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"the sweep configuration must be JSON-serializable, got {self._structured()!r}: {e}"
            ) from e
        # Plain JSON data: the value equals its decoded copy, and the caller's dicts cannot change it later.
        for key, value in plain.items():
            object.__setattr__(self, key, value)

    def _check_command_and_prior_runs(self) -> None:
        for key in ("command", "prior_runs"):
            items = getattr(self, key)
            if items is None:
                continue
            if (
                isinstance(items, str)
                or not isinstance(items, list | tuple)
                or not all(isinstance(i, str) and i for i in items)
            ):
                raise TypeError(f"{key} must be a list of non-empty str, got {items!r}")
            if not items:
                raise ValueError(f"{key} must not be empty, got {items!r}")
        for word in self.command or ():
            if word.startswith("${") and word not in COMMAND_MACROS and not word.startswith("${envvar:"):
                raise ValueError(f"command: unknown macro {word!r}; W&B's macros: {', '.join(COMMAND_MACROS)}")

    def _checked_parameters(self) -> Mapping[str, Any]:
        if self.parameters is None:
            return {}
        if not isinstance(self.parameters, Mapping):
            raise TypeError(f"parameters must be a mapping of name to spec, got {self.parameters!r}")
        params = _check_keys("parameters", self.parameters, tuple(self.parameters))
        if not params:
            raise ValueError("parameters must name at least one parameter, got {}")
        for pname, spec in params.items():
            if isinstance(spec, Mapping) and "parameters" in spec:
                raise ValueError(f"parameters.{pname}: nested parameters are not supported by the local engine")
            _check_parameter(f"parameters.{pname}", spec)
        return params

    def _check_metric_and_early_terminate(self) -> None:
        if self.metric is not None:
            metric = _check_keys("metric", self.metric, _METRIC_KEYS)
            if not isinstance(metric.get("name"), str) or not metric["name"]:
                raise ValueError(f"metric.name must be a non-empty str, got {metric.get('name')!r}")
            check_choice("metric.goal", metric.get("goal", "minimize"), METRIC_GOALS)
            if "target" in metric:
                _number("metric.target", metric["target"])
        if self.early_terminate is not None:
            _check_early_terminate(self.early_terminate)

    def check_complete(self) -> None:
        """Raise a ValueError naming what a sweep cannot be created without: parameters, and the metric that
        ``bayes`` optimizes and early termination compares. Called when the sweep is created."""
        if not self.parameters:
            raise ValueError(f"the sweep needs parameters to search (method {self.method!r}), got none")
        if self.method == "bayes" and self.metric is None:
            raise ValueError("metric is required for method 'bayes' (it optimizes the metric), got None")
        if self.early_terminate is not None and self.metric is None:
            raise ValueError("metric is required for early_terminate (it compares the metric), got None")

    def _structured(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.parameters is not None:
            out["parameters"] = {k: dict(v) for k, v in self.parameters.items()}
        for key in ("metric", "early_terminate", "controller"):
            value = getattr(self, key)
            if value is not None:
                out[key] = dict(value)
        for key in ("command", "prior_runs"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value)
        return out

    @property
    def goal(self) -> str:
        """``minimize`` or ``maximize`` (W&B's default is minimize)."""
        return str((self.metric or {}).get("goal", "minimize"))

    def to_wandb(self) -> dict[str, Any]:
        """The dict that ``wandb.sweep(sweep=...)`` takes; unset fields are left out (and ``prior_runs``, which is
        an argument of the sweep's creation, not of its configuration, and ``download_logs``, this plugin's)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and f.name not in _NOT_WANDB:
                out[f.name] = json.loads(json.dumps(value)) if isinstance(value, Mapping | list) else value
        return out

    def to_context(self) -> dict[str, str]:
        """Encode as run-context entries: strings as they are, structured values and ``run_cap`` as JSON. The
        fields Flyte's public W&B plugin has travel under ``wandb_sweep_<field>``, W&B's other keys together in
        ``wandb_sweep_kwargs`` (as that plugin writes them)."""
        out: dict[str, str] = {}
        kwargs: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in _IN_KWARGS:
                kwargs[f.name] = value
            else:
                out[keys.SWEEP_CONTEXT_PREFIX + f.name] = value if f.name in _STRINGS else json.dumps(value)
        if kwargs:
            out[keys.SWEEP_KWARGS_KEY] = json.dumps(kwargs)
        return out

    def to_dict(self) -> dict[str, str]:
        """The run-context entries (``to_context()``)."""
        return self.to_context()


_FIELD_NAMES: Final = tuple(f.name for f in fields(SweepConfig))
_STRINGS: Final = frozenset({"method", "name", "project", "entity", "description", "program"})
_NOT_WANDB: Final = frozenset({"prior_runs", "download_logs"})
# W&B's sweep keys that Flyte's public W&B plugin has no field for: they travel in wandb_sweep_kwargs.
_IN_KWARGS: Final = frozenset({"early_terminate", "run_cap", "description", "program", "command", "controller"})


def decode_sweep_config(context: Mapping[str, str] | None) -> SweepConfig | None:
    """The sweep configuration in a run context (this plugin's entries, or those Flyte's public W&B plugin
    writes), or None if it holds none. A partial configuration is read as it is (see ``check_complete``); a
    malformed value raises a ValueError naming the key."""
    values: dict[str, Any] = {}
    context = context or {}
    for name in _FIELD_NAMES:
        key = keys.SWEEP_CONTEXT_PREFIX + name
        raw = context.get(key)
        if raw is None or name in _IN_KWARGS:
            continue
        values[name] = raw if name in _STRINGS else _json(key, raw, name == "download_logs")
    raw_kwargs = context.get(keys.SWEEP_KWARGS_KEY)
    if raw_kwargs is not None:
        kwargs = _json(keys.SWEEP_KWARGS_KEY, raw_kwargs, False)
        if not isinstance(kwargs, dict):
            raise ValueError(f"run-context key {keys.SWEEP_KWARGS_KEY!r} must hold a JSON object, got {raw_kwargs!r}")
        for name, value in kwargs.items():
            if name in _FIELD_NAMES and name not in values:
                values[name] = value
            elif name not in _FIELD_NAMES:
                logger.warning("ignoring sweep key %r in the run context: not a W&B sweep key this plugin knows", name)
    if not values:
        return None
    try:
        return SweepConfig(**values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid sweep configuration in the run context: {e}") from None


def _json(key: str, raw: str, boolean: bool) -> Any:
    if boolean and raw in ("True", "False"):
        return raw == "True"  # Python's spelling, as another writer may use it
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"run-context key {key!r} must hold JSON, got {raw!r}: {e}") from None


class SweepContext(ContextEntries):
    """The run-context entries of a :class:`SweepConfig` (``.config``, also ``.settings``); combine with
    ``wandb_config(...)`` as ``{**wandb_config(...), **wandb_sweep_config(...)}``, or use it as ``with
    wandb_sweep_config(...):`` inside a task for the tasks launched in the block. Its fields read as attributes
    (``cfg.method``, ``cfg.metric``...); ``to_dict()`` gives the entries as a plain dict."""

    config: SweepConfig

    def __init__(self, config: SweepConfig) -> None:
        super().__init__(config.to_context())
        self.config = config

    @property
    def settings(self) -> SweepConfig:
        return self.config

    def __getattr__(self, name: str) -> Any:
        if name not in _FIELD_NAMES:
            raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}; fields: {list(_FIELD_NAMES)}")
        return getattr(self.config, name)


def wandb_sweep_config(
    *,
    method: str,
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    metric: Mapping[str, Any] | None = None,
    early_terminate: Mapping[str, Any] | None = None,
    name: str | None = None,
    project: str | None = None,
    entity: str | None = None,
    run_cap: int | None = None,
    description: str | None = None,
    program: str | None = None,
    command: list[str] | tuple[str, ...] | None = None,
    controller: Mapping[str, Any] | None = None,
    prior_runs: list[str] | tuple[str, ...] | None = None,
    download_logs: bool | None = None,
) -> SweepContext:
    """A W&B sweep configuration, validated here (before anything launches), as run-context entries.

    ``method`` is grid/random/bayes; ``metric`` ``{name, goal}`` is required for bayes and early termination;
    each parameter is ``{values: [...]}``, ``{value: x}`` or ``{min, max}`` with an optional W&B
    ``distribution``; grid takes finite parameters only; ``early_terminate`` is hyperband with ``min_iter``
    (or ``max_iter`` and ``s``) and ``eta`` (default 3). W&B's other keys (``description``, ``program``,
    ``command`` with its ``${...}`` macros, ``controller``) are checked where W&B defines them and passed on;
    ``prior_runs`` attaches existing runs to the sweep when it is created on the server. ``.config.to_wandb()`` is
    what W&B's sweep API takes. A partial configuration (``method`` alone, ``bayes`` without its metric) is
    accepted here and completed elsewhere (``@wandb_sweep(...)``, an inner ``with wandb_sweep_config(...)``); what
    is still missing when the sweep is created raises then. ``download_logs=True`` saves the trials' online run
    files to Flyte's storage too.
    """
    return SweepContext(
        SweepConfig(
            method=method,
            parameters=parameters,
            metric=metric,
            early_terminate=early_terminate,
            name=name,
            project=project,
            entity=entity,
            run_cap=run_cap,
            description=description,
            program=program,
            command=command,
            controller=controller,
            prior_runs=prior_runs,
            download_logs=download_logs,
        )
    )
