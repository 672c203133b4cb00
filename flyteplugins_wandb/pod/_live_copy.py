"""A copy of the run files that keeps up with training, for a pod that dies whole.

The run files are saved when the task's processes end (:mod:`._run_files`); a pod lost whole (its OOM kill, a
lost node, preemption without grace) never gets there. So while the workers run, a thread of the pod process
copies the same run files to Flyte storage, under the task's raw data path:
``<raw data>/wandb-run-files-live/<action>-attempt-<n>/<host>-<pid>``. ``FLYTEPLUGINS_WANDB_SAVE_EVERY`` (seconds,
default 30; 0 turns it off) bounds how long a logged row may wait to be there: the workers' W&B writes its log
out every quarter of it (W&B's own default is 15 s) and the pod saves every three quarters. Each save sends only
what changed since the last: the new bytes of a run's ``.wandb`` log (which W&B only appends to) as a numbered
part beside it, and other files whole when their size or time changed. After a ``kill -9`` of the pod, the copy
holds every row logged more than one period before; ``python -m flyteplugins_wandb.sync <address>`` joins the
parts and syncs it. Once the task's own final save has succeeded, the copy is deleted.

Saving never holds up or fails training: a pass that fails is warned about and tried again next period, and
stopping waits at most a few seconds for a pass in flight.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .. import _keys as keys
from ._manifest import RunRecord
from ._run_files import SAVED_ENV
from ._run_files import _writer_name as writer_name

__all__ = [
    "DEFAULT_SAVE_EVERY",
    "LiveCopy",
    "LiveSaving",
    "assemble_parts",
    "live_destination",
    "save_every",
    "start_live_copy",
]

logger = logging.getLogger("flyteplugins_wandb")

DEFAULT_SAVE_EVERY: Final = 30.0
"""Seconds between two saves of the run files while the task runs, where ``FLYTEPLUGINS_WANDB_SAVE_EVERY`` is unset."""
PARTS_SUFFIX: Final = ".parts"
"""``<file>.parts/<offset>`` holds the bytes of ``<file>`` from ``offset`` on, sent after the file itself."""
_STOP_WAIT: Final = 5.0
_FLUSH_ENV: Final = "WANDB__TRANSACTION_LOG_FLUSH_INTERVAL"
"""wandb's variable for its ``x_transaction_log_flush_interval`` setting: seconds between writes of the log."""
_WANDB_FLUSH_DEFAULT: Final = 15.0
_SKIP: Final = (".sock", ".lock")


def save_every(environ: Mapping[str, str]) -> float | None:
    """The live copy's bound in seconds from ``FLYTEPLUGINS_WANDB_SAVE_EVERY`` (default 30 s): a row is in
    storage at most this long after it was logged. None where it is 0 (off). Raises ValueError naming the value
    for anything but a finite number >= 0."""
    raw = environ.get(keys.SAVE_EVERY_ENV, "").strip()
    if not raw:
        return DEFAULT_SAVE_EVERY
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{keys.SAVE_EVERY_ENV} must be a number of seconds >= 0 between saves of the W&B run files "
            f"(0 turns them off), got {raw!r}"
        )
    return value or None


def live_destination(raw_data_path: str, action: str, attempt: int) -> str:
    """Where this pod's live copy goes: a name a user can find from the action after the pod is gone."""
    node = f"{socket.gethostname()}-{os.getpid()}"
    return "/".join([raw_data_path.rstrip("/"), "wandb-run-files-live", f"{action}-attempt-{attempt}", node])


@dataclass
class LiveCopy:
    """The state of one live copy: what was sent of each file, and under which writer's name."""

    destination: str
    filesystem: Any
    """An fsspec filesystem for ``destination``."""
    names: dict[str, str] = field(default_factory=dict)
    """Each run directory's name in the copy, numbered in the order first seen (the order to sync them)."""
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Each local file's (size, mtime_ns) as last sent."""

    def save(self, runs: list[RunRecord]) -> int:
        """Send what changed in ``runs``' directories since the last call; returns the bytes sent."""
        total = 0
        for r in runs:
            source = Path(str(r.directory))
            if source.is_dir():
                name = self.names.setdefault(str(source), f"{len(self.names):03d}-{writer_name(r)}")
                total += self._save_dir(source, f"{self.destination}/{name}/{source.name}")
        return total

    def _save_dir(self, source: Path, target: str) -> int:
        total = 0
        for path in _files(source):
            try:
                st = path.stat()
            except OSError:  # gone since it was listed (W&B's temporary files)
                continue
            key, now = str(path), (st.st_size, st.st_mtime_ns)
            before = self.sent.get(key)
            if before == now:
                continue
            remote = f"{target}/{path.relative_to(source).as_posix()}"
            # W&B only appends to its .wandb log: send the new bytes alone, as a part named by their offset.
            offset = before[0] if before and path.suffix == ".wandb" and st.st_size >= before[0] else 0
            data = _read(path, offset, st.st_size)
            part = f"{remote}{PARTS_SUFFIX}/{offset:016d}" if offset else remote
            self.filesystem.makedirs(part.rsplit("/", 1)[0], exist_ok=True)
            self.filesystem.pipe_file(part, data)
            self.sent[key] = (offset + len(data), st.st_mtime_ns)
            total += len(data)
        return total

    def discard(self) -> None:
        """Delete the copy (the final save holds everything it held)."""
        if self.filesystem.exists(self.destination):
            self.filesystem.rm(self.destination, recursive=True)


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and not path.name.endswith(_SKIP):
            yield path


