"""The W&B server's sweep protocol (GraphQL over HTTP), with a timeout on every call and no prompt ever.

W&B's own sweep functions retry for long stretches, can ask for a key on a terminal, and start a service process;
a sweep driver on a cluster needs a bounded answer instead: the server answers within ``timeout`` seconds, or the
sweep goes on without it. The queries are those W&B's agent sends (``upsertSweep``, ``createAgent``,
``agentHeartbeat``), so any W&B server that serves W&B's agent serves this one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from ..readback import WandbApi, WandbApiAuthError, WandbApiError, WandbApiUnreachable
from ._config import SweepConfig

__all__ = [
    "CreatedSweep",
    "SweepServer",
    "SweepServerAuthError",
    "SweepServerError",
    "SweepServerUnreachable",
    "sweep_url",
]

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


# The sweep client is a W&B API client: the same transport, bounds and errors, under the names sweeps raise.
SweepServerError = WandbApiError
SweepServerUnreachable = WandbApiUnreachable
SweepServerAuthError = WandbApiAuthError


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


class SweepServer(WandbApi):
    """A client of one W&B server's sweep API. Every call returns or raises within ``timeout`` seconds per
    network operation; nothing is retried here (the agent loop decides what a failure means)."""

    def probe(self, timeout: float) -> str | None:
        """Check, within ``timeout`` seconds, that the server answers and accepts the key; the key's default
        entity. Raises :class:`SweepServerUnreachable` or :class:`SweepServerAuthError` otherwise."""
        return self.default_entity(timeout)

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
