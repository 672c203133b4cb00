"""What is in force for the current task, for code written against ``flyteplugins-wandb``: its W&B settings and
its run's local directory."""

from __future__ import annotations

from ..planning import WandbConfig, decode_config
from ._current import current_placement, get_wandb_run

__all__ = ["get_wandb_context", "get_wandb_run_dir"]


def get_wandb_context() -> WandbConfig | None:
    """The W&B settings in force for the current Flyte task, or None outside a task and in a task that has no run
    and whose run context holds no W&B settings.

    In a ``@wandb_init`` task: its decorator's arguments over the run context's ``wandb_config(...)``, field by
    field, as its run was opened with them. In another task: the run context's settings as the task received them
    (inherited from a decorated parent, say). Attributes: ``project``, ``entity``, ``tags``, ``config``,
    ``run_mode``, ``rank_scope``, ``name``, ``group``, ``mode``, ``host``, ...; unset fields are None (the
    environment's ``WANDB_*`` variables and the defaults are not folded in).
    """
    import flyte

    tctx = flyte.ctx()
    if not tctx:  # Flyte's null context is falsy
        return None
    placement = current_placement.get()
    if placement is not None and placement.settings is not None and placement.is_here():
        return placement.settings
    settings = decode_config(tctx.custom_context)
    return None if settings == WandbConfig() else settings


def get_wandb_run_dir() -> str | None:
    """The local directory of this process's run (``run.dir``: where its files are written before upload), or
    None where this process has no run."""
    run = get_wandb_run()
    return None if run is None else str(run.dir)
