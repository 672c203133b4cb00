"""run_elastic_locally: what it accepts, what it returns, and that a stuck launch is stopped without leftovers."""

from __future__ import annotations

import json
import os
import time
import uuid
from multiprocessing import forkserver, resource_tracker
from pathlib import Path
from typing import Any

import elastic_tasks as tasks
import pytest

from flyteplugins_wandb.local import LocalElasticError, run_elastic_locally


def _state(pid: int) -> str:
    """The process's state letter from /proc (``Z`` for a zombie), or ``gone``."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "gone"
    return next(line for line in status.splitlines() if line.startswith("State:")).split()[1]


def _live_processes_marked(value: str) -> dict[int, str]:
    """pid -> command line of every live (not zombie) process whose environment carries the launch marker.

    Agents and workers inherit the marker, and a worker outlives a killed agent as an orphan of some other
    parent, so this finds them wherever they were reparented to.
    """
    wanted = f"{tasks.LAUNCH_MARKER}={value}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            marked = wanted in (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if marked and _state(int(entry.name)) not in ("Z", "gone"):
            found[int(entry.name)] = cmdline
    return found


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(tasks.not_elastic, id="a-task-without-elastic"),
        pytest.param(tasks.log_rank, id="a-plain-function"),
    ],
)
def test_a_target_that_is_not_an_elastic_task_is_refused_with_the_fix(target: Any) -> None:
    with pytest.raises(TypeError, match=r"plugin_config=Elastic\("):
        run_elastic_locally(target, x=1)


@pytest.mark.elastic
def test_a_launch_that_hangs_on_one_rank_is_stopped_at_the_timeout_without_leftover_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process's own resource tracker and fork server (where the agents start from; tests/conftest.py starts it
    # with STALE_MARKER set) outlive every launch by design: they run before the marker is set.
    resource_tracker.ensure_running()
    assert forkserver._forkserver._forkserver_pid is not None, "the fork server runs"
    assert tasks.STALE_MARKER not in os.environ
    marker = uuid.uuid4().hex
    monkeypatch.setenv(tasks.LAUNCH_MARKER, marker)

    # Long enough for the workers to start on a busy 2-core machine, so that it is the hang that times out.
    with pytest.raises(LocalElasticError, match=r"did not finish within 40s"):
        run_elastic_locally(tasks.hang_on_rank_1, nproc_per_node=2, timeout=40, out_dir=str(tmp_path))

    assert (tmp_path / "hanging.json").exists(), "rank 1 reached its hang before the timeout"
    hung = json.loads((tmp_path / "hanging.json").read_text())
    assert hung["marker"] == marker, "the workers carry the marker, so the search below can see them"
    # The environment of the launch, not the fork server's: set after it started, and gone since.
    assert hung["stale"] is None, "a variable removed before the launch reached its workers"
    # Orphans are reaped by their new parent asynchronously: wait for that, with a generous hang guard.
    deadline = time.monotonic() + 60
    while _live_processes_marked(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _live_processes_marked(marker) == {}, "no agent, worker or helper of the launch is left running"
    assert _state(hung["pid"]) in ("Z", "gone"), "the hanging worker was stopped"


@pytest.mark.elastic
def test_a_worker_failure_on_one_node_fails_the_launch_at_once_with_that_workers_error() -> None:
    # The other node's agent, whose workers returned, waits in torch's exit barrier for minutes: the launch must
    # not wait for it (nor for the timeout) before it reports the failure.
    with pytest.raises(LocalElasticError) as raised:
        run_elastic_locally(tasks.fails_on_rank_2x2, max_restarts=0, timeout=300, rank=3)
    headline = str(raised.value).split("\n\n")[0]
    assert "first worker error: " in headline and "ValueError: deliberate failure on rank 3" in headline
    assert "did not finish within" not in headline
