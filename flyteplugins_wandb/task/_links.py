"""The Flyte UI link to the W&B pages a task's layout creates."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from ..planning import LinkTarget, ParentRun, WandbConfig, base_id, decode_config, link_target, resolve_layout
from ._web import link_entity, web_host

__all__ = ["DEFAULT_PROJECT", "ICON", "Wandb"]

# The keyword forms of flyteplugins-wandb's link, folded into the link's config.
_KEYWORDS: Final = ("project", "entity", "host", "run_mode", "rank_scope")

ICON: Final = "https://wandb.ai/logo.svg"
# W&B files runs without a project under this one.
DEFAULT_PROJECT: Final = "uncategorized"


@dataclass(frozen=True)
class Wandb:
    """A ``flyte.Link`` to the W&B run (or group, in ``new`` mode) that a task's process ``worker_index`` logs to.

    ``@wandb_init`` attaches these itself. Settings given here take precedence over the launching run context, as
    they do for the decorator. ``num_workers`` is the task's node count, None for a task that is not distributed.
    A link cannot see the pod's environment, so project and entity should come from the decorator or
    ``wandb_config``; else the launching process's ``WANDB_ENTITY`` (or wandb's settings file) names the entity,
    and without any the link opens the W&B home page. The host follows :func:`web_host` there too.

    For a task that calls ``wandb.init`` itself, attach one by hand as ``flyteplugins-wandb`` users do:
    ``@env.task(links=[Wandb(project=..., entity=..., host=..., run_mode=..., rank_scope=..., id=..., name=...)])``.
    These keywords win over ``config``; with ``id`` the link opens that very run, otherwise the run the layout
    names (``{run_name}-{action_name}`` for a task that is not distributed). ``name`` is the link's label.
    """

    config: WandbConfig = field(default_factory=WandbConfig)
    num_workers: int | None = None
    worker_index: int | None = None
    per_attempt: bool = False
    """The task opens a fresh run per Flyte attempt: the link shows their group."""
    name: str = "Weights & Biases"
    icon_uri: str = ICON
    project: str | None = None
    entity: str | None = None
    host: str | None = None
    run_mode: str | None = None
    rank_scope: str | None = None
    id: str | None = None
    """A run to link to, whatever the layout (a task that opens its run with ``wandb.init(id=...)`` itself)."""

    def __post_init__(self) -> None:
        if not isinstance(self.config, WandbConfig):
            raise TypeError(f"config must be a WandbConfig, got {type(self.config).__name__}")
        if self.id is not None and (not isinstance(self.id, str) or not self.id):
            raise ValueError(f"id must be a non-empty str (a W&B run id), got {self.id!r}")
        given = {k: getattr(self, k) for k in _KEYWORDS if getattr(self, k) is not None}
        if given:
            # Validated as the decorator's settings are (run_mode/rank_scope choices), and kept as one config.
            object.__setattr__(self, "config", WandbConfig(**given).merged_over(self.config))

    def target(self, run_name: str, action_name: str, context: dict[str, str] | None) -> LinkTarget:
        """The page this link opens, for an action launched with ``context``."""
        launching = decode_config(context)
        layout = resolve_layout(self.config, launching)
        parent = ParentRun(launching.parent_run_id, launching.parent_group) if launching.parent_run_id else None
        return link_target(
            launching.trial_run_id or base_id(run_name, action_name),
            layout.run_mode,
            layout.rank_scope,
            self.num_workers,
            self.worker_index or 0,
            layout.group,
            parent,
            self.per_attempt,
        )

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
        launching = decode_config(context)
        layout = resolve_layout(self.config, launching)
        # Drawn in the launching process: its environment is the best guess at the pod's W&B account.
        host = web_host(layout.host, os.environ)
        entity = link_entity(layout.entity, os.environ)
        if not entity:
            return f"{host}/home"
        if self.id is not None:
            page, name = "runs", quote(self.id, safe="{}.-_")
        else:
            target = self.target(run_name, action_name, context)
            page = "runs" if target.kind == "run" else "groups"
            # Flyte fills in "{{.actionName}}" after rendering, so the braces must survive quoting.
            name = quote(target.name, safe="{}.-_")
        return f"{host}/{quote(entity)}/{quote(layout.project or DEFAULT_PROJECT)}/{page}/{name}"
