"""Checked by mypy --strict (see tests/test_public_api.py), never run: @wandb_init keeps a function's type."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, assert_type

from flyteplugins_wandb import wandb_init


def train(steps: int, /) -> str:
    return str(steps)


async def train_async(steps: int, /) -> str:
    return str(steps)


assert_type(wandb_init(train), Callable[[int], str])
assert_type(wandb_init(run_mode="new", project="p")(train), Callable[[int], str])
assert_type(wandb_init(train_async), Callable[[int], Coroutine[Any, Any, str]])


@wandb_init
def bare(steps: int, /) -> str:
    return str(steps)


@wandb_init(rank_scope="worker", tags=["a"])
def called(steps: int, /) -> str:
    return str(steps)


assert_type(bare, Callable[[int], str])
assert_type(called, Callable[[int], str])
assert_type(bare(1), str)
