"""Run files outlive the pod: offline runs (every writer's directory) are saved to Flyte's storage as a Dir when the
task's processes end, and the sync command finds every run in it. Real local flyte.run and real elastic workers;
W&B offline, read back from the saved copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import elastic_tasks
import flyte
import pytest
from flyteplugins.pytorch.task import Elastic
from layout_launches import LayoutLaunch
from readback import inspect_run

from flyteplugins_wandb import get_wandb_run, wandb_init
from flyteplugins_wandb._keys import MANIFEST_ENV
from flyteplugins_wandb.local import run_elastic_locally
from flyteplugins_wandb.pod._manifest import RunRecord
from flyteplugins_wandb.pod._run_files import runs_to_save

plain = flyte.TaskEnvironment(name="run-files-plain")
elastic = flyte.TaskEnvironment(name="run-files-elastic", plugin_config=Elastic(nnodes=1, nproc_per_node=2))
ROWS = 7


@wandb_init(project="p")
@plain.task
def logs_rows() -> str:
    run = get_wandb_run()
    assert run is not None
    for i in range(ROWS):
        run.log({"row": i})
    return run.id


@wandb_init(project="p", entity="e", run_mode="new", download_logs=True)
@elastic.task
def online_with_logs() -> int:
    run = get_wandb_run()
    assert run is not None
    for i in range(ROWS):
        run.log({"row": i})
    return int(os.environ["RANK"])


def _sync_dry_run(saved: str) -> list[Path]:
    """The run directories the documented sync command would upload, in order."""
    out = subprocess.run(
        [sys.executable, "-m", "flyteplugins_wandb.sync", saved, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
        },
    )
    return [Path(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "manifest"
    path.mkdir()
    monkeypatch.setenv(MANIFEST_ENV, str(path))
    flyte.init()
    yield path


def _saved(manifest: Path) -> list[str]:
    return [line for p in sorted(manifest.glob("saved-*.txt")) for line in p.read_text().split()]


def test_a_local_flyte_run_saves_its_offline_run_as_a_dir_that_syncs_complete(wandb_env: Path, manifest: Path) -> None:
    run_id = flyte.run(logs_rows).outputs()[0]
    saved = _saved(manifest)
    assert len(saved) == 1 and os.path.isdir(saved[0].removeprefix("file://"))
    # A copy, not the pod's files: deleting W&B's own directory must not matter.
    shutil.rmtree(wandb_env)
    dirs = _sync_dry_run(saved[0])
    assert len(dirs) == 1
    run = inspect_run(next(dirs[0].glob("run-*.wandb")))
    assert run.run_id == run_id and run.metric("row") == list(range(ROWS)) and run.state == "finished"


@pytest.mark.elastic
@pytest.mark.parametrize("layout_launch", ["1x2-shared"], indirect=True)  # one shared run, 2 writers on 1 node
def test_an_elastic_pod_saves_every_shared_writers_directory(layout_launch: LayoutLaunch) -> None:
    result = layout_launch.result
    assert len(result.run_files) == 1
    # Copies, not the pod's files: deleting W&B's own directory must not matter (the launch was read already).
    shutil.rmtree(layout_launch.wandb_dir)
    dirs = _sync_dry_run(result.run_files[0])
    runs = [inspect_run(next(d.glob("run-*.wandb"))) for d in dirs]
    assert [r.run_id for r in runs] == [layout_launch.base] * 2
    assert sorted(r.metric("rank") for r in runs) == [[0], [1]], "every writer's directory, each its own"
    assert all(r.metric("row") == list(range(elastic_tasks.ROWS)) for r in runs)


@pytest.mark.elastic
@pytest.mark.parametrize("layout_launch", ["2x2-new-global"], indirect=True)  # a run per rank, 2 nodes x 2
def test_each_pod_of_a_two_node_task_saves_exactly_its_own_workers_runs(layout_launch: LayoutLaunch) -> None:
    result = layout_launch.result
    assert len(result.run_files) == 2
    shutil.rmtree(layout_launch.wandb_dir)
    per_node = [[inspect_run(next(d.glob("run-*.wandb"))) for d in _sync_dry_run(saved)] for saved in result.run_files]
    ranks = sorted(sorted(r.run_id.rsplit("-", 1)[1] for r in node) for node in per_node)
    assert ranks == [["0", "1"], ["2", "3"]]
    assert all(r.metric("row") == list(range(elastic_tasks.ROWS)) for node in per_node for r in node)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """W&B online against a fake W&B server on this machine."""
    from fake_wandb_server import LONG_KEY, FakeWandb, serve

    with serve(FakeWandb()) as url:
        monkeypatch.setenv("WANDB_MODE", "online")
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_API_KEY", LONG_KEY)
        yield


@pytest.mark.elastic
def test_download_logs_saves_online_runs_of_a_distributed_task(wandb_env: Path, online: None) -> None:
    # Without it, an online task whose runs finished saves nothing: test_server_faults.py's online shared launch
    # checks that on the same kind of launch.
    result = run_elastic_locally(online_with_logs, max_restarts=0, timeout=900)
    try:
        assert len(result.run_files) == 1
        runs = [inspect_run(next(d.glob("run-*.wandb"))) for d in _sync_dry_run(result.run_files[0])]
        assert sorted(r.run_id for r in runs) == [f"{result.run_name}-a0-rank-{i}" for i in (0, 1)]
        assert all(r.metric("row") == list(range(ROWS)) and r.state == "finished" for r in runs)
    finally:
        for path in result.run_files:
            shutil.rmtree(path, ignore_errors=True)


def _record(run_id: str, mode: str, directory: str | None, *, rank: int | None = None, restart: int = 0) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        group=None,
        label=None,
        primary=None,
        run_mode="new",
        rank_scope="global",
        wandb_mode=mode,
        rank=rank,
        local_rank=rank,
        worker_index=0,
        restart_count=restart,
        attempt=0,
        project="p",
        entity=None,
        directory=directory,
    )


@pytest.mark.parametrize(
    ("mode", "unfinished", "download_logs", "saved"),
    [
        pytest.param("offline", False, False, True, id="offline-always"),
        pytest.param("online", False, False, False, id="online-finished-not-by-default"),
        pytest.param("online", True, False, True, id="online-whose-finish-timed-out"),
        pytest.param("online", False, True, True, id="online-with-download-logs"),
        pytest.param("disabled", False, True, False, id="disabled-never"),
    ],
)
def test_which_runs_are_saved(mode: str, unfinished: bool, download_logs: bool, saved: bool) -> None:
    record = _record("r", mode, "/d")
    assert runs_to_save([record], {"/d"} if unfinished else set(), download_logs) == ([record] if saved else [])


def test_runs_are_saved_once_each_in_the_order_they_were_written() -> None:
    later = _record("r", "offline", "/b", rank=1, restart=1)
    first = _record("r", "offline", "/a", rank=1, restart=0)
    assert runs_to_save([later, first, first, _record("r", "offline", None)], set(), False) == [first, later]


def test_download_logs_travels_in_the_run_context_and_is_checked() -> None:
    from flyteplugins_wandb import wandb_config
    from flyteplugins_wandb.planning._config import decode_config

    assert decode_config(wandb_config(download_logs=True)).download_logs is True
    assert decode_config(wandb_config(download_logs=False)).download_logs is False
    assert decode_config(wandb_config()).download_logs is None
    with pytest.raises(TypeError, match="download_logs must be a bool"):
        wandb_config(download_logs="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="download_logs must be a bool"):
        wandb_init(download_logs=1)  # type: ignore[arg-type]
