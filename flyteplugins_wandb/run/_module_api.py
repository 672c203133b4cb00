"""wandb's module API (``wandb.run``, ``wandb.log``, ``wandb.config``, ``wandb.summary``...) bound to the run of the
task that runs in this process, so that code written for W&B (its guides, trainers' own loggers) works unchanged.

The plugin opens its runs with ``reinit="create_new"`` (a nested task's run must not be mistaken for its parent's),
which leaves wandb's module API unbound. Binding uses wandb's own function for it (``_set_global_run``, what a plain
``wandb.init`` calls); what the module held before the first task bound it is put back when the last one ends.

Module attributes are process-wide. Tasks that run at once in one process (async siblings in local mode) each push
their binding here and the module API points at the run of the most recently started task still running;
``get_wandb_run()`` (a ContextVar) stays exact for each of them.

A process of a tracked task that has no run (a rank other than 0 under ``run_mode="auto"``, say) gets stand-ins whose
errors say so and name the guard. Such a process does not import wandb for this: the stand-ins are put in place
when wandb is imported by the user's code (a finder on ``sys.meta_path`` that runs after wandb's own import).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._current import get_wandb_run

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

__all__ = ["module_api", "no_run_reason", "wandb_init_function"]

logger = logging.getLogger("flyteplugins_wandb")

_GUARD = "get_wandb_run() is None in this process: guard W&B calls with `if get_wandb_run() is not None:`"


@dataclass(eq=False)
class _Binding:
    run: Run | None
    why_no_run: str


_lock = threading.RLock()
_stack: list[_Binding] = []
_saved: dict[str, Any] | None = None
"""The module attributes as they were before the first binding (put back when the last one ends)."""


@contextmanager
def module_api(run: Run | None, why_no_run: str = "") -> Iterator[None]:
    """While the body runs: wandb's module API bound to ``run``, or, where ``run`` is None, stand-ins that raise
    with ``why_no_run`` (installed when wandb is imported, never importing it here)."""
    binding = _Binding(run, why_no_run)
    with _lock:
        _stack.append(binding)
        _apply()
    try:
        yield
    finally:
        with _lock:
            _stack.remove(binding)
            _apply()


def wandb_init_function() -> Callable[..., Run]:
    """wandb's own ``wandb.init`` (while a task's run is bound, ``wandb.init`` returns that run: the plugin's own
    runs must be opened with the real one)."""
    import wandb

    with _lock:
        init: Callable[..., Run] = _saved["init"] if _saved is not None else wandb.init
    return init


def no_run_reason(rank: int | None, run_mode: str, rank_scope: str) -> str:
    """Why a process of a tracked task has no run in its layout, for the stand-ins' errors."""
    where = "this process" if rank is None else f"rank {rank}"
    return f"{where} has no W&B run in its layout (run_mode={run_mode!r}, rank_scope={rank_scope!r})"


def _apply(wandb: ModuleType | None = None) -> None:
    """Make the module API match the top of the stack (the lock is held). ``wandb``: the module just imported."""
    wandb = wandb or _imported_wandb()
    if wandb is None:
        _set_hook(needed=bool(_stack))
        return
    _set_hook(needed=False)
    global _saved
    if not _stack:
        if _saved is not None:
            for name, value in _saved.items():
                setattr(wandb, name, value)
            _saved = None
        return
    if _saved is None:
        _saved = {name: getattr(wandb, name) for name in _bound_names(wandb)}
    top = _stack[-1]
    for name, value in _saved.items():  # from a clean slate: nothing of the previous binding stays
        setattr(wandb, name, value)
    if top.run is None:
        _bind_stand_ins(wandb, top.why_no_run)
    elif not getattr(top.run, "_is_finished", False):  # a run the body finished stays unbound, as wandb leaves it
        _bind_run(wandb, top.run)


def _imported_wandb() -> ModuleType | None:
    """wandb, if some code already imported it completely (a partly executed module cannot be bound yet)."""
    wandb = sys.modules.get("wandb")
    if wandb is None or not hasattr(wandb, "Run") or getattr(getattr(wandb, "__spec__", None), "_initializing", False):
        return None
    return wandb


def _bound_names(wandb: ModuleType) -> list[str]:
    """The module attributes a binding changes: those wandb's own ``set_global`` sets, and ``init``."""
    from wandb.sdk.lib import module

    return [*inspect.signature(module.set_global).parameters, "init"]


