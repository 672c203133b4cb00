"""wandb's module API in the body of a 1 x 2 Elastic task, on real torch elastic workers, W&B offline: in every
layout a rank with a run logs, configures and summarises through ``wandb.log``/``wandb.config``/``wandb.summary``
into its layout's run, and a rank without one gets an error that names the guard, and imports wandb only when its
own code does. One launch per layout; what it wrote is read back from the offline files.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import module_api_tasks as tasks
import pytest
from readback import OfflineRun, inspect_run

from flyteplugins_wandb.local import LocalElasticResult, run_elastic_locally

pytestmark = pytest.mark.elastic

RUN_NAME = "r5"
ACTION = "a2"
B = f"{RUN_NAME}-{ACTION}"
PAGES = f"https://wandb.ai/{tasks.ENTITY}/{tasks.PROJECT}"


@dataclass(frozen=True)
class Expected:
    runs: dict[int, str | None]
    """Global rank -> the run it writes to (None: no run)."""
    link: str


LAYOUTS = {
    "auto": (tasks.module_api_auto, Expected({0: B, 1: None}, f"runs/{B}")),
    "shared": (tasks.module_api_shared, Expected({0: B, 1: B}, f"runs/{B}")),
    "new": (tasks.module_api_new, Expected({0: f"{B}-rank-0", 1: f"{B}-rank-1"}, f"groups/{B}")),
}


@dataclass(frozen=True)
class Launch:
    result: LocalElasticResult
    seen: dict[int, dict[str, Any]]
    files: list[OfflineRun]
    expected: Expected


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def launched(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Launch:
    """One launch per layout, read back once for the tests below (the autouse W&B environment is per test, so
    this fixture sets its own)."""
    task, expected = LAYOUTS[request.param]
    root = tmp_path_factory.mktemp(f"modapi-{request.param}")
    wandb_dir, out = root / "wandb", root / "seen"
    wandb_dir.mkdir()
    out.mkdir()
    env = {"WANDB_DIR": str(wandb_dir), "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        (root / name).mkdir()
        env[name] = str(root / name)
    result = run_elastic_locally(
        task, nproc_per_node=2, run_name=RUN_NAME, action_name=ACTION, env=env, out_dir=str(out)
    )
    files = sorted(wandb_dir.rglob("offline-run-*/run-*.wandb"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        read = list(pool.map(inspect_run, files))
    return Launch(result, tasks.read_seen(out), read, expected)


def test_wandb_run_is_the_layout_run_of_each_rank_that_has_one(launched: Launch) -> None:
    for rank, run_id in launched.expected.runs.items():
        seen = launched.seen[rank]
        assert seen["run_id"] == run_id, f"rank {rank}: get_wandb_run()"
        assert seen["module_run_id"] == run_id, f"rank {rank}: wandb.run is get_wandb_run()"


def test_module_api_writes_rows_config_and_summary_into_each_writers_run_and_makes_no_other(
    launched: Launch,
) -> None:
    writers = {rank: run_id for rank, run_id in launched.expected.runs.items() if run_id is not None}
    assert len(launched.files) == len(writers), "one offline run per writer, no extra run"
    by_rank = {f.metric("module_rank")[0]: f for f in launched.files if f.metric("module_rank")}
    assert sorted(by_rank) == sorted(writers), "every writer's rows are in a file of its own"
    for rank, written in by_rank.items():
        assert written.run_id == writers[rank]
        assert written.metric("module_loss") == [1.0 / (i + 1) for i in range(tasks.ROWS)], f"rank {rank}: rows"
        assert written.metric("module_rank") == [rank] * tasks.ROWS
        assert written.config[f"config_from_rank_{rank}"] == rank, f"rank {rank}: wandb.config.update"
        assert written.summary[f"summary_from_rank_{rank}"] == rank, f"rank {rank}: wandb.summary[...]"
        assert (written.exit_code, written.state) == (0, "finished")


def test_a_rank_without_a_run_imports_wandb_only_when_its_code_does_and_is_told_to_guard(launched: Launch) -> None:
    for rank, run_id in launched.expected.runs.items():
        seen = launched.seen[rank]
        # A rank with a run imported wandb to open it; one without never did before its own `import wandb`.
        assert seen["wandb_before_body"] is (run_id is not None), f"rank {rank}: wandb imported before the body"
        if run_id is not None:
            continue
        for error in (seen["log_error"], seen["config_error"]):
            assert error is not None, f"rank {rank}: wandb's module API did not refuse"
            assert error.startswith("wandb.errors.errors.Error: wandb."), error
            assert f"rank {rank} has no W&B run in its layout (run_mode='auto'" in error, error
            assert "get_wandb_run() is None" in error, error
            assert "wandb.init()" not in error, "no advice to open a run of one's own"


def test_the_links_open_the_runs_the_module_api_wrote_to(launched: Launch) -> None:
    assert [url for _, url in launched.result.links] == [f"{PAGES}/{launched.expected.link}"]
    created = {f"groups/{f.group}" if f.group else f"runs/{f.run_id}" for f in launched.files}
    assert created == {launched.expected.link}
