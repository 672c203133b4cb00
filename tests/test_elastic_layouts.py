"""End to end: every run_mode x rank_scope layout on real torch elastic workers (2 nodes x 2 processes, and 1 node
x 2 processes), W&B offline, checked against the spec tables (Single-node behavior, Multi-node behavior, Run ID
patterns) through three independent witnesses: what each rank saw, the run manifest, and the offline run files.
Each launch is asserted whole, to keep the number of (slow) launches down; that includes the rule that a rank
without a run never imports wandb (the auto rows are where it bites). The launches of the layouts are the session's
shared ones (tests/layout_launches.py), which other modules read other facts from.

Expected values are written out from the tables, not derived from the package's planner. Ranks are laid out as
torch elastic does on homogeneous nodes: worker ``i`` holds global ranks ``2i`` and ``2i + 1`` (local ranks 0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import elastic_tasks as tasks
import pytest
from layout_launches import ACTION, RUN_NAME, LayoutLaunch, X, read_offline_runs
from readback import OfflineRun

from flyteplugins_wandb import wandb_config
from flyteplugins_wandb.local import LocalElasticError, LocalElasticResult, run_elastic_locally

pytestmark = pytest.mark.elastic

B = f"{RUN_NAME}-{ACTION}"  # {base} = {run_name}-{action_name}
PAGES = f"https://wandb.ai/{tasks.ENTITY}/{tasks.PROJECT}"


@dataclass(frozen=True)
class Layout:
    """One row of the spec tables, for one launch."""

    runs: dict[str, tuple[int, ...]]
    """Run id -> the global ranks that write to it; ranks not listed have no run."""
    links: tuple[str, ...]
    """The pages the task's links open, in worker order, after ``https://wandb.ai/{entity}/{project}/``."""
    groups: dict[str, str] = field(default_factory=dict)
    """Run id -> W&B group; a run not listed has none."""
    labels: dict[int, str] = field(default_factory=dict)
    """Shared mode: rank -> ``x_label``."""
    primaries: frozenset[int] = frozenset()
    """Shared mode: the ranks that are their run's primary writer."""

    def run_of(self, rank: int) -> str | None:
        return next((run_id for run_id, ranks in self.runs.items() if rank in ranks), None)


# Multi-node behavior, 2 nodes (N) x 2 processes (M).
AUTO_GLOBAL = Layout(runs={B: (0,)}, links=(f"runs/{B}",))
AUTO_WORKER = Layout(
    runs={f"{B}-worker-0": (0,), f"{B}-worker-1": (2,)},
    links=(f"runs/{B}-worker-0", f"runs/{B}-worker-1"),
)
SHARED_GLOBAL = Layout(
    runs={B: (0, 1, 2, 3)},
    links=(f"runs/{B}",),
    labels={0: "rank-0", 1: "rank-1", 2: "rank-2", 3: "rank-3"},
    primaries=frozenset({0}),
)
SHARED_WORKER = Layout(
    runs={f"{B}-worker-0": (0, 1), f"{B}-worker-1": (2, 3)},
    links=(f"runs/{B}-worker-0", f"runs/{B}-worker-1"),
    labels={0: "worker-0-rank-0", 1: "worker-0-rank-1", 2: "worker-1-rank-0", 3: "worker-1-rank-1"},
    primaries=frozenset({0, 2}),
)
NEW_GLOBAL = Layout(
    runs={f"{B}-rank-0": (0,), f"{B}-rank-1": (1,), f"{B}-rank-2": (2,), f"{B}-rank-3": (3,)},
    groups={f"{B}-rank-0": B, f"{B}-rank-1": B, f"{B}-rank-2": B, f"{B}-rank-3": B},
    links=(f"groups/{B}",),
)
NEW_WORKER = Layout(
    runs={
        f"{B}-worker-0-rank-0": (0,),
        f"{B}-worker-0-rank-1": (1,),
        f"{B}-worker-1-rank-0": (2,),
        f"{B}-worker-1-rank-1": (3,),
    },
    groups={
        f"{B}-worker-0-rank-0": f"{B}-worker-0",
        f"{B}-worker-0-rank-1": f"{B}-worker-0",
        f"{B}-worker-1-rank-0": f"{B}-worker-1",
        f"{B}-worker-1-rank-1": f"{B}-worker-1",
    },
    links=(f"groups/{B}-worker-0", f"groups/{B}-worker-1"),
)
# Single-node behavior, 1 node x 2 processes: the tasks say rank_scope="worker", which must change nothing.
SINGLE_AUTO = Layout(runs={B: (0,)}, links=(f"runs/{B}",))
SINGLE_SHARED = Layout(
    runs={B: (0, 1)}, links=(f"runs/{B}",), labels={0: "rank-0", 1: "rank-1"}, primaries=frozenset({0})
)
SINGLE_NEW = Layout(
    runs={f"{B}-rank-0": (0,), f"{B}-rank-1": (1,)},
    groups={f"{B}-rank-0": B, f"{B}-rank-1": B},
    links=(f"groups/{B}",),
)


