"""The W&B server's sweep protocol (GraphQL over HTTP), with a timeout on every call and no prompt ever.

W&B's own sweep functions retry for long stretches, can ask for a key on a terminal, and start a service process;
a sweep driver on a cluster needs a bounded answer instead: the server answers within ``timeout`` seconds, or the
sweep goes on without it. The queries are those W&B's agent sends (``upsertSweep``, ``createAgent``,
``agentHeartbeat``), so any W&B server that serves W&B's agent serves this one.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from .._options import check_seconds
from ._config import SweepConfig

__all__ = [
    "CreatedSweep",
    "SweepServer",
    "SweepServerAuthError",
    "SweepServerError",
    "SweepServerUnreachable",
    "sweep_url",
]

_AGENT: Final = "flyteplugins-wandb"
_VIEWER: Final = "query Viewer { viewer { id entity } }"
_UPSERT_SWEEP: Final = """
mutation UpsertSweep($config: String, $description: String, $entityName: String, $projectName: String,
                     $displayName: String, $priorRunsFilters: JSONString) {
  upsertSweep(input: {config: $config, description: $description, entityName: $entityName,
                      projectName: $projectName, displayName: $displayName, priorRunsFilters: $priorRunsFilters}) {
    sweep { name project { name entity { name } } }
    configValidationWarnings
  }
}"""
_CREATE_AGENT: Final = """
mutation CreateAgent($host: String!, $projectName: String, $entityName: String, $sweep: String!) {
  createAgent(input: {host: $host, projectName: $projectName, entityName: $entityName, sweep: $sweep}) {
    agent { id }
  }
}"""
_HEARTBEAT: Final = """
mutation Heartbeat($id: ID!, $metrics: JSONString, $runState: JSONString) {
  agentHeartbeat(input: {id: $id, metrics: $metrics, runState: $runState}) {
    agent { id }
    commands
  }
}"""


class SweepServerError(RuntimeError):
    """The W&B server answered, but not with what the sweep needs (an error it reported, or a malformed reply)."""


class SweepServerUnreachable(SweepServerError):
    """No answer within the timeout: refused, unresolvable, timed out, or a server-side (5xx) failure."""


class SweepServerAuthError(SweepServerError):
    """The server refused the API key (HTTP 401/403)."""


@dataclass(frozen=True)
class CreatedSweep:
    """A sweep as the server filed it: its id (the server's name for it), entity and project."""

    sweep_id: str
    entity: str | None
    project: str | None
    warnings: tuple[str, ...] = ()


def sweep_url(host: str, entity: str, project: str, sweep_id: str | None = None) -> str:
    """The web page of a sweep, or of the project's sweeps when ``sweep_id`` is None."""
    page = f"{host.rstrip('/')}/{quote(entity)}/{quote(project)}/sweeps"
    return page if sweep_id is None else f"{page}/{quote(sweep_id)}"


class SweepServer:
    """A client of one W&B server's GraphQL endpoint. Every call returns or raises within ``timeout`` seconds
    per network operation; nothing is retried here (the agent loop decides what a failure means)."""

    def __init__(self, base_url: str, key: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = check_seconds("timeout", timeout)
        self._auth = "Basic " + base64.b64encode(f"api:{key}".encode()).decode()

    def _call(self, query: str, variables: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": dict(variables)}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/graphql",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": self._auth, "User-Agent": _AGENT},
            method="POST",
        )
        limit = self.timeout if timeout is None else timeout
        try:
            with urllib.request.urlopen(request, timeout=limit) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise SweepServerAuthError(
                    f"{self.base_url} refused the W&B API key (HTTP {e.code}); check WANDB_API_KEY"
                ) from None
            if e.code >= 500 or e.code == 429:
                raise SweepServerUnreachable(f"{self.base_url} answered HTTP {e.code}") from None
            raise SweepServerError(f"{self.base_url} answered HTTP {e.code}: {_text(e.read())}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise SweepServerUnreachable(f"no answer from {self.base_url} within {limit:g}s ({reason})") from None
        try:
            reply = json.loads(raw)
        except json.JSONDecodeError:
            raise SweepServerError(f"{self.base_url} sent a reply that is not JSON: {_text(raw)}") from None
        if not isinstance(reply, dict):
            raise SweepServerError(f"{self.base_url} sent an unexpected reply: {_text(raw)}")
        if reply.get("errors"):
            messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in reply["errors"])
            raise SweepServerError(f"{self.base_url} reported: {messages}")
        data = reply.get("data")
        if not isinstance(data, dict):
            raise SweepServerError(f"{self.base_url} sent no data: {_text(raw)}")
        return data

    def probe(self, timeout: float) -> str | None:
        """Check, within ``timeout`` seconds, that the server answers and accepts the key; the key's default
        entity. Raises :class:`SweepServerUnreachable` or :class:`SweepServerAuthError` otherwise."""
        data = self._call(_VIEWER, {}, timeout=timeout)
        viewer = data.get("viewer")
        if not isinstance(viewer, dict):
            raise SweepServerAuthError(f"{self.base_url} knows no user for the W&B API key; check WANDB_API_KEY")
        entity = viewer.get("entity")
        return str(entity) if entity else None

    def create_sweep(self, config: SweepConfig, *, entity: str | None, project: str | None) -> CreatedSweep:
        """Create the sweep; the server validates the configuration too and names the sweep."""
        import yaml  # a dependency of wandb; the server reads the sweep configuration as YAML

        spec = config.to_wandb()
        data = self._call(
            _UPSERT_SWEEP,
            {
                "config": yaml.safe_dump(spec, sort_keys=False),
                "description": spec.get("description"),
                "entityName": entity,
                "projectName": project,
                "displayName": spec.get("name"),
                # As wandb.sweep(prior_runs=...) sends them: existing runs the server attaches to the new sweep.
                "priorRunsFilters": (
                    json.dumps({"$or": [{"name": r} for r in config.prior_runs]}) if config.prior_runs else None
                ),
            },
        )
        try:
            sweep = data["upsertSweep"]["sweep"]
            name = str(sweep["name"])
        except (KeyError, TypeError):
            raise SweepServerError(f"{self.base_url} created no sweep: {data!r}") from None
        filed = sweep.get("project") or {}
        warnings = data["upsertSweep"].get("configValidationWarnings") or []
        return CreatedSweep(
            sweep_id=name,
            entity=((filed.get("entity") or {}).get("name")) or entity,
            project=filed.get("name") or project,
            warnings=tuple(str(w) for w in warnings),
        )

    def register_agent(self, sweep_id: str, *, entity: str | None, project: str | None, host: str) -> str:
        """Register an agent of the sweep; its id."""
        data = self._call(
            _CREATE_AGENT, {"host": host, "entityName": entity, "projectName": project, "sweep": sweep_id}
        )
        try:
            return str(data["createAgent"]["agent"]["id"])
        except (KeyError, TypeError):
            raise SweepServerError(f"{self.base_url} registered no agent: {data!r}") from None

    def heartbeat(self, agent_id: str, running: Mapping[str, bool]) -> list[dict[str, Any]]:
        """Report the agent's running runs (``{run_id: True}``); the commands the server sends back
        (``{"type": "run", "run_id": ..., "args": {name: {"value": v}}}``, ``stop``, ``exit``)."""
        data = self._call(
            _HEARTBEAT, {"id": agent_id, "metrics": json.dumps({}), "runState": json.dumps(dict(running))}
        )
        try:
            raw = data["agentHeartbeat"]["commands"]
            commands = json.loads(raw) if isinstance(raw, str) else raw
        except (KeyError, TypeError, json.JSONDecodeError):
            raise SweepServerError(f"{self.base_url} sent a malformed heartbeat reply: {data!r}") from None
        if not isinstance(commands, list) or not all(isinstance(c, dict) for c in commands):
            raise SweepServerError(f"{self.base_url} sent malformed commands: {commands!r}")
        return commands


def _text(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= 300 else text[:300] + "..."
