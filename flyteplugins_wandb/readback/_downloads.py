"""Read a finished run back from the W&B server into a local directory (its files, summary and history), as
``flyteplugins-wandb``'s download helpers do, with every server call bounded."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .. import _keys as keys
from ..run import MissingApiKeyError, get_wandb_context, get_wandb_run
from ._local_runs import DownloadError, copy_offline_run, find_offline_run
from ._wandb_api import WandbApi, WandbRunNotFound

if TYPE_CHECKING:
    import flyte.io

__all__ = [
    "RunAddress",
    "default_root",
    "download_run",
    "download_wandb_run_dir",
    "download_wandb_run_logs",
    "run_address",
    "traced",
]

logger = logging.getLogger("flyteplugins_wandb")

SUMMARY_FILE: Final = "summary.json"
HISTORY_FILE: Final = "metrics_history.json"


class RunAddress:
    """Where a run lives: entity (None: the key's default), project and id."""

    def __init__(self, entity: str | None, project: str, run_id: str) -> None:
        self.entity, self.project, self.run_id = entity, project, run_id

    def __repr__(self) -> str:
        return f"{self.entity or '<default entity>'}/{self.project}/{self.run_id}"


def run_address(
    run_id: str | None, entity: str | None, project: str | None, environ: Mapping[str, str] = os.environ
) -> RunAddress:
    """The run to read: ``run_id`` (also ``entity/project/id``), else this process's run, else the run of the task
    that launched this one; its entity and project from the arguments, the id's path, this process's run, the
    task's W&B settings, then ``WANDB_ENTITY``/``WANDB_PROJECT``."""
    run = get_wandb_run()
    settings = get_wandb_context()
    if run_id is None:
        run_id = str(run.id) if run is not None else settings.parent_run_id if settings is not None else None
        if run_id is None:
            raise DownloadError(
                "download_wandb_run_dir: no run_id was given, and neither this process nor the task that launched "
                "it has a W&B run; pass run_id="
            )
    if not isinstance(run_id, str) or not run_id:
        raise DownloadError(f"run_id must be a non-empty str (a W&B run id or entity/project/id), got {run_id!r}")
    parts = run_id.split("/")
    if len(parts) == 3:
        entity, project, run_id = entity or parts[0], project or parts[1], parts[2]
    elif len(parts) != 1:
        raise DownloadError(f"run_id must be a W&B run id or entity/project/id, got {run_id!r}")
    own = run if run is not None and run.id == run_id else None
    entity = (
        entity
        or (own.entity if own is not None else None)
        or (settings.entity if settings else None)
        or environ.get(keys.WANDB_ENTITY)
        or None
    )
    project = (
        project
        or (own.project if own is not None else None)
        or (settings.project if settings else None)
        or environ.get(keys.WANDB_PROJECT)
    )
    if not project:
        raise DownloadError(
            f"cannot tell which W&B project run {run_id!r} is in: pass project=, use entity/project/{run_id}, "
            "set it with wandb_config(project=...), or set WANDB_PROJECT"
        )
    return RunAddress(entity, project, run_id)


def download_run(api: WandbApi, where: RunAddress, path: str | os.PathLike[str], include_history: bool) -> str:
    """Download run ``where`` into ``path``; its absolute path. Raises on the first failed call."""
    remote = api.run(where.entity, where.project, where.run_id)
    root = Path(path).absolute()
    root.mkdir(parents=True, exist_ok=True)
    for file in api.files(where.entity, where.project, where.run_id):
        api.download(file, root)
    _write_json(root / SUMMARY_FILE, remote.summary)
    if include_history:
        _write_json(root / HISTORY_FILE, api.history(where.entity, where.project, where.run_id))
    return str(root)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))


def default_root() -> Path:
    return Path(tempfile.gettempdir()) / "wandb-downloads"


def download_wandb_run_dir(
    run_id: str | None = None,
    path: str | None = None,
    include_history: bool = True,
    *,
    entity: str | None = None,
    project: str | None = None,
    timeout: float = 30.0,
) -> str:
    """Download a W&B run's files from the server into a local directory and return its path.

    The run is ``run_id`` (an id, or ``entity/project/id``), else this process's run. Besides the run's own files
    (``config.yaml``, ``output.log``, ``wandb-summary.json``, ...), the directory holds ``summary.json`` (the run's
    summary) and, with ``include_history``, ``metrics_history.json`` (its logged rows). ``path`` defaults to
    ``<tmp>/wandb-downloads/<run id>``. Entity and project come from the arguments, the task's W&B settings, then
    ``WANDB_ENTITY``/``WANDB_PROJECT``. Every server call answers within ``timeout`` seconds or raises; a missing
    key, a refused key and an unknown run each raise an error saying which; every failure is a RuntimeError.

    A run made offline in this workflow (its files on this machine: under the task's ``dir``, ``WANDB_DIR`` or the
    working directory) is read from its own files where the server cannot be asked (no API key, no known project)
    or does not have it.
    """
    local = _local_first(run_id)
    try:
        where = run_address(run_id, entity, project)
        api = WandbApi.from_env(timeout=timeout)
        return download_run(api, where, path or default_root() / where.run_id, include_history)
    except (MissingApiKeyError, WandbRunNotFound, DownloadError) as e:
        if local is None:
            raise
        # The server cannot be asked, or never saw the run: the run's own files here hold all it wrote.
        logger.info("run %s is read from its offline files in %s (%s)", local[0], local[1], e)
        return copy_offline_run(local[1], path or default_root() / local[0], include_history, timeout)


def _local_first(run_id: str | None) -> tuple[str, Path] | None:
    """The run id asked for and its offline run directory, if this machine has one."""
    try:
        where = run_address(run_id, None, "-")  # the project is not needed to find local files
    except DownloadError:
        return None
    settings = get_wandb_context()
    found = find_offline_run(where.run_id, [settings.dir if settings else None])
    return None if found is None else (where.run_id, found)


def traced(name: str, body: Any, arg: str) -> Any:
    """``body`` (an async function of one str ``arg`` returning a ``flyte.io.Dir``) as a Flyte trace named
    ``name``, built on first use: flyte is imported by tasks, not when this package is imported."""
    if name not in _TRACED:
        import flyte
        import flyte.io

        body.__name__ = body.__qualname__ = name
        # Flyte reads the interface from the annotations, which are strings here (postponed evaluation).
        body.__annotations__ = {arg: str, "return": flyte.io.Dir}
        _TRACED[name] = flyte.trace(body)
    return _TRACED[name]


_TRACED: dict[str, Any] = {}


async def _run_logs(run_id: str) -> flyte.io.Dir:
    import flyte.io

    return await flyte.io.Dir.from_local(download_wandb_run_dir(run_id))


async def download_wandb_run_logs(run_id: str) -> flyte.io.Dir:
    """A W&B run's files, summary and history (:func:`download_wandb_run_dir`) as a ``flyte.io.Dir``, recorded as a
    Flyte trace (``download_wandb_run_logs``) so that it shows in the Flyte UI. Await it inside a task."""
    result: flyte.io.Dir = await traced("download_wandb_run_logs", _run_logs, "run_id")(run_id)
    return result
