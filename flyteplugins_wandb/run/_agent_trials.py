"""``@wandb_init`` on a plain function that ``wandb.agent`` runs: each trial logs into the run the sweep server
assigned it, with the W&B settings of the Flyte task that runs the agent.

``wandb.agent(sweep_id, function=f)`` runs ``f`` in a thread of its own, which sees neither Flyte's context nor
the task's ContextVars; it says which run the trial is through the process environment (``WANDB_SWEEP_ID``,
``WANDB_RUN_ID``, and the trial's parameters in ``WANDB_SWEEP_PARAM_PATH``), which ``wandb.init`` reads itself.
So the plugin must not choose the run's id there, and the task's settings are kept where any thread can read them:
a process-wide stack that ``@wandb_sweep`` pushes for the duration of its task.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import _keys as keys
from ..planning import WandbConfig, resolve
from ._current import current_placement, current_run
from ._guards import Timeout, bounded, require_api_key, retrying
from ._init_args import redact_secrets
from ._lifecycle import InitOptions, start_bound, track
from ._module_api import module_api, wandb_init_function

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = ["agent_trial", "in_agent_trial", "plain_function_scope", "task_settings_for_agents"]

logger = logging.getLogger("flyteplugins_wandb")


@dataclass(frozen=True)
class _Entry:
    token: int
    sweep_id: str | None
    settings: WandbConfig


_lock = threading.Lock()
_stack: list[_Entry] = []
_tokens = itertools.count()


@contextmanager
def task_settings_for_agents(settings: WandbConfig, sweep_id: str | None) -> Iterator[None]:
    """While a task runs: its W&B settings, for the trials of sweep ``sweep_id`` that ``wandb.agent`` runs in
    threads of this process."""
    entry = _Entry(next(_tokens), sweep_id, settings)
    with _lock:
        _stack.append(entry)
    try:
        yield
    finally:
        with _lock:
            _stack.remove(entry)


def _settings_for(sweep_id: str | None) -> WandbConfig:
    """The settings of the newest running task of ``sweep_id``, else of the newest running task, else none."""
    with _lock:
        entries = list(_stack)
    for entry in reversed(entries):
        if entry.sweep_id == sweep_id:
            return entry.settings
    return entries[-1].settings if entries else WandbConfig()


def in_agent_trial(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is running a ``wandb.agent`` trial now (the agent set the trial's run and sweep)."""
    return bool(environ.get(keys.WANDB_SWEEP_ID) and environ.get(keys.WANDB_RUN_ID))


@contextmanager
def agent_trial(
    decorator: WandbConfig,
    settings: Any,
    *,
    strict: bool,
    start_timeout: float,
    finish_timeout: float,
    set_init_timeout: bool = True,
    environ: Mapping[str, str] = os.environ,
) -> Iterator[Run | None]:
    """Open the trial's run (the id and parameters wandb.agent assigned, the task's settings under the decorator's)
    for the duration of the function; a function that raises finishes it as failed and the exception propagates."""
    sweep_id, run_id = environ.get(keys.WANDB_SWEEP_ID), environ.get(keys.WANDB_RUN_ID)
    # A trial is one run of its own: the task's run-describing fields (name, group...) do not apply to it.
    resolved = resolve(decorator, _settings_for(sweep_id).inheritable(), environ)
    run = None
    if not resolved.disabled_by_env:
        if resolved.wandb_mode == "online":
            require_api_key(environ, settings)
        run = _open(resolved.config, resolved.wandb_mode, settings, strict, start_timeout, set_init_timeout, run_id)
    token, where = current_run.set(run), current_placement.set(None)
    exit_code = 1
    try:
        why = "tracking is off" if resolved.disabled_by_env else "it could not be started (see the warning logged)"
        with module_api(run, f"the sweep trial {run_id} has no W&B run: {why}"):
            yield run
        exit_code = 0
    finally:
        current_placement.reset(where)
        current_run.reset(token)
        if run is not None:
            _finish(run, exit_code, finish_timeout, strict and exit_code == 0)


