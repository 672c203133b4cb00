"""A worker that dies is restarted by torch elastic as without the plugin, with the node's W&B service on, whether
it writes a run of its own or one writer's part of a shared run, and so do the writers its restart stops: each run
keeps every row logged before the death, and the run goes on after the restart, its steps
continuing where the dead life stopped (offline too). A Flyte retry continues the run; a W&B service that dies
mid-training costs the rows logged after it, never the task.

Real torch elastic workers (1 node x 2 and 2 nodes x 2; see ``tests/restart_tasks.py``), W&B offline, read back from
what it wrote.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
import restart_tasks as tasks
from readback import OfflineRun, offline_runs

from flyteplugins_wandb.local import LocalElasticError, LocalElasticResult, run_elastic_locally
from flyteplugins_wandb.pod._node_service import service_reachable
from flyteplugins_wandb.run._service_loss import LOSS_NOTE

ROWS = tasks.ROWS
ALL_ROWS = list(range(2 * ROWS))


def _writers(result: LocalElasticResult, wandb_dir: Path) -> dict[tuple[str, str | None], list[OfflineRun]]:
    """Each writer's offline files (its run id and shared-mode label), its lives in the order they ran."""
    lives = {r.directory: r for r in result.runs}
    out: dict[tuple[str, str | None], list[tuple[int, OfflineRun]]] = {}
    for run in offline_runs(wandb_dir):
        record = lives[str(run.path.parent)]
        # Torch counts restarts per node (a node restarted for another's failure keeps 0): order by start time.
        out.setdefault((record.run_id, record.label), []).append((run.start_time, run))
    return {writer: [run for _, run in sorted(files, key=lambda f: f[0])] for writer, files in out.items()}


def _rows_and_steps(lives: list[OfflineRun]) -> tuple[list[int], list[int]]:
    rows = [row for life in lives for row in life.history if "row" in row]
    return [int(r["row"]) for r in rows], [int(r["_step"]) for r in rows]


LAYOUTS = [
    # task, the writers the layout has (run id suffix, label), the writer that is killed, and how many W&B
    # services the pods start for them: one per node, or one per writer where writers of one run share a node
    # 1 x 2 new: the killed writer's restart releases its dead stream on the node's one service, which the other
    # writer (stopped by the restart, as auto's rank 0 would be) uses too. On one node rank_scope changes nothing.
    pytest.param(tasks.new_global, {("-rank-0", None), ("-rank-1", None)}, ("-rank-1", None), 1, id="new"),
    # 2 nodes x 2, the layout with the most to keep apart: two shared runs of two writers each, one run's writers on
    # each node (per-writer services), and node 1 restarted only because node 0 failed (torch keeps its restart
    # count at 0 there). Its node 0 is what a 1 x 2 shared launch would show: a shared run's two writers on one
    # node, the non-primary killed. The other layouts do per node what they do on one node.
    pytest.param(
        tasks.shared_worker_2x2,
        {(f"-worker-{w}", f"worker-{w}-rank-{r}") for w in (0, 1) for r in (0, 1)},
        ("-worker-0", "worker-0-rank-1"),
        4,
        id="2x2-shared-worker",
    ),
]


