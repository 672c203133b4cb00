"""Precedence: ``@wandb_init`` arguments > run context (``wandb_config``) > ``WANDB_*`` environment > defaults.

Each setting is resolved here once, into one value: the runtime and the links read the same :class:`Layout`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from .. import _keys as keys
from ._config import WandbConfig
from ._options import WANDB_MODES, RankScope, RunMode, WandbMode

__all__ = ["DEFAULT_HOST", "Layout", "LayoutSource", "Resolved", "resolve", "resolve_layout"]

DEFAULT_HOST: Final = "https://wandb.ai"
DEFAULT_RUN_MODE: Final[RunMode] = "auto"
DEFAULT_RANK_SCOPE: Final[RankScope] = "global"

# W&B's historical spellings of WANDB_MODE.
_MODE_ALIASES: Final = {"dryrun": "offline", "run": "online"}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})

LayoutSource = Literal["decorator", "context", "default"]
"""Where ``run_mode`` came from."""


@dataclass(frozen=True)
class Layout:
    """What both the runtime and the links need: the layout and where its pages live."""

    run_mode: RunMode
    rank_scope: RankScope
    project: str | None
    entity: str | None
    host: str | None
    """The configured W&B web address (decorator, then run context); ``_web.web_host`` applies the default."""
    group: str | None
    """The user's group: decorator, run context, then (in a process, not a link) ``WANDB_RUN_GROUP``."""
    run_mode_source: LayoutSource = "default"
    """A shared layout that came from the run context reaches plain tasks too (they get a run of their own);
    only a decorator asking for ``shared`` on a plain task needs a parent run to share."""


def resolve_layout(decorator: WandbConfig, context: WandbConfig, environ: Mapping[str, str] | None = None) -> Layout:
    """The layout from the decorator, the run context and, where given, the process's environment (a link sees
    no pod environment, so it passes none)."""
    cfg = decorator.merged_over(context)
    source: LayoutSource = (
        "decorator" if decorator.run_mode is not None else "context" if context.run_mode is not None else "default"
    )
    group = cfg.group
    if group is None and environ is not None:
        group = environ.get(keys.WANDB_RUN_GROUP) or None
    return Layout(
        run_mode=cfg.run_mode if cfg.run_mode is not None else DEFAULT_RUN_MODE,
        rank_scope=cfg.rank_scope if cfg.rank_scope is not None else DEFAULT_RANK_SCOPE,
        project=cfg.project,
        entity=cfg.entity,
        host=cfg.host,
        group=group,
        run_mode_source=source,
    )


@dataclass(frozen=True)
class Resolved:
    """Everything a process needs to open its run, after precedence."""

    config: WandbConfig
    """Decorator over run context, field by field."""
    layout: Layout
    wandb_mode: WandbMode
    disabled_by_env: bool
    """``WANDB_DISABLED`` is true: no run and no wandb import at all."""


def resolve(decorator: WandbConfig, context: WandbConfig, environ: Mapping[str, str]) -> Resolved:
    config = decorator.merged_over(context)
    disabled = environ.get(keys.WANDB_DISABLED, "").strip().lower() in _TRUE
    mode: WandbMode = "disabled" if disabled else config.mode if config.mode is not None else _env_mode(environ)
    return Resolved(config, resolve_layout(decorator, context, environ), mode, disabled)


def _env_mode(environ: Mapping[str, str]) -> WandbMode:
    raw = environ.get(keys.WANDB_MODE, "").strip().lower()
    if not raw:
        return "online"
    mode = _MODE_ALIASES.get(raw, raw)
    for choice in WANDB_MODES:
        if mode == choice:
            return choice  # type: ignore[return-value]
    raise ValueError(f"WANDB_MODE must be one of {WANDB_MODES}, got {environ[keys.WANDB_MODE]!r}")
