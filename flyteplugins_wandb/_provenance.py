"""Where a run came from, written into its config under one key (``flyte``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlparse

from ._plan import RunPlan
from ._topology import DistributedInfo

__all__ = ["CONSOLE_URL_ENV", "console_url", "provenance"]

CONSOLE_URL_ENV: Final = "FLYTE_CONSOLE_URL"
"""Set to the Flyte console's address (``https://flyte.example.com``) to override the one derived from the
endpoint that Flyte gives its pods."""
# The endpoint Flyte injects into task pods, e.g. "dns:///flyte.example.com:443".
_ENDPOINT_ENV: Final = "_U_EP_OVERRIDE"


def console_url(
    environ: Mapping[str, str], project: str | None, domain: str | None, run_name: str, action_name: str
) -> str | None:
    """The Flyte console page of this action, when the console's address is known."""
    if not project or not domain:
        return None
    base = environ.get(CONSOLE_URL_ENV, "").rstrip("/")
    if not base:
        endpoint = environ.get(_ENDPOINT_ENV, "")
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
