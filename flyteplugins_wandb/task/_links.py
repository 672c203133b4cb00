"""The Flyte UI link to the W&B pages a task's layout creates."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from .. import _keys as keys
from ..planning import (
    DEFAULT_HOST,
    LayoutError,
    LinkTarget,
    ParentRun,
    WandbConfig,
    base_id,
    decode_config,
    link_target,
    resolve_layout,
)
from ._web import link_entity, web_host

__all__ = ["DEFAULT_PROJECT", "ICON", "Wandb", "link_project", "safe_link"]

logger = logging.getLogger("flyteplugins_wandb")

# The keyword forms of flyteplugins-wandb's link folded into the link's config. ``host`` is not: a host in the
# launching run context wins over the one written on a hand-made link (see ``Wandb``).
_KEYWORDS: Final = ("project", "entity", "run_mode", "rank_scope")

ICON: Final = "https://wandb.ai/logo.svg"
# W&B files runs without a project under this one.
DEFAULT_PROJECT: Final = "uncategorized"


def link_project(configured: str | None, task_env: Mapping[str, str], environ: Mapping[str, str]) -> str | None:
    """The project a task's runs are created in, as far as a link can tell: the configured one; else
    ``WANDB_PROJECT`` in the task's declared environment (``TaskEnvironment(env_vars=...)``, what its pods get);
    else the launching process's ``WANDB_PROJECT`` (where a local run is created); None when none names one."""
    return configured or task_env.get(keys.WANDB_PROJECT) or environ.get(keys.WANDB_PROJECT) or None


def safe_link(render: Any, host: Any, what: str) -> str:
    """``render()``, or the host's home page if it raises: Flyte calls ``get_link`` in the launching process, where a
    bad setting must not fail the launch (the task that reads it fails, with the error)."""
    try:
        return str(render())
    except Exception as e:
        logger.warning("the %s link falls back to the W&B home page (%s: %s)", what, type(e).__name__, e)
        try:
            return f"{host()}/home"
        except Exception:
            return f"{DEFAULT_HOST}/home"


@dataclass(frozen=True)
class Wandb:
    """A ``flyte.Link`` to the W&B run (or group, in ``new`` mode) that a task's process ``worker_index`` logs to.

    ``@wandb_init`` attaches these itself. Settings given here take precedence over the launching run context, as
    they do for the decorator. ``num_workers`` is the task's node count, None for a task that is not distributed.
    A link cannot see the pod's whole environment, so project and entity should come from the decorator or
    ``wandb_config``; else ``WANDB_PROJECT``/``WANDB_ENTITY`` in the task's declared ``env_vars`` (``task_env``),
    else the launching process's (or, for the entity, wandb's settings file); where no project or no entity is
    named, the link opens the W&B home page. The host follows :func:`web_host`. ``get_link`` never raises: a
    setting it cannot use gives the home page (the task that reads it fails with the error).

    For a task that calls ``wandb.init`` itself, attach one by hand as ``flyteplugins-wandb`` users do:
    ``@env.task(links=[Wandb(project=..., entity=..., host=..., run_mode=..., rank_scope=..., id=..., name=...)])``.
    These keywords win over ``config``, except ``host``, where the launching run context's ``wandb_config(host=...)``
    wins; with ``id`` the link opens that very run, otherwise the run the layout names (``{run_name}-{action_name}``
    for a task that is not distributed, or the run id given as ``wandb_config(id=...)``). ``name`` is the label.
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
    task_env: tuple[tuple[str, str], ...] = ()
    """The task's declared environment variables (``@wandb_init`` copies them): its pods' ``WANDB_PROJECT`` and
    ``WANDB_ENTITY`` are where its runs are created."""

    def __post_init__(self) -> None:
        if not isinstance(self.config, WandbConfig):
            raise TypeError(f"config must be a WandbConfig, got {type(self.config).__name__}")
        if self.id is not None and (not isinstance(self.id, str) or not self.id):
            raise ValueError(f"id must be a non-empty str (a W&B run id), got {self.id!r}")
        if self.host is not None and (not isinstance(self.host, str) or not self.host):
            raise ValueError(f"host must be a non-empty str (the W&B web address), got {self.host!r}")
        given = {k: getattr(self, k) for k in _KEYWORDS if getattr(self, k) is not None}
        if given:
            # Validated as the decorator's settings are (run_mode/rank_scope choices), and kept as one config.
            object.__setattr__(self, "config", WandbConfig(**given).merged_over(self.config))

    def target(self, run_name: str, action_name: str, context: dict[str, str] | None) -> LinkTarget:
        """The page this link opens, for an action launched with ``context``. Raises :class:`LayoutError` where the
        layout cannot be built (``shared`` asked by the decorator of a plain task with no parent run; a run id
        given to a layout of several runs)."""
        launching = decode_config(context)
        layout = resolve_layout(self.config, launching)
        parent = ParentRun(launching.parent_run_id, launching.parent_group) if launching.parent_run_id else None
        user_id = self.config.merged_over(launching).id
        return link_target(
            launching.trial_run_id or base_id(run_name, action_name),
            layout.run_mode,
            layout.rank_scope,
            self.num_workers,
            self.worker_index or 0,
            layout.group,
            parent,
            self.per_attempt,
            run_id=None if launching.trial_run_id else user_id,
            # As the task will plan it: only a decorator's shared on a plain task needs a parent run.
            standalone_shared=self.num_workers is not None or layout.run_mode_source != "decorator",
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
        return safe_link(
            lambda: self._render(run_name, action_name, context),
            lambda: self._host(decode_config(context)),
            "Weights & Biases",
        )

    def _host(self, launching: WandbConfig) -> str:
        # Drawn in the launching process: its environment is the best guess at the pod's W&B account.
        return web_host(self.config.host or launching.host or self.host, os.environ)

    def _render(self, run_name: str, action_name: str, context: dict[str, str] | None) -> str:
        launching = decode_config(context)
        layout = resolve_layout(self.config, launching)
        host = self._host(launching)
        task_env = dict(self.task_env)
        entity = link_entity(layout.entity or task_env.get(keys.WANDB_ENTITY), os.environ)
        project = link_project(layout.project, task_env, os.environ)
        if not entity or not project:
            return f"{host}/home"
        home = f"{host}/{quote(entity)}/{quote(project)}"
        if self.id is not None:
            return f"{home}/runs/{quote(self.id, safe='{}.-_')}"
        try:
            target = self.target(run_name, action_name, context)
        except LayoutError:
            return home  # the task will refuse this layout: there is no run to open, its project is the page
        page = "runs" if target.kind == "run" else "groups"
        # Flyte fills in "{{.actionName}}" after rendering, so the braces must survive quoting.
        return f"{home}/{page}/{quote(target.name, safe='{}.-_')}"
