"""The Flyte UI link of a ``@wandb_sweep`` driver: the W&B page of its sweep, or its project's sweeps."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from .. import _keys as keys
from ..planning import decode_config
from ..task import ICON, link_entity, link_project, safe_link, web_host
from ._config import SweepConfig, decode_sweep_config
from ._server import sweep_url

__all__ = ["WandbSweep"]


@dataclass(frozen=True)
class WandbSweep:
    """A ``flyte.Link`` to the W&B page of the sweep a ``@wandb_sweep`` task works for.

    A task launched inside a sweep (an agent task of a ``@wandb_sweep`` driver) links that very sweep: its id is in
    the launching run context. A driver's own sweep cannot be named when it is launched (the server chooses the id
    when the task runs; the driver logs that page, and ``SweepResult.url`` holds it), so its link opens the
    project's sweeps page. Project and entity come from ``config``, else the run context's sweep configuration,
    else its ``wandb_config``, else the launching process's ``WANDB_PROJECT``/``WANDB_ENTITY``; where no project
    or no entity is named, the link opens the W&B home page. The host follows the run links' rule, with the run
    context's ``host`` before the one written on the link. ``get_link`` never raises: a sweep configuration in the
    context that cannot be read gives the home page here, and fails the task that reads it.

    By hand, as ``flyteplugins-wandb`` users attach it: ``WandbSweep(project=..., entity=..., host=..., id=...,
    name=...)``; project, entity and id win over the rest, and with ``id`` the link opens that sweep's own page.
    """

    config: SweepConfig | None = None
    name: str = "Weights & Biases sweep"
    icon_uri: str = ICON
    project: str | None = None
    entity: str | None = None
    host: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        for key in ("project", "entity", "host", "id"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{key} must be a non-empty str, got {value!r}")

    def get_link(
        self,
        run_name: str,
        project: str,
        domain: str,
        context: dict[str, str],
        parent_action_name: str,
        action_name: str,
        pod_name: str,
        **kwargs: Any,
    ) -> str:
        return safe_link(
            lambda: self._render(context),
            lambda: web_host(decode_config(context).host or self.host, os.environ),
            "Weights & Biases sweep",
        )

    def _render(self, context: dict[str, str]) -> str:
        run_cfg = decode_config(context)
        sweep = self.config or decode_sweep_config(context)
        host = web_host(run_cfg.host or self.host, os.environ)
        home = _created_sweep(context, self.config)
        entity = link_entity(
            self.entity or (sweep.entity if sweep else None) or (home or {}).get("entity") or run_cfg.entity,
            os.environ,
        )
        project = link_project(
            self.project or (sweep.project if sweep else None) or (home or {}).get("project") or run_cfg.project,
            {},
            os.environ,
        )
        if not entity or not project:
            return f"{host}/home"
        return sweep_url(host, entity, project, self.id or (home or {}).get("sweep_id"))


def _created_sweep(context: dict[str, str], own: SweepConfig | None) -> dict[str, Any] | None:
    """The online sweep the launching task works for (id, entity, project), which a ``@wandb_sweep`` task launched
    there joins, unless it has a configuration of its own that differs (it then opens a sweep of its own)."""
    sweep_id = context.get(keys.SWEEP_ID_KEY)
    if not sweep_id or (own is not None and own != decode_sweep_config(context)):
        return None
    raw = context.get(keys.SWEEP_HOME_KEY)
    home: dict[str, Any] = {}
    if raw:
        home = json.loads(raw)
        if not isinstance(home, dict) or home.get("sweep_id") != sweep_id or not home.get("online", True):
            return None  # an offline sweep has no page on the server
    return {"sweep_id": sweep_id, "entity": home.get("entity"), "project": home.get("project")}
