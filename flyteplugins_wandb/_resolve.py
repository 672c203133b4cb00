"""Precedence: ``@wandb_init`` arguments > run context (``wandb_config``) > ``WANDB_*`` environment > defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ._config import WandbConfig
from ._options import RANK_SCOPES, RUN_MODES, WANDB_MODES, RankScope, RunMode, WandbMode, check_choice

__all__ = ["DEFAULT_HOST", "Layout", "Resolved", "resolve", "resolve_layout"]

DEFAULT_HOST: Final = "https://wandb.ai"
DEFAULT_RUN_MODE: Final[RunMode] = "auto"
DEFAULT_RANK_SCOPE: Final[RankScope] = "global"

# W&B's historical spellings of WANDB_MODE.
_MODE_ALIASES: Final = {"dryrun": "offline", "run": "online"}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Layout:
    """What both the runtime and the links need: the layout and where its pages live."""

    run_mode: RunMode
    rank_scope: RankScope
    project: str | None
    entity: str | None
    host: str
    group: str | None


def resolve_layout(decorator: WandbConfig, context: WandbConfig) -> Layout:
    """The layout from the decorator and the run context only (a link sees no pod environment)."""
    cfg = decorator.merged_over(context)
    run_mode: RunMode = check_choice("run_mode", cfg.run_mode or DEFAULT_RUN_MODE, RUN_MODES)  # type: ignore[assignment]
    rank_scope: RankScope = check_choice(  # type: ignore[assignment]
        "rank_scope", cfg.rank_scope or DEFAULT_RANK_SCOPE, RANK_SCOPES
    )
    return Layout(run_mode, rank_scope, cfg.project, cfg.entity, (cfg.host or DEFAULT_HOST).rstrip("/"), cfg.group)


@dataclass(frozen=True)
class Resolved:
    """Everything a process needs to open its run, after precedence."""

    config: WandbConfig
    """Decorator over run context, field by field."""
    layout: Layout
    wandb_mode: WandbMode
    group: str | None
    """The user's group: decorator, run context, then ``WANDB_RUN_GROUP``."""
    disabled_by_env: bool
    """``WANDB_DISABLED`` is true: no run and no wandb import at all."""


def resolve(decorator: WandbConfig, context: WandbConfig, environ: Mapping[str, str]) -> Resolved:
    config = decorator.merged_over(context)
    layout = resolve_layout(decorator, context)
    disabled = environ.get("WANDB_DISABLED", "").strip().lower() in _TRUE
    if config.mode is not None:
        mode = config.mode
    elif environ.get("WANDB_MODE"):
        raw = environ["WANDB_MODE"].strip().lower()
        mode = _MODE_ALIASES.get(raw, raw)
        if mode not in WANDB_MODES:
            raise ValueError(f"WANDB_MODE must be one of {WANDB_MODES}, got {environ['WANDB_MODE']!r}")
    else:
        mode = "online"
    if disabled:
        mode = "disabled"
    group = config.group if config.group is not None else environ.get("WANDB_RUN_GROUP") or None
    return Resolved(config, layout, mode, group, disabled)  # type: ignore[arg-type]
