"""The report tab's life in a task: gather the runs the body opened, refresh the tab now and then while the task
runs, and write it once at the end, from every rank's runs in a distributed task.

Only one process writes: global rank 0 of an Elastic task (or the task's only process). The other ranks hand their
run records to it through torch elastic's store when their runs have finished; rank 0 waits for them at
most ``finish_timeout`` seconds and names the ranks that did not answer, and the nodes whose files it cannot read,
in the tab. A report that cannot be written costs a warning, never the task.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Final, Generic, TypeVar

from .. import _keys as keys
from ..planning import DEFAULT_HOST, DistributedInfo, TopologyError, decode_config
from ..pod import RunRecord, collecting
from ._web import web_host

__all__ = ["REFRESH_ENV", "RefreshPolicy", "refresh_policy", "reported", "write_tab"]

logger = logging.getLogger("flyteplugins_wandb")

T = TypeVar("T")


@dataclass(frozen=True)
class RefreshPolicy:
    """How often the tab is rewritten while the task runs: first after ``first`` seconds, then every ``every``
    seconds, but never more often than ``cost_factor`` times what the last write took, so that refreshing spends
    at most 1/``cost_factor`` of one core however large the runs grow."""

    first: float = 60.0
    every: float = 120.0
    cost_factor: float = 20.0


DEFAULT_REFRESH: Final = RefreshPolicy()
REFRESH_ENV: Final = keys.REPORT_REFRESH_ENV


def refresh_policy(environ: Mapping[str, str]) -> RefreshPolicy | None:
    """The refresh policy ``REFRESH_ENV`` asks for: None for no refresh, the default when unset or malformed."""
    raw = environ.get(REFRESH_ENV, "").strip()
    if not raw:
        return DEFAULT_REFRESH
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        logger.warning(
            "%s must be a number of seconds >= 0 (0: no refresh), got %r; using %.0fs",
            REFRESH_ENV,
            raw,
            DEFAULT_REFRESH.every,
        )
        return DEFAULT_REFRESH
    return None if seconds == 0 else RefreshPolicy(first=seconds, every=seconds)


def _wanted(report: bool | None, context: Mapping[str, str]) -> bool:
    if report is not None:
        return report
    try:
        return bool(decode_config(context).report)
    except ValueError:
        return False  # the run itself reports the malformed context, with the key's name


def _host(context: Mapping[str, str], environ: Mapping[str, str]) -> str:
    try:
        return web_host(decode_config(context).host, environ)
    except ValueError:
        return web_host(None, environ)


class reported(Generic[T]):  # noqa: N801 - used like the context-manager functions it sits beside
    """Run ``scope`` (the task's run tracking); with the report on (``report``, else the run context's
    ``wandb_config(report=...)``), write the "Weights & Biases" tab when it ends, whether the body failed or not.

    Use ``with`` around a sync body and ``async with`` around an async one: there the report is flushed on the
    body's own event loop (Flyte may run the body on the loop its flush needs), and files are read off the loop.
    """

    def __init__(
        self,
        scope: AbstractContextManager[T],
        report: bool | None,
        finish_timeout: float,
        environ: Mapping[str, str] = os.environ,
        refresh: RefreshPolicy | None = None,
    ) -> None:
        self._scope = scope
        self._report = report
        self._timeout = finish_timeout
        self._environ = environ
        self._refresh = refresh if refresh is not None else refresh_policy(environ)
        self._on = False
        self._refresher: _Refresher | None = None

    def __enter__(self) -> T:
        self._begin()
        try:
            return self._scope.__enter__()
        except BaseException:
            if self._on:
                self._stop_refreshing()
                self._collect.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: Any) -> bool | None:
        try:
            return self._scope.__exit__(*exc)
        finally:
            if self._close() and self._end():
                _warn_on_failure(lambda: _flush(self._timeout))

    async def __aenter__(self) -> T:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        try:
            return self._scope.__exit__(*exc)
        finally:
            # Reading the runs' files and waiting for other ranks must not block the body's event loop.
            if self._close() and await asyncio.to_thread(contextvars.copy_context().run, self._end):
                try:
                    await asyncio.wait_for(_flush_on_this_loop(), self._timeout)
                except Exception as e:
                    logger.warning("the W&B report tab was not flushed (%s: %s)", type(e).__name__, e)

    def _begin(self) -> None:
        import flyte

        tctx = flyte.ctx()
        if not tctx or not _wanted(self._report, tctx.custom_context or {}):
            return
        try:
            self._topology = DistributedInfo.from_env(self._environ)
        except TopologyError:
            self._topology = None  # tracking raises with the details; the report follows what tracking does
        self._writes = self._topology is None or self._topology.rank == 0
        self._host = _host(tctx.custom_context or {}, self._environ)
        self._collect = collecting()
        self._mine = self._collect.__enter__()
        if self._writes and self._refresh is not None:
            self._refresher = _Refresher(self._mine, self._host, self._refresh, self._timeout, self._distributed())
        self._on = True

    def _distributed(self) -> bool:
        return self._topology is not None and self._topology.world_size > 1

    def _stop_refreshing(self) -> None:
        if self._refresher is not None:
            self._refresher.stop()

    def _close(self) -> bool:
        """Stop refreshing and collecting (in the body's own context); True when the report is on."""
        if not self._on:
            return False
        self._stop_refreshing()
        self._collect.__exit__(None, None, None)
        return True

    def _end(self) -> bool:
        """Hand this rank's records to rank 0, or (rank 0, a single process) put the tab in the task's report;
        True when there is a tab to flush. Never raises: a report that fails costs a warning."""
        try:
            records, notes, remote = list(self._mine), [], {}
            t = self._topology
            if t is not None and t.world_size > 1:
                exchange = _Exchange.connect(self._environ, self._timeout)
                if exchange is None:
                    notes.append("the runs of ranks other than this one could not be gathered (no torch elastic store)")
                elif not self._writes:
                    exchange.publish(t.rank, self._mine)
                else:
                    gathered, missing = exchange.gather(t.world_size, self._timeout)
                    for _rank, theirs, their_host in gathered:
                        records += theirs
                        remote.update({str(r.directory): their_host for r in theirs if r.directory})
                    if missing:
                        notes.append(
                            f"rank(s) {', '.join(map(str, missing))} did not report within {self._timeout:.0f}s: "
                            "their runs, if any, are not shown"
                        )
            if self._writes:
                write_tab(records, notes=notes, remote_hosts=remote, host=self._host, timeout=self._timeout)
                return True
        except Exception as e:  # the report is a view: it must never fail the task
            logger.warning("the W&B report tab was not written (%s: %s)", type(e).__name__, e)
        return False


def _warn_on_failure(action: Any) -> None:
    try:
        action()
    except Exception as e:
        logger.warning("the W&B report tab was not flushed (%s: %s)", type(e).__name__, e)


async def _flush_on_this_loop() -> None:
    import flyte.report

    await flyte.report.flush.aio()


def write_tab(
    records: Sequence[RunRecord],
    *,
    notes: Sequence[str] = (),
    remote_hosts: Mapping[str, str] | None = None,
    host: str | None = DEFAULT_HOST,
    final: bool = True,
    timeout: float = 60.0,
) -> str:
    """Read the runs' files, render the tab and put it in the task's Flyte report (not yet flushed); return the
    tab's HTML. ``remote_hosts`` maps a directory to the host whose process wrote it, for data from other ranks."""
    import flyte.report

    # Reading and rendering are imported here, not with the module: every rank's task function refers to this
    # module, and most ranks never write a tab.
    from ..readback import TAB_NAME, build_view, out_of_reach, read_writers, render_report

    data = read_writers(records, timeout)
    unreachable = out_of_reach(records, data, remote_hosts or {}, socket.gethostname())
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    view = build_view(records, data, unreachable=unreachable, notes=notes, host=host, updated=when, final=final)
    page = render_report(view)
    flyte.report.get_tab(TAB_NAME).replace(page)
    return page


def _flush(timeout: float) -> None:
    """``flyte.report.flush`` on a loop of its own, with this context (the task's), bounded: the body may be
    async (a running loop here) or sync, and this may be the refresher's thread."""
    import flyte.report

    context = contextvars.copy_context()
    failure: list[BaseException] = []

    async def flush() -> None:
        await flyte.report.flush.aio()

    def target() -> None:
        try:
            context.run(asyncio.run, flush())
        except Exception as e:
            failure.append(e)

    thread = threading.Thread(target=target, name="flyteplugins-wandb-report-flush", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"flushing the Flyte report did not finish within {timeout:.0f}s")
    if failure:
        raise failure[0]


class _Refresher:
    """Rewrite the tab now and then from the writing process's own runs while the body runs."""

    def __init__(
        self, records: list[RunRecord], host: str, policy: RefreshPolicy, timeout: float, distributed: bool
    ) -> None:
        self._records = records
        self._notes = ["other ranks' runs are added when they finish"] if distributed else []
        self._host = host
        self._policy = policy
        self._timeout = timeout
        self._stop = threading.Event()
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._loop,), name="flyteplugins-wandb-report", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        wait = self._policy.first
        while not self._stop.wait(wait):
            started = time.monotonic()
            try:
                write_tab(list(self._records), notes=self._notes, host=self._host, final=False, timeout=self._timeout)
                _flush(self._timeout)
            except Exception as e:
                logger.warning("refreshing the W&B report tab failed (%s: %s); trying again later", type(e).__name__, e)
            cost = time.monotonic() - started
            wait = max(self._policy.every, self._policy.cost_factor * cost)

    def stop(self) -> None:
        self._stop.set()
        # A refresh in progress is bounded by its reads' timeout; the final write replaces whatever it writes.
        self._thread.join(self._timeout)


