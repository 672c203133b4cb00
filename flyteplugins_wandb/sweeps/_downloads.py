"""Read every run of a finished sweep back from the W&B server, one directory per run; a run that fails to
download is reported and the others still come."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .. import _keys as keys
from ..readback import (
    DownloadError,
    RunAddress,
    WandbApi,
    WandbApiAuthError,
    WandbApiError,
    default_root,
    download_run,
    traced,
)
from ..run import get_wandb_context
from ._run import SweepHome, _context, get_wandb_sweep_id

if TYPE_CHECKING:
    import flyte.io

__all__ = ["download_wandb_sweep_dirs", "download_wandb_sweep_logs"]

logger = logging.getLogger("flyteplugins_wandb")


def _home(sweep_id: str) -> SweepHome | None:
    """The sweep ``@wandb_sweep`` opened above this task, if it is ``sweep_id``: it knows its entity and project."""
    raw = _context().get(keys.SWEEP_HOME_KEY)
    if not raw:
        return None
    try:
        home = SweepHome(**json.loads(raw))
    except (TypeError, ValueError):
        return None
    return home if home.sweep_id == sweep_id else None


def download_wandb_sweep_dirs(
    sweep_id: str | None = None,
    base_path: str | None = None,
    include_history: bool = True,
    *,
    entity: str | None = None,
    project: str | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Download every run of a W&B sweep into ``base_path/<run id>`` (as :func:`download_wandb_run_dir` does for one
    run) and return the directories, in the server's order.

    The sweep is ``sweep_id`` (an id, or ``entity/project/id``), else the current task's (``get_wandb_sweep_id()``).
    ``base_path`` defaults to ``<tmp>/wandb-downloads/sweep-<id>``. Entity and project come from the arguments,
    the sweep ``@wandb_sweep`` created, the task's W&B settings, then ``WANDB_ENTITY``/``WANDB_PROJECT``. A missing
    key, a refused key or an unknown sweep raises; a run that cannot be downloaded is logged as a warning naming
    it, and the others are still downloaded. Every server call answers within ``timeout`` seconds or raises.
    """
    sweep_id = sweep_id or get_wandb_sweep_id()
    if not sweep_id:
        raise DownloadError("download_wandb_sweep_dirs: no sweep_id was given and this task belongs to no sweep")
    parts = sweep_id.split("/")
    if len(parts) == 3:
        entity, project, sweep_id = entity or parts[0], project or parts[1], parts[2]
    elif len(parts) != 1:
        raise DownloadError(f"sweep_id must be a W&B sweep id or entity/project/id, got {sweep_id!r}")
    home = _home(sweep_id)
    settings = get_wandb_context()
    entity = entity or (home.entity if home else None) or (settings.entity if settings else None)
    entity = entity or os.environ.get(keys.WANDB_ENTITY) or None
    project = project or (home.project if home else None) or (settings.project if settings else None)
    project = project or os.environ.get(keys.WANDB_PROJECT)
    if not project:
        raise DownloadError(
            f"cannot tell which W&B project sweep {sweep_id!r} is in: pass project=, use entity/project/{sweep_id}, "
            "or set it with wandb_config(project=...) or WANDB_PROJECT"
        )
    api = WandbApi.from_env(timeout=timeout)
    root = Path(base_path) if base_path else default_root() / f"sweep-{sweep_id}"
    done: list[str] = []
    failed: list[str] = []
    for run_id in api.sweep_runs(entity, project, sweep_id):
        try:
            done.append(download_run(api, RunAddress(entity, project, run_id), root / run_id, include_history))
        except WandbApiAuthError:
            raise  # every other run would be refused too
        except (WandbApiError, OSError) as e:
            failed.append(run_id)
            logger.warning("sweep %s: run %s could not be downloaded (%s); the other runs go on", sweep_id, run_id, e)
    if failed:
        logger.warning("sweep %s: %d of %d runs not downloaded: %s", sweep_id, len(failed), len(failed) + len(done),
                       ", ".join(failed))  # fmt: skip
    return done


async def _sweep_logs(sweep_id: str) -> flyte.io.Dir:
    import flyte.io

    root = default_root() / f"sweep-{sweep_id.replace('/', '-')}"
    download_wandb_sweep_dirs(sweep_id, str(root))
    root.mkdir(parents=True, exist_ok=True)
    return await flyte.io.Dir.from_local(str(root))


async def download_wandb_sweep_logs(sweep_id: str) -> flyte.io.Dir:
    """Every run of a sweep (:func:`download_wandb_sweep_dirs`), one subdirectory per run, as a ``flyte.io.Dir``
    recorded as a Flyte trace (``download_wandb_sweep_logs``) that shows in the Flyte UI. Await it inside a task."""
    result: flyte.io.Dir = await traced("download_wandb_sweep_logs", _sweep_logs, "sweep_id")(sweep_id)
    return result