@pytest.mark.elastic
@pytest.mark.parametrize(("task", "writers", "killed", "services"), LAYOUTS)
def test_a_killed_worker_is_restarted_and_its_run_keeps_every_row_in_step_order(
    wandb_env: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    task: Any,
    writers: set[tuple[str, str | None]],
    killed: Any,
    services: int,
) -> None:
    result = run_elastic_locally(task, max_restarts=1, timeout=900, marker_dir=str(tmp_path))
    err = capfd.readouterr().err
    # The writers met in the store torch gives each restart (shared runs' order, the report's gathering), and the
    # pod, whose task has one, did not warn that it lacks it.
    assert "elastic store" not in err and "keeps one store for every restart" not in err
    assert result.output == 1  # the task succeeded, in the life after the restart
    base = f"{result.run_name}-a0"
    lives = _writers(result, wandb_env)
    assert set(lives) == {(base + suffix, label) for suffix, label in writers}
    for writer, files in lives.items():
        # Both lives of every writer are there; together they hold all rows, their steps one after the other.
        assert len(files) == 2, writer
        assert _rows_and_steps(files) == (ALL_ROWS, ALL_ROWS), writer
        assert files[1].state == "finished", writer
    # Both lives of every writer joined the same service, the pod's (which outlived the killed one), stopped by the
    # pod once the workers had ended.
    joined: dict[str, set[str]] = {}
    for marker in tmp_path.glob("service-rank*-life*"):
        joined.setdefault(marker.name.split("-life")[0], set()).add(marker.read_text())
    assert all(len(tokens) == 1 for tokens in joined.values()), joined
    assert len(set().union(*joined.values())) == services
    assert not any(service_reachable(token) for tokens in joined.values() for token in tokens)
    restart_count = {r.directory: r.restart_count for r in result.runs}
    for writer, (first, second) in lives.items():
        if writer == (base + killed[0], killed[1]):
            assert first.state == "failed" and first.exit_code == 1  # killed: wandb's service ended it
            assert restart_count[str(second.path.parent)] == 1
        else:
            # Stopped by the agent's restart (SIGTERM): finished as preempted, and said so.
            assert first.exit_code == 143 and first.summary["flyte/preempted"] is True, writer
        assert second.exit_code == 0, writer
        # The summary records the restart as torch counts it on the writer's node.
        assert first.summary["flyte/restart_count"] == 0
        assert second.summary["flyte/restart_count"] == restart_count[str(second.path.parent)], writer


@pytest.mark.elastic
def test_a_flyte_retry_on_a_node_service_continues_the_run(wandb_env: Path, tmp_path: Path) -> None:
    with pytest.raises(LocalElasticError):
        # No restarts: attempt 0 fails when rank 1 dies; its pod's service ends the dead writer's part as failed.
        run_elastic_locally(tasks.new_global, max_restarts=0, run_name="R", timeout=900, marker_dir=str(tmp_path))
    retry = run_elastic_locally(
        tasks.new_global, max_restarts=0, run_name="R", attempt=1, timeout=900, marker_dir=str(tmp_path)
    )
    assert retry.output == 0
    runs = sorted((r for r in offline_runs(wandb_env) if r.run_id == "R-a0-rank-1"), key=lambda r: r.start_time)
    assert [_rows_and_steps([r])[0] for r in runs] == [list(range(ROWS)), list(range(ROWS, 2 * ROWS))]
    assert runs[0].state == "failed" and runs[1].state == "finished"
    assert runs[1].summary["flyte/attempt"] == 1


