"""``@wandb_sweep``: open a sweep for a Flyte driver task, on the W&B server when one answers, offline otherwise."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from .. import _keys as keys
from ..planning import WandbConfig, check_seconds, decode_config, resolve
from ..run import Timeout, api_key, bounded, require_api_key, task_settings_for_agents, wandb_base_url
from ..task import task_and_function, web_host, wrap_body
from ._config import SweepConfig, SweepContext, decode_sweep_config
from ._link import WandbSweep
from ._run import FORCE_OFFLINE, SweepHome, offline_sweep_id
from ._server import SweepServer, SweepServerAuthError, SweepServerError, sweep_url

__all__ = ["SweepOptions", "open_sweep", "wandb_sweep"]

logger = logging.getLogger("flyteplugins_wandb")

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__flyteplugins_wandb_sweep__"


@dataclass(frozen=True)
class SweepOptions:
    """What ``@wandb_sweep`` was given, validated at decoration time."""

    config: SweepConfig | None = None
    strict: bool = False
    """Raise instead of running offline when the W&B server cannot create the sweep."""
    probe_timeout: float = 5.0
    """Seconds the server has to answer the first call; an air-gapped cluster learns it here, once."""
    timeout: float = 30.0
    """Seconds for any later server call."""
    download_logs: bool | None = None
    """Handed to the trials through the run context: save their online runs' files after each trial."""
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Sweep fields given to the decorator without a whole configuration (``project``, ``entity``...): they
    complete the run context's configuration when the task runs."""


@overload
def wandb_sweep(func: F, /) -> F: ...


@overload
def wandb_sweep(
    *,
    config: SweepConfig | SweepContext | None = None,
    strict: bool = False,
    probe_timeout: float = 5.0,
    timeout: float = 30.0,
    download_logs: bool | None = None,
    project: str | None = None,
    entity: str | None = None,
    **kwargs: Any,
) -> Callable[[F], F]: ...


def wandb_sweep(
    func: Any = None,
    /,
    *,
    config: SweepConfig | SweepContext | None = None,
    strict: bool = False,
    probe_timeout: float = 5.0,
    timeout: float = 30.0,
    download_logs: bool | None = None,
    project: str | None = None,
    entity: str | None = None,
    **kwargs: Any,
) -> Any:
    """Open a W&B sweep for each run of a Flyte driver task; inside it, :func:`run_sweep` runs the trials.

    Place it above ``@env.task`` (it then attaches a Flyte UI link: to the sweep in the launching run context for a
    task launched inside one, else to the project's sweeps page, as a driver's own sweep id is only known once the
    task runs). The configuration is ``config`` (``wandb_sweep_config(...)``), else the one in the run context; what
    a partial configuration still lacks when the sweep is created raises then, before the body runs.

    - Online (``WANDB_MODE`` unset or ``online``): the server is probed within ``probe_timeout`` seconds, then the
      sweep is created there, in the sweep configuration's project/entity, else ``wandb_config``'s, else
      ``WANDB_PROJECT``/``WANDB_ENTITY``. A missing or refused API key raises before the body runs. A server that
      does not answer, or fails, makes the sweep offline with a warning (its trials then log offline), unless
      ``strict=True``, which raises instead.
    - Offline (``WANDB_MODE=offline``/``disabled``): the sweep id is ``{run_name}-{action}-sweep`` and the local
      engine proposes the trials; no server call is made.
    - The body and every task it launches see the id through :func:`get_wandb_sweep_id`.
    - ``download_logs=True`` saves each trial's online run files to Flyte's storage too (``wandb_config``'s
      ``download_logs``, given to the trials); trials that log offline are saved in any case.
    - ``project``, ``entity`` and the other fields of ``wandb_sweep_config`` (``method=``, ``parameters=``,
      ``metric=``...) may be given here as keywords, as ``flyteplugins-wandb`` takes them: they win over
      ``config`` (or over the run context's configuration, which they complete when the task runs).
    """
    if isinstance(config, SweepContext):
        config = config.config
    if config is not None and not isinstance(config, SweepConfig):
        raise TypeError(f"config must be wandb_sweep_config(...) or a SweepConfig, got {type(config).__name__}")
    config, overrides = _with_keywords(config, {"project": project, "entity": entity, **kwargs})
    if download_logs is not None and not isinstance(download_logs, bool):
        raise TypeError(f"download_logs must be a bool or None, got {download_logs!r}")
    options = SweepOptions(
        config,
        bool(strict),
        check_seconds("probe_timeout", probe_timeout),
        check_seconds("timeout", timeout),
        download_logs,
        overrides,
    )

    def decorate(target: F) -> F:
        return _decorate(target, options)

    return decorate if func is None else decorate(func)


def _with_keywords(
    config: SweepConfig | None, keywords: Mapping[str, Any]
) -> tuple[SweepConfig | None, dict[str, Any]]:
    """``config`` with the decorator's sweep keywords applied, validated now; where there is no configuration to
    apply them to yet (no ``config``, no ``method``), the keywords to apply to the run context's when the task
    runs (validated now as far as they go)."""
    names = {f.name for f in dataclasses.fields(SweepConfig)}
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise TypeError(f"wandb_sweep() got unexpected keywords {unknown}; sweep fields: {sorted(names)}")
    given = {k: v for k, v in keywords.items() if v is not None}
    if config is not None:
        return dataclasses.replace(config, **given), {}
    if "method" in given:
        return SweepConfig(**given), {}
    if given:
        SweepConfig(**{"method": "random", **given})  # their values are checked as a configuration's are
    return None, given


