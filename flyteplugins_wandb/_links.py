"""The Flyte UI link to the W&B pages a task's layout creates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from ._config import WandbConfig, decode_config
from ._plan import LinkTarget, ParentRun, base_id, link_target
from ._resolve import resolve_layout

__all__ = ["DEFAULT_PROJECT", "ICON", "Wandb"]

ICON: Final = "https://wandb.ai/logo.svg"
# W&B files runs without a project under this one.
DEFAULT_PROJECT: Final = "uncategorized"


@dataclass(frozen=True)
class Wandb:
    """A ``flyte.Link`` to the W&B run (or group, in ``new`` mode) that a task's process ``worker_index`` logs to.

    ``@wandb_init`` attaches these itself. Settings given here take precedence over the launching run context, as
    they do for the decorator. ``num_workers`` is the task's node count, None for a task that is not distributed.
    A link cannot see the pod's environment, so project and entity should come from the decorator or
    ``wandb_config``; without an entity the link opens the W&B home page.
    """

    config: WandbConfig = field(default_factory=WandbConfig)
    num_workers: int | None = None
    worker_index: int | None = None
    per_attempt: bool = False
    """The task opens a fresh run per Flyte attempt: the link shows their group."""
    name: str = "Weights & Biases"
    icon_uri: str = ICON

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
        layout = resolve_layout(self.config, decode_config(context))
        if not layout.entity:
            return f"{layout.host}/home"
        target = self.target(run_name, action_name, context)
        page = "runs" if target.kind == "run" else "groups"
        # Flyte fills in "{{.actionName}}" after rendering, so the braces must survive quoting.
        name = quote(target.name, safe="{}.-_")
        return f"{layout.host}/{quote(layout.entity)}/{quote(layout.project or DEFAULT_PROJECT)}/{page}/{name}"