def _bind_run(wandb: ModuleType, run: Run) -> None:
    try:
        from wandb.sdk.wandb_init import _set_global_run
    except ImportError:  # wandb before 0.19.10 binds every run itself (it has no reinit="create_new")
        return
    _set_global_run(run)
    wandb.init = _init_returning_task_run(_saved["init"] if _saved else wandb.init)  # type: ignore[attr-defined]


def _bind_stand_ins(wandb: ModuleType, why: str) -> None:
    from wandb.sdk.lib import module

    for name in inspect.signature(module.set_global).parameters:
        if name == "run":
            continue
        value: Any = _NoRun(wandb, name, why) if name in ("config", "summary") else _no_run_call(wandb, name, why)
        setattr(wandb, name, value)


class _NoRun:
    """``wandb.config`` / ``wandb.summary`` in a process that has no run: every use raises, saying why."""

    def __init__(self, wandb: ModuleType, name: str, why: str) -> None:
        object.__setattr__(self, "_error", lambda what: wandb.Error(f"{what}: {why}; {_GUARD}"))
        object.__setattr__(self, "_name", f"wandb.{name}")

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):  # copy, pickle and friends probe these
            raise AttributeError(key)
        raise self._error(f"{self._name}.{key}")

    def __setattr__(self, key: str, value: Any) -> None:
        raise self._error(f"{self._name}.{key}")

    def __getitem__(self, key: str) -> Any:
        raise self._error(f"{self._name}[{key!r}]")

    def __setitem__(self, key: str, value: Any) -> None:
        raise self._error(f"{self._name}[{key!r}]")


def _no_run_call(wandb: ModuleType, name: str, why: str) -> Callable[..., Any]:
    def no_run(*args: Any, **kwargs: Any) -> Any:
        raise wandb.Error(f"wandb.{name}(): {why}; {_GUARD}")

    no_run.__name__ = name
    return no_run


# --- wandb.init called by the body --------------------------------------------------------------------------------

_APPLIED = frozenset({"config", "allow_val_change"})


def _init_returning_task_run(original: Callable[..., Any]) -> Callable[..., Any]:
    """``wandb.init`` while a task's run is bound: the task's run (its config updated with ``config``), and one
    warning naming the arguments it ignored. Where the run was already finished, wandb's own ``init``."""
    signature = inspect.signature(original)

    def init(*args: Any, **kwargs: Any) -> Any:
        run = _task_run()
        if run is None:
            return original(*args, **kwargs)
        given = signature.bind_partial(*args, **kwargs).arguments
        ignored = sorted(name for name, value in given.items() if name not in _APPLIED and value is not None)
        if ignored:
            logger.warning(
                "wandb.init() inside a @wandb_init task returns the task's run %s; ignored: %s (give them to "
                "@wandb_init or wandb_config instead)",
                run.id,
                ", ".join(ignored),
            )
        if given.get("config") is not None:
            allow = given.get("allow_val_change") is not False
            run.config.update(given["config"], allow_val_change=allow)  # type: ignore[no-untyped-call]
        return run

    init.__wrapped__ = original  # type: ignore[attr-defined]
    init.__doc__ = original.__doc__
    return init


def _task_run() -> Run | None:
    """The run of the task calling (exact in its own context; in a thread that sees no context, the run bound)."""
    run = get_wandb_run()
    if run is None:
        with _lock:
            run = _stack[-1].run if _stack else None
    return None if run is None or getattr(run, "_is_finished", False) else run


# --- binding a process without a run when the user's code imports wandb -----------------------------------------


class _AfterWandbImport(importlib.abc.MetaPathFinder):
    """Finds wandb as the other finders would, and binds the module API once wandb's own import has run."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != "wandb":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenBind(spec.loader)
                return spec
        return None


class _ThenBind(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        # The module is wandb's own from here on: its loader (for resources, reloads) is the real one.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        with _lock:
            _apply(module)  # importlib marks it as initializing until this returns: pass it on


_hook = _AfterWandbImport()


def _set_hook(*, needed: bool) -> None:
    if needed and _hook not in sys.meta_path:
        sys.meta_path.insert(0, _hook)
    elif not needed and _hook in sys.meta_path:
        sys.meta_path.remove(_hook)