def _read(path: Path, offset: int, end: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(end - offset)


class _Saver:
    """The thread that saves every period until stopped."""

    def __init__(self, copy: LiveCopy, runs: Callable[[], list[RunRecord]], period: float) -> None:
        self.copy, self._runs, self._period = copy, runs, period
        self._stop = threading.Event()
        self._failures = 0
        self._thread = threading.Thread(target=self._loop, name="flyteplugins-wandb: live copy", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            self._pass()

    def _pass(self) -> None:
        try:
            runs = self._runs()
        except ValueError:  # a record half written by a worker: the next pass reads it whole
            return
        try:
            self.copy.save(runs)
        except Exception as e:  # saving must never fail training
            self._failures += 1
            if self._failures == 1 or self._failures % 10 == 0:
                logger.warning(
                    "saving the W&B run files to %s failed (%s: %s; %d time(s) so far); trying again in %.0fs, "
                    "what they hold is lost if the pod dies before a save succeeds",
                    self.copy.destination,
                    type(e).__name__,
                    e,
                    self._failures,
                    self._period,
                )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_STOP_WAIT)


class LiveSaving:
    """A running live copy (or none): stop it when the workers have ended, then discard or keep it."""

    def __init__(self, saver: _Saver | None, restore: str | None = None) -> None:
        self._saver = saver
        self._restore = restore

    def stop(self) -> None:
        """Stop saving (waits a few seconds at most for a pass in flight)."""
        if self._restore is not None:
            os.environ.pop(self._restore, None)
        if self._saver is not None:
            self._saver.stop()

    def finish(self, saved: bool) -> None:
        """Delete the copy where the final save ``saved`` everything (bounded: a storage that hangs is left
        alone); else say where it stays."""
        if self._saver is None:
            return
        copy = self._saver.copy
        if not saved:
            logger.warning(
                "the W&B run files saved while the task ran stay at %s; sync them with: "
                "python -m flyteplugins_wandb.sync %s",
                copy.destination,
                copy.destination,
            )
            return
        cleanup = threading.Thread(target=_discard, args=(copy,), name="flyteplugins-wandb: cleanup", daemon=True)
        cleanup.start()
        cleanup.join(_STOP_WAIT)


def _discard(copy: LiveCopy) -> None:
    try:
        copy.discard()
    except Exception as e:
        logger.warning("could not delete %s (%s: %s)", copy.destination, type(e).__name__, e)


def start_live_copy(
    runs: Callable[[], list[RunRecord]],
    raw_data_path: str,
    action: str,
    attempt: int,
    environ: Mapping[str, str] = os.environ,
) -> LiveSaving:
    """Start saving ``runs()``' files every period (see the module); raises ValueError for a bad period."""
    period = save_every(environ)
    if period is None:
        return LiveSaving(None)
    if not raw_data_path:
        logger.warning("the task has no raw data path: the W&B run files are saved only when the workers end")
        return LiveSaving(None)
    destination = live_destination(raw_data_path, action, attempt)
    try:
        from flyte.storage import get_underlying_filesystem

        copy = LiveCopy(destination, get_underlying_filesystem(path=destination))
    except Exception as e:
        logger.warning("the W&B run files cannot be saved while the task runs (%s: %s)", type(e).__name__, e)
        return LiveSaving(None)
    # W&B writes a run's log out every 15 s by default (else only per 32 KiB): the workers, which inherit this
    # process's environment, write it every quarter period, and the saves come every three quarters, so that a row
    # is in storage at most one period after it was logged.
    flush = min(_WANDB_FLUSH_DEFAULT, period / 4)
    restore = None
    if _FLUSH_ENV not in os.environ:
        os.environ[_FLUSH_ENV], restore = f"{flush:g}", _FLUSH_ENV
    saver = _Saver(copy, runs, period - flush)
    saver.start()
    logger.info("saving the W&B run files every %.1fs to %s while the task runs", period - flush, destination)
    _note(destination, environ)
    return LiveSaving(saver, restore)


def _note(path: str, environ: Mapping[str, str]) -> None:
    target = environ.get(SAVED_ENV)
    if target and os.path.isdir(target):
        with open(os.path.join(target, f"live-{os.getpid()}.txt"), "a", encoding="utf-8") as f:
            f.write(path + "\n")


def assemble_parts(root: str | os.PathLike[str]) -> int:
    """Join every ``<file>.parts/<offset>`` under ``root`` onto its file, in offset order, and remove the parts;
    returns how many files were joined. A gap (a part that was never saved) ends the file there, with a warning:
    what follows cannot be read without it."""
    joined = 0
    for parts in sorted(Path(root).rglob(f"*{PARTS_SUFFIX}")):
        if not parts.is_dir():
            continue
        target = parts.with_name(parts.name[: -len(PARTS_SUFFIX)])
        with target.open("ab") as out:
            for part in sorted(parts.iterdir(), key=lambda p: int(p.name)):
                if int(part.name) != out.tell():
                    logger.warning("%s: bytes from %d on were never saved; it ends there", target, out.tell())
                    break
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out)
        shutil.rmtree(parts)
        joined += 1
    return joined