class _Exchange:
    """Ranks hand their run records to global rank 0 through the elastic agent's store."""

    def __init__(self, store: Any) -> None:
        self._store = store  # a PrefixStore: the names below are this job's, in this restart

    @classmethod
    def connect(cls, environ: Mapping[str, str], timeout: float) -> _Exchange | None:
        from ..run import elastic_store

        job = environ.get(keys.TORCHELASTIC_RUN_ID, "job")
        store = elastic_store(environ, f"report/{job}", timeout, "the report tab shows this rank's runs only")
        return None if store is None else cls(store)

    def publish(self, rank: int, records: Sequence[RunRecord]) -> None:
        payload = {"host": socket.gethostname(), "records": [asdict(r) for r in records]}
        self._store.set(f"rank/{rank}", json.dumps(payload))
        self._store.add("done", 1)

    def gather(self, world_size: int, timeout: float) -> tuple[list[tuple[int, list[RunRecord], str]], list[int]]:
        """(rank, its records, its host) for every other rank that reported within ``timeout``, and the ranks
        that did not."""
        deadline = time.monotonic() + timeout
        while int(self._store.add("done", 0)) < world_size - 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        got, missing = [], []
        for rank in range(1, world_size):
            key = f"rank/{rank}"
            if not self._store.check([key]):
                missing.append(rank)
                continue
            payload = json.loads(self._store.get(key))
            got.append((rank, [RunRecord(**r) for r in payload["records"]], str(payload["host"])))
        return got, missing