@pytest.mark.elastic
def test_when_the_w_and_b_service_dies_mid_training_the_task_finishes_and_the_run_files_say_so(
    wandb_env: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A short save period makes wandb write its log every 0.25 s: what was logged before the kill is on disk.
    env = {"FLYTEPLUGINS_WANDB_SAVE_EVERY": "1"}
    result = run_elastic_locally(tasks.service_dies, max_restarts=0, env=env, timeout=900, marker_dir=str(tmp_path))
    assert result.output == 0
    assert (tmp_path / "killed").exists()
    runs = offline_runs(wandb_env)
    assert len(runs) == 2
    for run in runs:
        # The loss is noted beside the run's file (saved with it), with the first step lost: the ranks log again
        # only once the dead service refuses connections, so their first row after it fails at once.
        note = json.loads((run.path.parent / LOSS_NOTE).read_text(encoding="utf-8"))
        assert note["run_id"] == run.run_id and note["lost_from_step"] == ROWS
        # Every row logged before the death is kept; nothing after it, nothing invented.
        assert _rows_and_steps([run])[0] == list(range(ROWS))
    err = capfd.readouterr().err
    assert err.count("W&B service of run") == 2 and err.count("is dropped, and training goes on") == 2


# The same behaviours one level down, in this process with real wandb and real services (no elastic workers).

_DIES_AFTER_5_ROWS = """
import os, wandb
run = wandb.init(project="p", id="taken-over")
for i in range(5):
    run.log({"row": i})
os._exit(1)
"""


def test_a_writer_that_takes_a_dead_writers_run_over_continues_its_steps(wandb_env: Path) -> None:
    import subprocess
    import sys

    import wandb

    from flyteplugins_wandb.pod._node_service import node_service, open_run
    from flyteplugins_wandb.run._lifecycle import _continue_steps

    with node_service(stop_timeout=60):
        subprocess.run([sys.executable, "-c", _DIES_AFTER_5_ROWS], check=False, timeout=120)
        run, step = open_run(
            lambda: wandb.init(project="p", id="taken-over", resume="allow"), "taken-over", may_release=True
        )
        assert step == ROWS
        _continue_steps(run, step)
        for i in range(ROWS, 2 * ROWS):
            run.log({"row": i})
        run.finish()
    lives = sorted(offline_runs(wandb_env), key=lambda r: r.start_time)
    assert [life.state for life in lives] == ["failed", "finished"]
    assert _rows_and_steps(lives) == (ALL_ROWS, ALL_ROWS)


def test_a_stopped_writers_next_step_is_kept_by_the_pod_for_its_restart(tmp_path: Path) -> None:
    from flyteplugins_wandb.pod._manifest import record_next_step, recorded_next_step

    environ = {"FLYTEPLUGINS_WANDB_POD_LEDGER": str(tmp_path)}
    assert recorded_next_step("r", "worker-0", environ) == 0
    record_next_step("r", "worker-0", 7, environ)
    record_next_step("r", "worker-0-rank-1", 99, environ)  # another writer, whose label starts with this one's
    record_next_step("r", None, 50, environ)
    assert recorded_next_step("r", "worker-0", environ) == 7
    assert recorded_next_step("r", None, environ) == 50
    assert recorded_next_step("r", "worker-0", {}) == 0  # no pod ledger: nothing kept


def test_a_run_whose_service_died_drops_later_rows_after_one_warning_and_notes_it(
    wandb_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import os
    import signal
    import time

    import wandb

    from flyteplugins_wandb.run._service_loss import survive_service_loss

    run = wandb.init(project="p", id="loses-its-service")
    assert survive_service_loss(run)
    for i in range(ROWS):
        run.log({"row": i})
    service = os.environ.get("WANDB_SERVICE") or ""
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    cores = [int(c) for c in children if b"wandb-core" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(cores) == 1, (children, service)
    os.kill(cores[0], signal.SIGKILL)
    time.sleep(0.5)
    with caplog.at_level("WARNING", logger="flyteplugins_wandb"):
        for i in range(ROWS, 2 * ROWS):
            run.log({"row": i})  # must not raise
    lost = [r.getMessage() for r in caplog.records if "is gone" in r.getMessage()]
    assert len(lost) == 1 and "from step" in lost[0]
    note = json.loads((Path(run.settings.sync_dir) / LOSS_NOTE).read_text(encoding="utf-8"))
    assert note["run_id"] == "loses-its-service" and note["lost_from_step"] == ROWS
    with pytest.raises(Exception):  # noqa: B017 - the run cannot finish without its service; wandb's own error
        run.finish()
    with contextlib.suppress(ConnectionError):  # nor can this process's wandb end its (dead) service cleanly
        wandb.teardown()


@pytest.mark.parametrize(
    ("max_restarts", "environ", "warned"),
    [
        (3, {}, True),  # torch's default: one store for every restart
        (3, {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "0"}, True),
        (3, {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}, False),  # a store per restart
        (0, {}, False),  # no restarts: nothing to read from a previous life
    ],
)
def test_a_pod_whose_workers_restart_into_the_dead_lifes_store_says_how_to_avoid_it(
    max_restarts: int, environ: dict[str, str], warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    from flyteplugins_wandb.task._pod import warn_if_restarts_share_a_store

    with caplog.at_level("WARNING", logger="flyteplugins_wandb"):
        assert warn_if_restarts_share_a_store(max_restarts, environ) is warned
    said = [r.getMessage() for r in caplog.records]
    assert said == ([said[0]] if warned else [])
    if warned:
        assert f"max_restarts={max_restarts}" in said[0] and "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in said[0]
