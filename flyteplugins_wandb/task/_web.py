"""Where W&B's web pages are, for every page this plugin points at (run links, sweep links, the report tab): one
rule for the host and one for the entity, applied in the process that draws the link."""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path

from .. import _keys as keys
from ..planning import DEFAULT_HOST
from ..run import DEFAULT_BASE_URL

__all__ = ["link_entity", "web_host"]


def web_host(configured: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The W&B web address: ``host`` from the decorator or run context; else ``WANDB_BASE_URL`` when it names a
    private W&B server (whose pages share its address); else ``https://wandb.ai``. No trailing slash."""
    if configured:
        return configured.rstrip("/")
    base = (environ.get(keys.WANDB_BASE_URL) or "").rstrip("/")
    return base if base and base != DEFAULT_BASE_URL else DEFAULT_HOST


def link_entity(configured: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The entity a page lives under: the configured one; else ``WANDB_ENTITY``; else the default entity in
    wandb's own settings file (``wandb init`` writes it); None when none of them names one."""
    if configured:
        return configured
    if environ.get(keys.WANDB_ENTITY):
        return environ[keys.WANDB_ENTITY]
    return _settings_entity(environ)


def _settings_entity(environ: Mapping[str, str]) -> str | None:
    folder = environ.get(keys.WANDB_CONFIG_DIR) or os.path.join(os.path.expanduser("~"), ".config", "wandb")
    path = Path(folder, "settings")
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error):
        return None  # an unreadable settings file only costs the fallback
    return parser.get("default", "entity", fallback=None) or None
