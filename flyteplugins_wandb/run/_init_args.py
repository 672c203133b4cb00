"""From a plan and resolved settings to the keyword arguments of ``wandb.init``."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, Final

from .. import _keys as keys
from ..planning import INIT_FIELDS, Resolved, RunPlan

__all__ = ["PER_PROCESS_SETTINGS", "RUN_METADATA", "build_init_kwargs", "redact_secrets", "writer_dir"]

logger = logging.getLogger("flyteplugins_wandb")

_SECRET_WORDS: Final = frozenset(
    {"key", "apikey", "token", "secret", "secrets", "password", "passwd", "pwd", "credential", "credentials"}
)
_WORD: Final = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def _looks_secret(name: str) -> bool:
    return any(word.lower() in _SECRET_WORDS for word in _WORD.findall(name))


def redact_secrets(config: Mapping[str, Any], path: str = "") -> tuple[dict[str, Any], list[str]]:
    """``config`` without the entries whose names look secret (key, token, secret, password...), at any depth,
    and the dotted paths that were dropped."""
    clean: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in config.items():
        where = f"{path}{name}"
        if _looks_secret(str(name)):
            dropped.append(where)
        elif isinstance(value, Mapping):
            clean[name], inner = redact_secrets(value, f"{where}.")
            dropped.extend(inner)
        else:
            clean[name] = value
    return clean, dropped


def writer_dir(root: str, run_id: str, label: str) -> str:
    """A shared-mode writer's own directory: writers of one run in one directory overwrite each other's files
    (offline, all but one writer's history would be lost)."""
    return os.path.join(root, "wandb-writers", run_id, label)


PER_PROCESS_SETTINGS: Final = frozenset(
    {"mode", "run_id", "run_group", "resume", "x_label", "x_primary", "x_update_finish_state", "sweep_id",
     "x_stats_gpu_device_ids"}
)  # fmt: skip
"""The ``wandb.Settings`` fields that :func:`build_init_kwargs` sets per process, from the layout (``run_id``,
``run_group``, ``resume`` and ``mode`` through the ``id``/``group``/``resume``/``mode`` keywords). A user's
settings may not set them: the value would contradict the layout on some rank."""

RUN_METADATA: Final = ("name", "notes", "job_type", "tags", "group", "config")
"""``wandb.init`` keywords that set run-level fields: in a shared run only the primary writer sends them, since a
later writer would overwrite what the primary set."""


def build_init_kwargs(
    p: RunPlan,
    resolved: Resolved,
    settings: Any,
    environ: Mapping[str, str],
    provenance: Mapping[str, Any] | None = None,
    init_timeout: float | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``wandb.init`` for this plan. ``settings`` (a ``wandb.Settings``) is copied.
    ``init_timeout`` is set only when given (the decorator's ``start_timeout``); otherwise wandb's own setting
    (``WANDB_INIT_TIMEOUT``, the user's settings) applies."""
    cfg = resolved.config
    kwargs: dict[str, Any] = dict(cfg.init_kwargs or {})
    for name in INIT_FIELDS:
        value = getattr(cfg, name)
        if value is not None:
            kwargs[name] = list(value) if isinstance(value, tuple) else value
    if "job_type" not in kwargs and p.role is not None and not environ.get(keys.WANDB_JOB_TYPE):
        kwargs["job_type"] = p.role
    config, dropped = redact_secrets(dict(cfg.config or {}))
    if dropped:
        logger.warning("not writing secret-looking config entries to run %s: %s", p.run_id, ", ".join(dropped))
    if provenance:
        config["flyte"] = dict(provenance)
    if config:
        kwargs["config"] = config
    kwargs.update(id=p.run_id, group=p.group, mode=resolved.wandb_mode, reinit="create_new")
    # Flyte retries and elastic restarts reopen the same id: continue its history instead of clashing with it.
    kwargs.setdefault("resume", "allow")

    updates: dict[str, Any] = {}
    writer = p.writer
    if writer is not None and not writer.primary:
        for name in RUN_METADATA:
            kwargs.pop(name, None)
    if writer is not None and resolved.wandb_mode != "disabled":
        updates.update(x_label=writer.label, x_primary=writer.primary, x_update_finish_state=writer.primary)
        if resolved.wandb_mode == "online":
            # Settings(mode="shared") also overrides an offline WANDB_MODE, so only online runs are made shared.
            updates["mode"] = "shared"
            kwargs.pop("mode")
        kwargs["dir"] = writer_dir(cfg.dir or environ.get(keys.WANDB_DIR) or os.getcwd(), str(p.run_id), writer.label)
        os.makedirs(kwargs["dir"], exist_ok=True)
    if cfg.trial_sweep_id and resolved.wandb_mode != "disabled":
        updates["sweep_id"] = cfg.trial_sweep_id
    gpus = _own_gpu(p, environ)
    if gpus is not None:
        updates["x_stats_gpu_device_ids"] = gpus
    unlisted = set(updates) - PER_PROCESS_SETTINGS
    if unlisted:  # the list is what users' settings are checked against; it must name all that is set here
        raise AssertionError(f"settings {sorted(unlisted)} are set per process but not in PER_PROCESS_SETTINGS")
    if init_timeout is not None:
        updates["init_timeout"] = init_timeout
    if settings is not None:
        kwargs["settings"] = settings.model_copy(update=updates)
    elif updates:
        import wandb

        kwargs["settings"] = wandb.Settings(**updates)
    return kwargs


def _own_gpu(p: RunPlan, environ: Mapping[str, str]) -> list[int] | None:
    """The NVML index of this rank's GPU, when its run should not sample the node's other GPUs (one run or writer
    per rank). Elastic does not narrow CUDA_VISIBLE_DEVICES per rank, so local rank i drives visible device i."""
    if p.gpu_index is None or not (p.writer is not None or p.run_mode == "new"):
        return None
    torch = sys.modules.get("torch")  # never import torch for this: a process without it drives no GPU
    if torch is None or not torch.cuda.is_available():
        return None
    visible = environ.get(keys.CUDA_VISIBLE_DEVICES)
    if visible is None:
        return [p.gpu_index]
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if p.gpu_index < len(ids) and ids[p.gpu_index].isdigit():
        return [int(ids[p.gpu_index])]
    return None  # UUIDs or too few devices: sampling every GPU beats sampling the wrong one
