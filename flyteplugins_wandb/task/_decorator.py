"""``@wandb_init``: give a Flyte task's processes their W&B runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, overload

from .. import _keys as keys
from ..planning import (
    RESERVED_INIT_KEYWORDS,
    USER_FIELDS,
    WANDB_INIT_KEYWORDS,
    RankScope,
    RunMode,
    WandbConfig,
    check_seconds,
    elastic_node_count,
)
from ..run import PER_PROCESS_SETTINGS, InitOptions
from ._links import Wandb
from ._pod import body_scope, hook_execute
from ._report_task import reported
from ._task_wrap import task_and_function, wrap_body

__all__ = ["wandb_init"]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__flyteplugins_wandb__"
# The decorator's own parameters for WandbConfig fields; the other user fields (name, notes, group, job_type,
# mode, dir, host...) arrive as keywords and take part in precedence like the run context's.
_NAMED = frozenset({"project", "entity", "run_mode", "rank_scope", "tags", "config", "init_kwargs", "report"})
_CONFIG_FIELDS: Final = tuple(name for name in USER_FIELDS if name not in _NAMED)


@overload
def wandb_init(func: F, /) -> F: ...


@overload
def wandb_init(
    *,
    run_mode: RunMode | None = None,
    rank_scope: RankScope | None = None,
    project: str | None = None,
    entity: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    config: Mapping[str, Any] | None = None,
    settings: Any = None,
    strict: bool = False,
    start_timeout: float | None = None,
    finish_timeout: float = 60.0,
    run_per_attempt: bool = False,
    report: bool | None = None,
    download_logs: bool | None = None,
    **init_kwargs: Any,
) -> Callable[[F], F]: ...


def wandb_init(
    func: Any = None,
    /,
    *,
    run_mode: RunMode | None = None,
    rank_scope: RankScope | None = None,
    project: str | None = None,
    entity: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    config: Mapping[str, Any] | None = None,
    settings: Any = None,
    strict: bool = False,
    start_timeout: float | None = None,
    finish_timeout: float = 60.0,
    run_per_attempt: bool = False,
    report: bool | None = None,
    download_logs: bool | None = None,
    **init_kwargs: Any,
) -> Any:
    """Open a W&B run in each process of a Flyte task that should have one, for the duration of the task.

    Place it above ``@env.task`` (it then also attaches Flyte UI links to the runs); beneath it, tracking works
    the same but the task carries no links. Works on plain, async and ``Elastic`` tasks; use bare or called.

    - ``run_mode`` (``auto``/``shared``/``new``) and ``rank_scope`` (``global``/``worker``) choose the layout; see
      the README's tables. Arguments given here win over ``wandb_config(...)`` in the run context, which wins over
      ``WANDB_*`` environment variables. ``config`` and other mappings merge key by key.
    - Any other ``wandb.init`` keyword may be given (``name``, ``notes``, ``group``, ``job_type``, ``mode``,
      ``resume``...); ``reinit`` may not, because the layout decides it. ``id`` names the run of a layout that has
      one run (a plain task; ``auto``/``shared`` under global scope), and its link; a layout with several runs
      refuses it. ``host`` is the W&B web address for the links only.
    - In the body, wandb's module API (``wandb.run``, ``wandb.log``, ``wandb.config``, ``wandb.summary``...) is this
      process's run, so code written for W&B and the trainers' own loggers log into it; ``wandb.init(...)`` returns
      it (adding its ``config``, warning about the arguments it ignores). Where a process has no run, those raise
      an error that says so: guard them with ``if get_wandb_run() is not None:``.
    - If the task raises, its run finishes as failed and the exception propagates unchanged. If a run cannot be
      started, the task runs without it and a warning says so, unless ``strict=True``. Online mode without an
      API key fails before the body starts. ``start_timeout`` bounds waiting for wandb.init and, in shared mode,
      for the primary writer (default: the user's ``settings.init_timeout``, else ``WANDB_INIT_TIMEOUT``, else
      120 s); ``finish_timeout`` bounds the end of the run. ``settings`` may not set what the layout sets per
      process (run id, group, mode, shared-mode roles, sweep id, GPU sampling).
    - Flyte retries and elastic restarts continue the same run (``resume="allow"``); ``run_per_attempt=True``
      opens a fresh run per attempt instead (``-attempt-{n}``, grouped).
    - ``report=True`` (or ``wandb_config(report=True)``) gives the task a "Weights & Biases" Flyte report tab: its
      runs and one line chart per metric, read from the runs' local files (offline too), written when the task
      ends by global rank 0 and refreshed now and then while it runs. See the README.
    - On an ``Elastic`` task, each pod starts one W&B service for its workers, so a worker killed abruptly loses
      nothing it logged. Offline runs (and online runs whose finish timed out) are saved to Flyte's storage when
      the task's processes end, as the ``wandb_run_files`` directory in the Flyte UI; ``download_logs=True`` (here or in
      ``wandb_config``) saves online runs too. ``python -m flyteplugins_wandb.sync <dir>`` turns them into W&B runs.
    """
    for key in init_kwargs:
        if key in RESERVED_INIT_KEYWORDS:
            raise TypeError(f"wandb_init() does not take {key!r}: the run layout decides it")
        if key not in WANDB_INIT_KEYWORDS and key not in _CONFIG_FIELDS:
            raise TypeError(
                f"wandb_init() got an unexpected keyword {key!r}; wandb.init keywords: {sorted(WANDB_INIT_KEYWORDS)}"
            )
    if start_timeout is not None:
        start_timeout = check_seconds("start_timeout", start_timeout)
    check_seconds("finish_timeout", finish_timeout)
    if report is not None and not isinstance(report, bool):
        raise TypeError(f"report must be a bool, got {type(report).__name__} {report!r}")
    _check_settings(settings, start_timeout)
    fields = {k: init_kwargs.pop(k) for k in _CONFIG_FIELDS if k in init_kwargs}
    options = InitOptions(
        config=WandbConfig(
            project=project,
            entity=entity,
            run_mode=run_mode,
            rank_scope=rank_scope,
            tags=tuple(tags) if tags is not None and not isinstance(tags, str) else tags,
            config=config,
            init_kwargs=init_kwargs or None,
            download_logs=download_logs,
            **fields,
        ),
        settings=settings,
        strict=strict,
        start_timeout=start_timeout,
        finish_timeout=float(finish_timeout),
        run_per_attempt=bool(run_per_attempt),
    )

    def decorate(target: F) -> F:
        return _decorate(target, options, report)

    return decorate if func is None else decorate(func)


def _check_settings(settings: Any, start_timeout: float | None) -> None:
    """Refuse a ``wandb.Settings`` that sets what the plugin sets per process: the user's value would be
    replaced on every rank, or contradict the layout on some."""
    if settings is None:
        return
    given = getattr(settings, "model_fields_set", None)
    if given is None:
        raise TypeError(f"settings must be a wandb.Settings, got {type(settings).__name__}")
    clash = sorted(set(given) & PER_PROCESS_SETTINGS)
    if clash:
        raise ValueError(
            f"settings may not set {', '.join(clash)}: the plugin sets them per process from the layout; allowed are "
            "the other wandb.Settings fields (use wandb_init(mode=...) for online/offline/disabled and resume=... "
            "for resuming)"
        )
    if "init_timeout" in given:
        check_seconds("settings.init_timeout", settings.init_timeout)
        if start_timeout is not None and settings.init_timeout != start_timeout:
            raise ValueError(
                f"start_timeout={start_timeout:g} and settings.init_timeout={settings.init_timeout:g} disagree; "
                "give one of them"
            )


def _decorate(target: F, options: InitOptions, report: bool | None = None) -> F:
    task, fn = task_and_function(target, "@wandb_init", _MARK)
    if task is None:
        # A plain function may be a wandb.agent objective: its trials log into the runs the sweep server assigns.
        # (Imported here: a task's ranks never need the sweep agent's side.)
        from ..run import plain_function_scope

        scope = lambda: reported(plain_function_scope(options), report, options.finish_timeout)  # noqa: E731
        return wrap_body(fn, scope, _MARK)  # type: ignore[return-value]
    nodes = elastic_node_count(getattr(task, "plugin_config", None))
    distributed = nodes is not None
    _check_user_id(options.config, nodes)
    options = dataclasses.replace(options, distributed_task=distributed, task_name=task.name)
    # Change the task in place: TaskEnvironment.tasks holds this object, and deploy must see the new links.
    task.func = wrap_body(fn, lambda: reported(body_scope(options)(), report, options.finish_timeout), _MARK)
    if distributed:
        # Elastic workers run the function; the pod process that starts them runs execute.
        hook_execute(task, options)
    task.links = (*task.links, *_links(task, options))
    if report:
        task.report = True  # so that Flyte offers the task's report in its UI
    return target


def _check_user_id(config: WandbConfig, nodes: int | None) -> None:
    """Refuse, where it is written, a run id on an Elastic task whose decorator asks for a layout of several runs
    (the planner refuses the rest on the pod, where the process count is known)."""
    if config.id is None or nodes is None:
        return
    if config.run_mode == "new" or (config.rank_scope == "worker" and nodes > 1):
        raise ValueError(
            f"id={config.id!r} names one run, but run_mode={config.run_mode or 'auto'!r} with rank_scope="
            f"{config.rank_scope or 'global'!r} on this Elastic task ({nodes} nodes) makes a run per process or per "
            "node; give no id (the layout names each run) or use run_mode 'auto'/'shared' with rank_scope 'global'"
        )


def _links(task: Any, options: InitOptions) -> tuple[Wandb, ...]:
    num_workers = elastic_node_count(getattr(task, "plugin_config", None))
    cfg = options.config
    # The decorator's settings, readable on the link as on a hand-made one; the pods' declared environment.
    common: dict[str, Any] = {
        "project": cfg.project,
        "entity": cfg.entity,
        "run_mode": cfg.run_mode,
        "rank_scope": cfg.rank_scope,
        "task_env": _declared_env(task),
    }
    # The number of links is fixed when the task is defined; only the decorator's rank_scope is known then. A scope
    # from the run context moves the single link (to worker 0's run), it cannot add links: the common global case
    # keeps exactly one link instead of N copies of it.
    if num_workers is None or num_workers == 1 or options.config.rank_scope != "worker":
        return (Wandb(options.config, num_workers=num_workers, per_attempt=options.run_per_attempt, **common),)
    return tuple(
        Wandb(
            options.config,
            num_workers=num_workers,
            worker_index=i,
            per_attempt=options.run_per_attempt,
            name=f"Weights & Biases (worker {i})",
            **common,
        )
        for i in range(num_workers)
    )


def _declared_env(task: Any) -> tuple[tuple[str, str], ...]:
    env = getattr(task, "env_vars", None) or {}
    wanted = (keys.WANDB_PROJECT, keys.WANDB_ENTITY)
    return tuple((k, str(env[k])) for k in wanted if isinstance(env, Mapping) and env.get(k))
