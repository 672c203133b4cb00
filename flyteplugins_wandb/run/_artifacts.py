"""``log_artifact``: a file or directory (a checkpoint, say) as a versioned W&B artifact, written once per task."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ._current import current_placement, get_wandb_run

if TYPE_CHECKING:
    from wandb import Artifact

__all__ = ["log_artifact"]

logger = logging.getLogger("flyteplugins_wandb")

# W&B's own limits (wandb.sdk.artifacts._validators), checked on every rank before anything else happens: a bad
# name must fail where it is written, not only on the one rank that uploads.
_NAME_MAXLEN: Final = 128
_SEPARATORS: Final = frozenset("/:")
_RESERVED_TYPE_PREFIX: Final = "wandb-"


def log_artifact(
    path: str | os.PathLike[str],
    *,
    name: str,
    type: str = "model",
    aliases: Sequence[str] = ("latest",),
    metadata: Mapping[str, Any] | None = None,
) -> Artifact | None:
    """Log the file or directory at ``path`` as a new version of the W&B artifact ``name``, tagged with ``aliases``
    (for example ``("latest", "best")``), from one process of the task only.

    Call it on every rank if that is simpler: only global rank 0 logs, when it has a run
    (into the task's run in ``auto``/``shared`` mode, worker 0's run under ``rank_scope="worker"``, rank 0's own
    run in ``new`` mode), or the task's own process when the task is not distributed. W&B tags every new version
    ``latest`` as well, whatever ``aliases`` says. That process returns the logged
    :class:`wandb.Artifact` (its version is assigned once W&B has committed it); every other process, and any
    process without a run, returns None at once, without importing wandb or touching ``path``, so the file only
    has to exist where it is logged.

    ``name``, ``type`` and ``aliases`` are checked on every rank (ValueError, TypeError). On the logging process a
    missing ``path`` raises FileNotFoundError naming it. If W&B itself refuses the artifact, a warning says so and
    None is returned: training goes on.
    """
    _check_name("name", name)
    _check_name("type", type)
    if type.startswith(_RESERVED_TYPE_PREFIX):
        raise ValueError(f"log_artifact: type may not start with {_RESERVED_TYPE_PREFIX!r} (W&B reserves it)")
    tags = _check_aliases(aliases)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"log_artifact: metadata must be a mapping or None, got {metadata.__class__.__name__}")

    placement = current_placement.get()
    if placement is None or (placement.topology is not None and placement.topology.rank != 0):
        return None
    run = get_wandb_run()
    if run is None:
        return None

    where = Path(path)
    if not where.exists():
        raise FileNotFoundError(f"log_artifact: {str(where)!r} does not exist (artifact {name!r})")
    import wandb

    try:
        artifact = wandb.Artifact(name, type=type, metadata=dict(metadata) if metadata is not None else None)
        if where.is_dir():
            artifact.add_dir(str(where))
        else:
            artifact.add_file(str(where))
        return run.log_artifact(artifact, aliases=tags)
    except wandb.errors.Error as e:
        logger.warning("log_artifact: %s was not logged as artifact %r (%s: %s)", where, name, e.__class__.__name__, e)
        return None


def _check_name(field: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"log_artifact: {field} must be a non-empty string, got {value!r}")
    if len(value) > _NAME_MAXLEN or _SEPARATORS.intersection(value):
        raise ValueError(
            f"log_artifact: {field} must be at most {_NAME_MAXLEN} characters without '/' or ':', got {value!r}"
        )


def _check_aliases(aliases: object) -> list[str]:
    # A bare string is a sequence too: ("best") would log the aliases "b", "e", "s", "t".
    if isinstance(aliases, str) or not isinstance(aliases, Sequence):
        raise TypeError(f"log_artifact: aliases must be a list or tuple of strings, got {aliases!r}")
    for alias in aliases:
        if not isinstance(alias, str) or not alias or _SEPARATORS.intersection(alias):
            raise ValueError(f"log_artifact: each alias must be a non-empty string without '/' or ':', got {alias!r}")
    return list(aliases)
