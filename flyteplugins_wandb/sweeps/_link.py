"""The Flyte UI link of a ``@wandb_sweep`` driver: the W&B sweeps page of its project."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..planning import decode_config
from ..task import DEFAULT_PROJECT, ICON, link_entity, web_host
from ._config import SweepConfig, decode_sweep_config
from ._server import sweep_url

__all__ = ["WandbSweep"]


@dataclass(frozen=True)
class WandbSweep:
    """A ``flyte.Link`` to the W&B sweeps page of the project a ``@wandb_sweep`` driver creates its sweep in.

    The sweep's own page cannot be named: the server chooses the id when the task runs (the driver logs that
    page, and ``SweepResult.url`` holds it). Project and entity come from ``config``, else the run context's sweep
    configuration, else its ``wandb_config``, else the launching process's ``WANDB_ENTITY``; without an entity the
    link opens the W&B home page. Host and entity follow the same rules as the run links.

    By hand, as ``flyteplugins-wandb`` users attach it: ``WandbSweep(project=..., entity=..., host=..., id=...,
    name=...)``; these keywords win over the rest, and with ``id`` the link opens that sweep's own page.
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
        run_cfg = decode_config(context)
        sweep = self.config or decode_sweep_config(context)
        host = web_host(self.host or run_cfg.host, os.environ)
        entity = link_entity(self.entity or (sweep.entity if sweep else None) or run_cfg.entity, os.environ)
        if not entity:
            return f"{host}/home"
        project_name = self.project or (sweep.project if sweep else None) or run_cfg.project or DEFAULT_PROJECT
        return sweep_url(host, entity, project_name, self.id)