def _decorate(target: F, options: SweepOptions) -> F:
    task, fn = task_and_function(target, "@wandb_sweep", _MARK)
    wrapped = wrap_body(fn, lambda: _driver_scope(options), _MARK)
    if task is None:
        return wrapped  # type: ignore[return-value]
    # In place, as @wandb_init does: the environment holds this very task object.
    task.func = wrapped
    given = options.overrides
    task.links = (*task.links, WandbSweep(options.config, project=given.get("project"), entity=given.get("entity")))
    return target


@contextmanager
def _driver_scope(options: SweepOptions) -> Iterator[SweepHome | None]:
    with open_sweep(options) as home:
        yield home


@contextmanager
def open_sweep(options: SweepOptions, environ: Mapping[str, str] = os.environ) -> Iterator[SweepHome | None]:
    """Create the sweep of the current driver action and hand it to the body and its tasks (the run context)."""
    import flyte

    tctx = flyte.ctx()
    if not tctx:
        logger.warning("@wandb_sweep: not inside a Flyte task (was the task called as a plain function?); no sweep")
        yield None
        return
    context = dict(tctx.custom_context or {})
    config = _config_in_force(options, context)
    run_cfg = decode_config(context)
    mode = resolve(WandbConfig(), run_cfg, environ).wandb_mode
    action = tctx.action
    entries = config.to_context()
    download_logs = options.download_logs if options.download_logs is not None else config.download_logs
    if download_logs is not None:
        entries.update(WandbConfig(download_logs=download_logs).to_context())  # for the trials' runs
    home = _joined(context, options, config, action.name)
    if home is None:
        config.check_complete()  # the sweep is created below: say what a partial configuration lacks
    if home is None and mode == "online":
        home = _create_online(config, run_cfg, options, action.name, environ)
    if home is None:
        home = SweepHome(action.name, offline_sweep_id(action.run_name or "local", action.name), online=False)
        if mode == "online":
            entries.update(FORCE_OFFLINE)  # the trials could not reach the server either
        logger.info("sweep %s runs offline, on the local engine", home.sweep_id)
    entries.update({keys.SWEEP_ID_KEY: home.sweep_id, keys.SWEEP_HOME_KEY: home.to_json()})
    # wandb.agent runs the user's objective in threads that cannot see this task's context: leave them its settings,
    # with the project and entity the sweep lives in (the server files its runs there).
    for_agents = dataclasses.replace(
        run_cfg, project=home.project or run_cfg.project, entity=home.entity or run_cfg.entity
    )
    with flyte.custom_context(**entries), task_settings_for_agents(for_agents, home.sweep_id):
        yield home


def _config_in_force(options: SweepOptions, context: Mapping[str, str]) -> SweepConfig:
    config = options.config or decode_sweep_config(context)
    if config is None and options.overrides.get("method") is None:
        raise ValueError(
            "@wandb_sweep needs a sweep configuration: @wandb_sweep(config=wandb_sweep_config(...)), or "
            "wandb_sweep_config(...) in the run context"
        )
    if config is None:
        return SweepConfig(**options.overrides)
    return dataclasses.replace(config, **options.overrides) if options.overrides else config


def _joined(context: Mapping[str, str], options: SweepOptions, config: SweepConfig, action: str) -> SweepHome | None:
    """The sweep of the ``@wandb_sweep`` driver that launched this task, which an agent task joins: one sweep for
    the driver and all its agents. A task given a different configuration of its own opens a sweep of its own."""
    raw = context.get(keys.SWEEP_HOME_KEY)
    if not raw or (options.config is not None and options.config != decode_sweep_config(context)):
        return None
    try:
        home = SweepHome(**json.loads(raw))
    except (TypeError, ValueError) as e:
        raise ValueError(f"run-context key {keys.SWEEP_HOME_KEY!r} is malformed: {raw!r} ({e})") from None
    if home.action == action:  # this very action, rerun: its sweep is opened again
        return None
    logger.info("sweep %s: task %s joins the sweep of its driver (%s)", home.sweep_id, action, home.action)
    return dataclasses.replace(home, action=action)


def _create_online(
    config: SweepConfig, run_cfg: WandbConfig, options: SweepOptions, action: str, environ: Mapping[str, str]
) -> SweepHome | None:
    base_url = wandb_base_url(environ)
    key = api_key(environ, base_url)
    if key is None:
        require_api_key(environ)  # raises, with how to give a Flyte task its key
        _offline(options, f"the sweep client needs an API key or netrc entry for {base_url}")
        return None
    server = SweepServer(base_url, key, timeout=options.timeout)
    try:
        viewer = bounded(lambda: server.probe(options.probe_timeout), options.probe_timeout + 1, f"probing {base_url}")
        entity = config.entity or run_cfg.entity or environ.get(keys.WANDB_ENTITY) or viewer
        project = config.project or run_cfg.project or environ.get(keys.WANDB_PROJECT)
        created = bounded(
            lambda: server.create_sweep(config, entity=entity, project=project),
            options.timeout + 1,
            f"creating the sweep on {base_url}",
        )
    except SweepServerAuthError:
        raise
    except (SweepServerError, Timeout) as e:
        _offline(options, str(e))
        return None
    for warning in created.warnings:
        logger.warning("W&B sweep %s: %s", created.sweep_id, warning)
    host = web_host(run_cfg.host, environ)
    url = None
    if created.entity and created.project:
        url = sweep_url(host, created.entity, created.project, created.sweep_id)
    logger.info("sweep %s created on %s%s", created.sweep_id, base_url, f": {url}" if url else "")
    return SweepHome(action, created.sweep_id, True, base_url, created.entity, created.project, url, options.strict)


def _offline(options: SweepOptions, why: str) -> None:
    if options.strict:
        raise RuntimeError(f"cannot create the W&B sweep ({why}) and strict=True")
    logger.warning("cannot create the W&B sweep (%s); the sweep runs offline on the local engine", why)