def _open(
    cfg: WandbConfig,
    mode: str,
    settings: Any,
    strict: bool,
    start_timeout: float,
    set_init_timeout: bool,
    run_id: str | None,
) -> Run | None:
    import wandb

    kwargs: dict[str, Any] = dict(cfg.init_kwargs or {})
    for name in ("project", "entity", "name", "notes", "group", "job_type", "dir"):
        if getattr(cfg, name) is not None:
            kwargs[name] = getattr(cfg, name)
    if cfg.tags is not None:
        kwargs["tags"] = list(cfg.tags)
    config, dropped = redact_secrets(dict(cfg.config or {}))
    if dropped:
        logger.warning("not writing secret-looking config entries to sweep trial %s: %s", run_id, ", ".join(dropped))
    if config:
        kwargs["config"] = config
    # No id and no resume: wandb.init takes the trial's id and parameters from what wandb.agent set. create_new, so
    # that no other run of this process is returned instead; wandb's module API (wandb.run, wandb.config,
    # wandb.log), which code written for wandb.agent uses, is bound by agent_trial for the trial's duration.
    kwargs["mode"] = mode
    kwargs["reinit"] = "create_new"
    # The user's own init_timeout (settings or WANDB_INIT_TIMEOUT), which wandb reads itself, is left alone.
    updates: dict[str, Any] = {"init_timeout": start_timeout} if set_init_timeout else {}
    if settings is not None:
        kwargs["settings"] = settings.model_copy(update=updates)
    elif updates:
        kwargs["settings"] = wandb.Settings(**updates)
    what = f"wandb.init of sweep trial {run_id}"
    try:
        _file_in_sweep_project(cfg)
        return retrying(
            lambda: bounded(lambda: wandb_init_function()(**kwargs), start_timeout * 1.25 + 5, what),
            attempts=3,
            backoff=1.0,
            what=what,
            permanent=(TypeError, ValueError, Timeout, wandb.errors.UsageError),
        )
    except Exception as e:
        if strict:
            raise
        logger.warning("%s failed (%s: %s); the trial runs without a run", what, type(e).__name__, e)
        return None


def _file_in_sweep_project(cfg: WandbConfig) -> None:
    """In a sweep, wandb.init ignores its project and entity arguments and files the run under the process's global
    settings (``WANDB_PROJECT``/``WANDB_ENTITY``), which wandb.agent sets only when it was given them. Where it was
    not, make them the sweep's (or the task's), as ``wandb.agent(..., project=, entity=)`` would; wandb.agent
    resets the global settings before its next trial."""
    import wandb

    current = wandb.setup().settings
    missing = {k: getattr(cfg, k) for k in ("project", "entity") if getattr(cfg, k) and not getattr(current, k)}
    if missing:
        wandb.setup(wandb.Settings(**missing))


def _finish(run: Run, exit_code: int, timeout: float, strict: bool) -> None:
    try:
        bounded(lambda: run.finish(exit_code=exit_code), timeout, f"finishing sweep trial {run.id}")
    except Exception as e:
        if strict:
            raise
        logger.warning("finishing sweep trial %s failed (%s: %s); some of its data may be lost", run.id,
                       type(e).__name__, e)  # fmt: skip


def plain_function_scope(options: InitOptions) -> AbstractContextManager[Run | None]:
    """What ``@wandb_init`` on a plain function (not a Flyte task) opens around each call: the trial's run when
    ``wandb.agent`` is running one in this process, else what a task would (:func:`track`)."""
    if in_agent_trial():
        start_timeout, set_it = start_bound(options, os.environ)
        return agent_trial(
            options.config,
            options.settings,
            strict=options.strict,
            start_timeout=start_timeout,
            set_init_timeout=set_it,
            finish_timeout=options.finish_timeout,
        )
    return track(options)
