"""The Flyte UI link of a ``@wandb_sweep`` driver: the W&B sweeps page of its project."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._config import decode_config
from .._links import DEFAULT_PROJECT, ICON
from .._resolve import DEFAULT_HOST
from ._config import SweepConfig, decode_sweep_config
from ._server import sweep_url

__all__ = ["WandbSweep"]


@dataclass(frozen=True)
class WandbSweep:
    """A ``flyte.Link`` to the W&B sweeps page of the project a ``@wandb_sweep`` driver creates its sweep in.

    The sweep's own page cannot be named: the server chooses the id when the task runs (the driver logs that
    page, and ``SweepResult.url`` holds it). Project and entity come from ``config``, else the run context's sweep
    configuration, else its ``wandb_config``; without an entity the link opens the W&B home page.
    """

    config: SweepConfig | None = None
    name: str = "Weights & Biases sweep"
    icon_uri: str = ICON

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
        host = (run_cfg.host or DEFAULT_HOST).rstrip("/")
        entity = (sweep.entity if sweep else None) or run_cfg.entity
        if not entity:
            return f"{host}/home"
        return sweep_url(host, entity, (sweep.project if sweep else None) or run_cfg.project or DEFAULT_PROJECT)
