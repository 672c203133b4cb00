"""RunRecord values for tests: one offline, not-distributed-looking record with every field set, changed per test."""

from __future__ import annotations

import dataclasses
from typing import Any

from flyteplugins_wandb.pod import RunRecord

_BASE = RunRecord(
    run_id="r",
    group=None,
    label=None,
    primary=None,
    run_mode="auto",
    rank_scope="global",
    wandb_mode="offline",
    rank=0,
    local_rank=0,
    worker_index=0,
    restart_count=0,
    attempt=0,
    project="p",
    entity=None,
    directory=None,
)


def run_record(**changes: Any) -> RunRecord:
    """A rank-0 offline ``auto`` record of run ``r`` in project ``p``, with ``changes`` applied."""
    return dataclasses.replace(_BASE, **changes)
