"""What both decorators do to a Flyte task: find its function, refuse a second decoration, and run the body
inside a context manager, for sync and async bodies alike."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, TypeVar

__all__ = ["task_and_function", "wrap_body"]

F = TypeVar("F", bound=Callable[..., Any])


def task_and_function(target: Any, decorator: str, mark: str) -> tuple[Any, Callable[..., Any]]:
    """The Flyte task (None for a plain function) and the function to wrap. Refuses a target that is neither, a
    task without a Python function, and one that ``decorator`` (marked by attribute ``mark``) already wraps."""
    from flyte import TaskTemplate

    if isinstance(target, TaskTemplate):
        fn = getattr(target, "func", None)
        if fn is None:
            raise TypeError(f"{decorator} needs a Python function task; {type(target).__name__} has no function")
        if getattr(fn, mark, False):
            raise TypeError(f"task {target.name!r} is already decorated with {decorator}")
        return target, fn
    if not callable(target):
        raise TypeError(f"{decorator} decorates a Flyte task or a function, got {target!r}")
    if getattr(target, mark, False):
        raise TypeError(f"{target!r} is already decorated with {decorator}")
    return None, target


def wrap_body(fn: F, scope: Callable[[], AbstractContextManager[Any]], mark: str) -> F:
    """``fn`` running inside a fresh ``scope()`` on every call, marked with attribute ``mark``."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            entered = scope()
            if isinstance(entered, AbstractAsyncContextManager):  # its end must await on the body's loop
                async with entered:
                    return await fn(*args, **kwargs)
            with entered:
                return await fn(*args, **kwargs)

        wrapper: Any = async_wrapper
    else:

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            with scope():
                return fn(*args, **kwargs)

        wrapper = sync_wrapper
    setattr(wrapper, mark, True)
    return wrapper  # type: ignore[no-any-return]
