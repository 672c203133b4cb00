"""Where a run came from, written into its config under one key (``flyte``)."""

from __future__ import annotations

from typing import Any

from ._plan import RunPlan
from ._topology import DistributedInfo

__all__ = ["provenance"]


def provenance(
    *,
    project: str | None,
    domain: str | None,
    run_name: str,
    action_name: str,
    task_name: str | None,
    version: str | None,
    plan: RunPlan,
    topology: DistributedInfo | None,
) -> dict[str, Any]:
    """The Flyte execution behind a run. Per-process fields (rank...) only where one process writes the run;
    the attempt and the elastic restart count change on retries, so they go to the summary instead."""
    out: dict[str, Any] = {
        "project": project,
        "domain": domain,
        "run_name": run_name,
        "action_name": action_name,
        "task_name": task_name,
        "version": version,
        "run_mode": plan.run_mode,
        "rank_scope": plan.rank_scope,
    }
    if topology is not None:
        out.update(world_size=topology.world_size, num_workers=topology.num_workers)
        if plan.writer is None:
            out.update(rank=topology.rank, local_rank=topology.local_rank, worker_index=topology.worker_index)
    return {k: v for k, v in out.items() if v not in (None, "")}
