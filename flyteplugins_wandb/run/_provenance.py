"""Where a run came from, written into its config under one key (``flyte``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlparse

from .. import _keys as keys
from ..planning import DistributedInfo, RunPlan

__all__ = ["console_url", "provenance"]


def console_url(
    environ: Mapping[str, str], project: str | None, domain: str | None, run_name: str, action_name: str
) -> str | None:
    """The Flyte console page of this action, when the console's address is known."""
    if not project or not domain:
        return None
    base = environ.get(keys.FLYTE_CONSOLE_URL, "").rstrip("/")
    if not base:
        endpoint = environ.get(keys.FLYTE_ENDPOINT_OVERRIDE, "")
        parsed = urlparse(endpoint)
        host = parsed.path.lstrip("/") if parsed.scheme == "dns" else parsed.netloc or parsed.path
        if not host:
            return None
        base = f"https://{host.removesuffix(':443')}"
    run = quote(run_name, safe="")
    return f"{base}/v2/domain/{domain}/project/{project}/runs/{run}?i={quote(action_name, safe='')}"


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
    environ: Mapping[str, str] | None = None,
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
        "url": console_url(environ or {}, project, domain, run_name, action_name),
    }
    if topology is not None:
        out.update(world_size=topology.world_size, num_workers=topology.num_workers)
        if plan.writer is None:
            out.update(rank=topology.rank, local_rank=topology.local_rank, worker_index=topology.worker_index)
    return {k: v for k, v in out.items() if v not in (None, "")}