def launch(task: Any, out_dir: Path, **kwargs: Any) -> LocalElasticResult:
    out_dir.mkdir()
    return run_elastic_locally(
        task, nproc_per_node=2, run_name=RUN_NAME, action_name=ACTION, out_dir=str(out_dir), x=X, **kwargs
    )


def check_ranks(facts: dict[int, dict[str, Any]], expected: Layout, world_size: int) -> None:
    """Each rank's own view: its place, its run (or none), and that only ranks with a run imported wandb."""
    assert sorted(facts) == list(range(world_size)), "every rank ran the body"
    for rank, seen in facts.items():
        assert (seen["worker_index"], seen["local_rank"]) == (rank // 2, rank % 2), f"rank {rank} placement"
        assert seen["run_id"] == expected.run_of(rank), f"rank {rank}: get_wandb_run()"
        assert seen["module_run_id"] == seen["run_id"], f"rank {rank}: wandb.run is its run (or None)"
        assert seen["wandb_imported"] is (seen["run_id"] is not None), f"rank {rank}: wandb imported iff it has a run"


def check_manifest(result: LocalElasticResult, expected: Layout) -> None:
    """Which ranks opened which run, in which group and shared role."""
    writers = sorted((rec.run_id, rec.rank) for rec in result.runs)
    assert writers == sorted((run_id, r) for run_id, ranks in expected.runs.items() for r in ranks)
    assert set(result.run_ids) == set(expected.runs)
    for rec in result.runs:
        assert rec.group == expected.groups.get(rec.run_id), f"{rec.run_id} (rank {rec.rank}): manifest group"
        assert rec.label == expected.labels.get(rec.rank), f"rank {rec.rank}: shared label"
        assert rec.primary == (rec.rank in expected.primaries if expected.labels else None), f"rank {rec.rank}"
        assert (rec.project, rec.entity, rec.wandb_mode) == (tasks.PROJECT, tasks.ENTITY, "offline")


def check_offline_files(files: list[OfflineRun], result: LocalElasticResult, expected: Layout) -> list[OfflineRun]:
    """What W&B really wrote: one file per writer (shared writers too), each with its writer's own metrics."""
    by_dir = {f.path.parent: f for f in files}
    assert len(by_dir) == len(files), "no two writers share an offline run directory"
    assert sorted(by_dir) == sorted(Path(str(rec.directory)) for rec in result.runs), "a file per writer, no other"
    for rec in result.runs:
        written = by_dir[Path(str(rec.directory))]
        assert written.run_id == rec.run_id
        assert written.group == expected.groups.get(rec.run_id, ""), f"{rec.run_id}: group in the offline file"
        assert (written.project, written.entity) == (tasks.PROJECT, tasks.ENTITY)
        assert written.metric("rank") == [rec.rank], f"{rec.run_id}: the history of rank {rec.rank}'s writer"
        assert written.metric("x") == [X]
        assert written.metric("row") == list(range(tasks.ROWS))
        assert (written.exit_code, written.state) == (0, "finished")
    for run_id, ranks in expected.runs.items():
        logged = sorted(r for f in files if f.run_id == run_id for r in f.metric("rank"))
        assert logged == sorted(ranks), f"{run_id}: every writer's values are present"
    return files


def check_links(
    result: LocalElasticResult, links: tuple[str, ...], files: list[OfflineRun], *, all_pages: bool
) -> None:
    """The links open the runs (or, in new mode, the groups) that the launch created; with ``all_pages``, every
    one of them."""
    urls = tuple(url for _, url in result.links)
    assert urls == tuple(f"{PAGES}/{page}" for page in links)
    created = {f"groups/{f.group}" if f.group else f"runs/{f.run_id}" for f in files}
    assert set(links) <= created, "no link opens a page that the launch did not create"
    if all_pages:
        assert set(links) == created, "every page the launch created has a link"


LAYOUTS = [
    pytest.param("2x2-auto-global", AUTO_GLOBAL, 4, id="2x2-auto-global-rank-0-only-one-run"),
    pytest.param("2x2-auto-worker", AUTO_WORKER, 4, id="2x2-auto-worker-local-rank-0-per-worker"),
    pytest.param("2x2-shared-global", SHARED_GLOBAL, 4, id="2x2-shared-global-all-ranks-one-run"),
    pytest.param("2x2-shared-worker", SHARED_WORKER, 4, id="2x2-shared-worker-one-run-per-worker"),
    pytest.param("2x2-new-global", NEW_GLOBAL, 4, id="2x2-new-global-run-per-rank-one-group"),
    pytest.param("2x2-new-worker", NEW_WORKER, 4, id="2x2-new-worker-run-per-rank-group-per-worker"),
    pytest.param("1x2-auto", SINGLE_AUTO, 2, id="1x2-auto-rank-0-only"),
    pytest.param("1x2-shared", SINGLE_SHARED, 2, id="1x2-shared-all-ranks-one-run"),
    pytest.param("1x2-new", SINGLE_NEW, 2, id="1x2-new-run-per-rank-grouped"),
]


@pytest.mark.parametrize(("layout_launch", "expected", "world_size"), LAYOUTS, indirect=["layout_launch"])
def test_each_layout_creates_the_runs_groups_and_links_of_the_spec_tables(
    layout_launch: LayoutLaunch, expected: Layout, world_size: int
) -> None:
    result = layout_launch.result

    assert (result.run_name, result.action_name) == (RUN_NAME, ACTION)
    assert result.output == "rank-0"
    check_ranks(layout_launch.facts, expected, world_size)
    check_manifest(result, expected)
    files = check_offline_files(layout_launch.files, result, expected)
    check_links(result, expected.links, files, all_pages=True)


def test_a_layout_given_only_in_the_run_context_drives_both_the_runs_and_the_links(
    wandb_env: Path, tmp_path: Path
) -> None:
    context = wandb_config(project=tasks.PROJECT, entity=tasks.ENTITY, run_mode="new", rank_scope="worker")

    result = launch(tasks.from_context, tmp_path / "facts", custom_context=context)

    check_ranks(tasks.read_facts(tmp_path / "facts"), NEW_WORKER, 4)
    check_manifest(result, NEW_WORKER)
    files = check_offline_files(read_offline_runs(wandb_env), result, NEW_WORKER)
    # The number of links is fixed when the task is defined, and this decorator does not ask for worker scope:
    # by the README ("Links in the Flyte UI") the single link follows the context to worker 0's group.
    check_links(result, (f"groups/{B}-worker-0",), files, all_pages=False)


def test_a_failing_body_fails_the_launch_and_records_every_run_as_failed(wandb_env: Path, tmp_path: Path) -> None:
    (tmp_path / "facts").mkdir()

    with pytest.raises(LocalElasticError) as failure:
        run_elastic_locally(
            tasks.fails_everywhere,
            nproc_per_node=2,
            max_restarts=0,
            run_name=RUN_NAME,
            action_name=ACTION,
            out_dir=str(tmp_path / "facts"),
            x=X,
        )

    reported = str(failure.value) + failure.value.remote_traceback
    assert f"deliberate failure {X} on rank" in reported, "the body's own error reaches the caller"
    facts = tasks.read_facts(tmp_path / "facts")
    assert {rank: seen["run_id"] for rank, seen in facts.items()} == {0: f"{B}-rank-0", 1: f"{B}-rank-1"}
    files = read_offline_runs(wandb_env)
    assert sorted(f.run_id for f in files) == [f"{B}-rank-0", f"{B}-rank-1"]
    for f in files:
        assert f.metric("x") == [X], f"{f.run_id}: what was logged before the failure is kept"
        assert (f.exit_code, f.state) == (1, "failed"), f"{f.run_id} is recorded as failed"
