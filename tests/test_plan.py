"""The planning core against the seed's tables: "Single-node behavior", "Multi-node behavior", "Run ID patterns".

Every process derives its own plan; these tests plan every rank of a topology and compare the whole RunPlan.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from flyteplugins_wandb import DistributedInfo, RankScope, RunMode, RunPlan, plan
from flyteplugins_wandb.planning._plan import (
    LayoutError,
    LinkTarget,
    ParentRun,
    SharedWriter,
    base_id,
    link_target,
    link_targets,
)

B = "r7x-a3"
"""A base id ({run_name}-{action_name})."""

MODES = ("auto", "shared", "new")
SCOPES = ("global", "worker")


def node_rank(nodes: int, procs: int, node: int, local: int) -> DistributedInfo:
    """The topology of local rank ``local`` on node ``node`` of a homogeneous torchrun job."""
    return DistributedInfo(
        rank=node * procs + local,
        local_rank=local,
        world_size=nodes * procs,
        local_world_size=procs,
        worker_index=node,
        num_workers=nodes,
    )


def every_rank(nodes: int, procs: int) -> list[DistributedInfo]:
    """Every process of the job, in global-rank order."""
    return [node_rank(nodes, procs, n, lr) for n in range(nodes) for lr in range(procs)]


def leads(t: DistributedInfo, scope_in_force: str) -> bool:
    """The leader of a layout unit: global rank 0, or local rank 0 of each worker under worker scope."""
    return t.local_rank == 0 if scope_in_force == "worker" else t.rank == 0


def writer(label: str, primary: bool, writers: int) -> SharedWriter:
    return SharedWriter(label=label, primary=primary, writers=writers)


# Per rank, in global-rank order: (run_id, group, shared writer). gpu_index is always the local rank.
_ONE_NODE_AUTO = [(B, None, None), (None, None, None), (None, None, None), (None, None, None)]
_ONE_NODE_SHARED = [(B, None, writer(f"rank-{r}", r == 0, 4)) for r in range(4)]
_ONE_NODE_NEW = [(f"{B}-rank-{r}", B, None) for r in range(4)]

LAYOUT_ROWS = [
    # Single-node behavior (1 node x 4 processes): rank_scope has no effect, the scope in force is "global".
    pytest.param("auto", "global", 1, 4, "global", _ONE_NODE_AUTO, id="one-node-auto-only-rank-0-logs"),
    pytest.param("auto", "worker", 1, 4, "global", _ONE_NODE_AUTO, id="one-node-auto-worker-scope-ignored"),
    pytest.param("shared", "global", 1, 4, "global", _ONE_NODE_SHARED, id="one-node-shared-all-ranks-one-run"),
    pytest.param("shared", "worker", 1, 4, "global", _ONE_NODE_SHARED, id="one-node-shared-worker-scope-ignored"),
    pytest.param("new", "global", 1, 4, "global", _ONE_NODE_NEW, id="one-node-new-run-per-rank-one-group"),
    pytest.param("new", "worker", 1, 4, "global", _ONE_NODE_NEW, id="one-node-new-worker-scope-ignored"),
    # Multi-node behavior (2 nodes x 2 processes; ranks 0,1 on worker 0 and 2,3 on worker 1).
    pytest.param(
        "auto",
        "global",
        2,
        2,
        "global",
        [(B, None, None), (None, None, None), (None, None, None), (None, None, None)],
        id="multi-node-auto-global-global-rank-0-only",
    ),
    pytest.param(
        "auto",
        "worker",
        2,
        2,
        "worker",
        [(f"{B}-worker-0", None, None), (None, None, None), (f"{B}-worker-1", None, None), (None, None, None)],
        id="multi-node-auto-worker-local-rank-0-per-worker",
    ),
    pytest.param(
        "shared",
        "global",
        2,
        2,
        "global",
        [(B, None, writer(f"rank-{r}", r == 0, 4)) for r in range(4)],
        id="multi-node-shared-global-all-ranks-one-run",
    ),
    pytest.param(
        "shared",
        "worker",
        2,
        2,
        "worker",
        [
            (f"{B}-worker-0", None, writer("worker-0-rank-0", True, 2)),
            (f"{B}-worker-0", None, writer("worker-0-rank-1", False, 2)),
            (f"{B}-worker-1", None, writer("worker-1-rank-0", True, 2)),
            (f"{B}-worker-1", None, writer("worker-1-rank-1", False, 2)),
        ],
        id="multi-node-shared-worker-one-run-per-worker",
    ),
    pytest.param(
        "new",
        "global",
        2,
        2,
        "global",
        [(f"{B}-rank-{r}", B, None) for r in range(4)],
        id="multi-node-new-global-run-per-rank-one-group",
    ),
    pytest.param(
        "new",
        "worker",
        2,
        2,
        "worker",
        [
            (f"{B}-worker-0-rank-0", f"{B}-worker-0", None),
            (f"{B}-worker-0-rank-1", f"{B}-worker-0", None),
            (f"{B}-worker-1-rank-0", f"{B}-worker-1", None),
            (f"{B}-worker-1-rank-1", f"{B}-worker-1", None),
        ],
        id="multi-node-new-worker-run-per-rank-group-per-worker",
    ),
    # A shared run with a single writer needs no writer role.
    pytest.param("shared", "global", 1, 1, "global", [(B, None, None)], id="one-process-shared-has-no-writer-role"),
    pytest.param(
        "shared",
        "worker",
        2,
        1,
        "worker",
        [(f"{B}-worker-0", None, None), (f"{B}-worker-1", None, None)],
        id="one-process-per-worker-shared-worker-has-no-writer-role",
    ),
    pytest.param(
        "shared",
        "global",
        2,
        1,
        "global",
        [(B, None, writer("rank-0", True, 2)), (B, None, writer("rank-1", False, 2))],
        id="one-process-per-worker-shared-global-has-two-writers",
    ),
]


@pytest.mark.parametrize(("run_mode", "rank_scope", "nodes", "procs", "scope_in_force", "expected"), LAYOUT_ROWS)
def test_every_rank_gets_the_plan_of_the_layout_tables(
    run_mode: RunMode,
    rank_scope: RankScope,
    nodes: int,
    procs: int,
    scope_in_force: RankScope,
    expected: list[tuple[str | None, str | None, SharedWriter | None]],
) -> None:
    plans = [plan(t, run_mode, rank_scope, B) for t in every_rank(nodes, procs)]
    assert plans == [
        RunPlan(
            run_mode,
            scope_in_force,
            run_id=run_id,
            group=group,
            writer=w,
            gpu_index=t.local_rank,
            leader=leads(t, scope_in_force),
            role="main" if t.rank == 0 else "worker",
        )
        for t, (run_id, group, w) in zip(every_rank(nodes, procs), expected, strict=True)
    ]


# The seed's "Run ID patterns" table, verbatim, with who opens a run and, in shared mode, each writer's role.
Who = Callable[[DistributedInfo], bool]
Role = Callable[[DistributedInfo], "SharedWriter | None"]
NO_ROLE: Role = lambda t: None  # noqa: E731
PATTERN_ROWS = [
    pytest.param("auto", "global", "{base}", None, lambda t: t.rank == 0, NO_ROLE, id="auto-global"),
    pytest.param(
        "shared",
        "global",
        "{base}",
        None,
        lambda t: True,
        lambda t: writer(f"rank-{t.rank}", t.rank == 0, t.world_size),
        id="shared-global",
    ),
    pytest.param("auto", "worker", "{base}-worker-{idx}", None, lambda t: t.local_rank == 0, NO_ROLE, id="auto-worker"),
    pytest.param(
        "shared",
        "worker",
        "{base}-worker-{idx}",
        None,
        lambda t: True,
        lambda t: writer(f"worker-{t.worker_index}-rank-{t.local_rank}", t.local_rank == 0, t.local_world_size),
        id="shared-worker",
    ),
    pytest.param("new", "global", "{base}-rank-{global_rank}", "{base}", lambda t: True, NO_ROLE, id="new-global"),
    pytest.param(
        "new",
        "worker",
        "{base}-worker-{idx}-rank-{local_rank}",
        "{base}-worker-{idx}",
        lambda t: True,
        NO_ROLE,
        id="new-worker",
    ),
]


@pytest.mark.parametrize(("run_mode", "rank_scope", "id_pattern", "group_pattern", "opens_run", "role"), PATTERN_ROWS)
def test_every_rank_of_a_3x4_job_follows_the_run_id_patterns(
    run_mode: RunMode, rank_scope: RankScope, id_pattern: str, group_pattern: str | None, opens_run: Who, role: Role
) -> None:
    for t in every_rank(3, 4):
        fields = {"base": B, "idx": t.worker_index, "global_rank": t.rank, "local_rank": t.local_rank}
        opens = opens_run(t)
        expected = RunPlan(
            run_mode,
            rank_scope,
            run_id=id_pattern.format(**fields) if opens else None,
            group=group_pattern.format(**fields) if group_pattern and opens else None,
            writer=role(t),
            gpu_index=t.local_rank,
            leader=leads(t, rank_scope),
            role="main" if t.rank == 0 else "worker",
        )
        assert plan(t, run_mode, rank_scope, B) == expected, t


@pytest.mark.parametrize(
    ("run_mode", "rank_scope", "runs", "groups"),
    [
        pytest.param("auto", "global", lambda n, m: 1, lambda n: 0, id="auto-global-1-run"),
        pytest.param("auto", "worker", lambda n, m: n, lambda n: 0, id="auto-worker-N-runs"),
        pytest.param("shared", "global", lambda n, m: 1, lambda n: 0, id="shared-global-1-run"),
        pytest.param("shared", "worker", lambda n, m: n, lambda n: 0, id="shared-worker-N-runs"),
        pytest.param("new", "global", lambda n, m: n * m, lambda n: 1, id="new-global-NxM-runs-1-group"),
        pytest.param("new", "worker", lambda n, m: n * m, lambda n: n, id="new-worker-NxM-runs-N-groups"),
    ],
)
@pytest.mark.parametrize(("nodes", "procs"), [(2, 2), (3, 4), (4, 1)], ids=["2x2", "3x4", "4x1"])
def test_multi_node_jobs_have_the_run_and_group_counts_of_the_table(
    run_mode: str,
    rank_scope: str,
    runs: Callable[[int, int], int],
    groups: Callable[[int], int],
    nodes: int,
    procs: int,
) -> None:
    plans = [plan(t, run_mode, rank_scope, B) for t in every_rank(nodes, procs)]
    assert len({p.run_id for p in plans if p.starts_run}) == runs(nodes, procs)
    assert len({p.group for p in plans if p.starts_run and p.group is not None}) == groups(nodes)


@pytest.mark.parametrize("run_mode", MODES)
@pytest.mark.parametrize("rank_scope", SCOPES)
def test_a_process_that_is_not_distributed_opens_one_run_named_base(run_mode: RunMode, rank_scope: str) -> None:
    assert plan(None, run_mode, rank_scope, B) == RunPlan(
        run_mode,
        "global",
        run_id=B,
        group=B if run_mode == "new" else None,
        writer=None,
        gpu_index=None,
        leader=True,
        role=None,
    )


@pytest.mark.parametrize(
    ("run_mode", "expected_group"),
    [("auto", "exp"), ("shared", "exp"), ("new", "exp")],
    ids=["auto-as-is", "shared-as-is", "new-stem-replaced"],
)
def test_a_user_group_is_the_group_of_a_process_that_is_not_distributed(run_mode: str, expected_group: str) -> None:
    p = plan(None, run_mode, "global", B, group="exp")
    assert (p.run_id, p.group) == (B, expected_group)


@pytest.mark.parametrize(
    ("run_mode", "rank_scope", "expected_groups"),
    [
        pytest.param("auto", "global", ["exp"], id="auto-global-as-is"),
        pytest.param("auto", "worker", ["exp", "exp"], id="auto-worker-as-is"),
        pytest.param("shared", "global", ["exp"] * 4, id="shared-global-as-is"),
        pytest.param("shared", "worker", ["exp"] * 4, id="shared-worker-as-is"),
        pytest.param("new", "global", ["exp"] * 4, id="new-global-replaces-the-stem"),
        pytest.param(
            "new", "worker", ["exp-worker-0", "exp-worker-0", "exp-worker-1", "exp-worker-1"], id="new-worker-stem"
        ),
    ],
)
def test_a_user_group_names_the_groups_but_never_changes_run_ids(
    run_mode: str, rank_scope: str, expected_groups: list[str]
) -> None:
    topologies = every_rank(2, 2)
    with_group = [plan(t, run_mode, rank_scope, B, group="exp") for t in topologies]
    without = [plan(t, run_mode, rank_scope, B) for t in topologies]
    assert [p.run_id for p in with_group] == [p.run_id for p in without]
    assert [p.group for p in with_group if p.starts_run] == expected_groups


@pytest.mark.parametrize("topology", [None, node_rank(2, 2, 1, 1)], ids=["not-distributed", "distributed"])
def test_an_unknown_run_mode_is_rejected_naming_the_value_and_the_choices(topology: DistributedInfo | None) -> None:
    with pytest.raises(ValueError, match=r"run_mode must be one of \('auto', 'new', 'shared'\), got 'shard'"):
        plan(topology, "shard", "global", B)


@pytest.mark.parametrize("topology", [None, node_rank(2, 2, 1, 1)], ids=["not-distributed", "distributed"])
def test_an_unknown_rank_scope_is_rejected_naming_the_value_and_the_choices(topology: DistributedInfo | None) -> None:
    with pytest.raises(ValueError, match=r"rank_scope must be one of \('global', 'worker'\), got 'node'"):
        plan(topology, "auto", "node", B)


def test_run_mode_choices_are_case_sensitive() -> None:
    with pytest.raises(ValueError, match="got 'AUTO'"):
        plan(None, "AUTO", "global", B)


def test_base_id_joins_run_name_and_action_name() -> None:
    assert base_id("r7x", "a3") == "r7x-a3"


@pytest.mark.parametrize(("run_name", "action_name"), [("", "a3"), ("r7x", ""), ("", "")])
def test_base_id_rejects_an_empty_name_showing_both_values(run_name: str, action_name: str) -> None:
    with pytest.raises(ValueError, match="non-empty") as err:
        base_id(run_name, action_name)
    assert f"{run_name!r} and {action_name!r}" in str(err.value)


@pytest.mark.parametrize("bad", list("/\\#?%:"))
def test_base_id_rejects_characters_that_a_wandb_run_id_cannot_hold(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot contain") as err:
        base_id(f"r{bad}7", "a3")
    assert repr(bad) in str(err.value) and repr(f"r{bad}7-a3") in str(err.value)


def test_base_id_keeps_flyte_templates_intact() -> None:
    assert base_id("{{.runName}}", "{{.actionName}}") == "{{.runName}}-{{.actionName}}"


PARENT = ParentRun("r7x-a0", group="g0")


@pytest.mark.parametrize("run_mode", ["auto", "shared"])
def test_a_child_task_joins_its_parents_run_as_a_non_primary_writer(run_mode: RunMode) -> None:
    assert plan(None, run_mode, "global", B, parent=PARENT, label="a3") == RunPlan(
        run_mode,
        "global",
        run_id="r7x-a0",
        group="g0",
        writer=SharedWriter(label="a3", primary=False, writers=0),
    )


@pytest.mark.parametrize(
    ("parent", "user_group", "expected_group"),
    [
        pytest.param(PARENT, None, "g0", id="parents-group"),
        pytest.param(ParentRun("r7x-a0"), None, "r7x-a0", id="parents-run-id-without-a-group"),
        pytest.param(PARENT, "exp", "exp", id="user-group-first"),
    ],
)
def test_a_child_task_in_new_mode_opens_its_own_run_grouped_with_its_parent(
    parent: ParentRun, user_group: str | None, expected_group: str
) -> None:
    p = plan(None, "new", "global", B, user_group, parent=parent)
    assert (p.run_id, p.group, p.writer) == (B, expected_group, None)


@pytest.mark.parametrize("run_mode", MODES)
def test_a_distributed_child_task_builds_its_own_layout(run_mode: str) -> None:
    for t in every_rank(2, 2):
        assert plan(t, run_mode, "worker", B, parent=PARENT) == plan(t, run_mode, "worker", B)


def test_shared_mode_without_a_parent_on_a_task_that_cannot_be_distributed_is_a_layout_error() -> None:
    with pytest.raises(LayoutError, match=f"run_mode='shared' on task {B!r}"):
        plan(None, "shared", "global", B, standalone_shared=False)


def run(name: str) -> LinkTarget:
    return LinkTarget("run", name)


def group(name: str) -> LinkTarget:
    return LinkTarget("group", name)


@pytest.mark.parametrize(
    ("run_mode", "rank_scope", "num_workers", "user_group", "expected"),
    [
        pytest.param("auto", "global", None, None, [run(B)], id="not-distributed-auto"),
        pytest.param("shared", "worker", None, None, [run(B)], id="not-distributed-shared"),
        pytest.param("new", "global", None, None, [run(B)], id="not-distributed-new-its-one-run"),
        pytest.param("auto", "worker", 1, None, [run(B)], id="one-node-auto-worker-is-global"),
        pytest.param("new", "worker", 1, None, [group(B)], id="one-node-new-worker-is-global"),
        pytest.param("auto", "global", 3, None, [run(B)], id="three-nodes-auto-global-one-run"),
        pytest.param("shared", "global", 3, None, [run(B)], id="three-nodes-shared-global-one-run"),
        pytest.param("new", "global", 3, None, [group(B)], id="three-nodes-new-global-one-group"),
        pytest.param(
            "auto", "worker", 3, None, [run(f"{B}-worker-{i}") for i in range(3)], id="three-nodes-auto-worker"
        ),
        pytest.param(
            "shared", "worker", 3, None, [run(f"{B}-worker-{i}") for i in range(3)], id="three-nodes-shared-worker"
        ),
        pytest.param(
            "new", "worker", 3, None, [group(f"{B}-worker-{i}") for i in range(3)], id="three-nodes-new-worker"
        ),
        pytest.param("new", "global", 3, "exp", [group("exp")], id="new-global-user-group"),
        pytest.param(
            "new", "worker", 2, "exp", [group("exp-worker-0"), group("exp-worker-1")], id="new-worker-user-group"
        ),
        pytest.param("auto", "global", 2, "exp", [run(B)], id="auto-user-group-still-links-the-run"),
    ],
)
def test_link_targets_are_one_page_per_run_or_group_in_worker_order(
    run_mode: str, rank_scope: str, num_workers: int | None, user_group: str | None, expected: list[LinkTarget]
) -> None:
    assert link_targets(B, run_mode, rank_scope, num_workers, user_group) == tuple(expected)


@pytest.mark.parametrize("num_workers", [0, -1])
def test_link_targets_reject_a_worker_count_below_one(num_workers: int) -> None:
    with pytest.raises(ValueError, match=f"num_workers must be >= 1 or None, got {num_workers}"):
        link_targets(B, "auto", "global", num_workers)


@pytest.mark.parametrize("worker_index", [2, -1])
def test_a_link_target_for_a_worker_outside_the_job_is_rejected(worker_index: int) -> None:
    with pytest.raises(ValueError, match=rf"worker_index must be in \[0, 2\), got {worker_index}"):
        link_target(B, "auto", "worker", 2, worker_index)


def test_a_worker_without_a_run_of_its_own_links_to_the_one_run_there_is() -> None:
    assert link_target(B, "auto", "global", 3, 2) == run(B)


@pytest.mark.parametrize(
    ("nodes", "procs"), [(None, None), (1, 1), (1, 4), (2, 1), (2, 2), (3, 4)], ids=lambda v: str(v)
)
def test_link_targets_show_exactly_the_runs_and_groups_that_plan_creates_over_all_ranks(
    nodes: int | None, procs: int | None
) -> None:
    topologies: list[DistributedInfo | None] = [None] if nodes is None else [*every_rank(nodes, procs or 1)]
    for run_mode, rank_scope, user_group in itertools.product(MODES, SCOPES, (None, "exp")):
        plans = [plan(t, run_mode, rank_scope, B, user_group) for t in topologies]
        opened = [p for p in plans if p.starts_run]
        # A task that is not distributed has one run: its run page, even in new mode.
        if run_mode == "new" and nodes is not None:
            expected = {group(str(p.group)) for p in opened}
        else:
            expected = {run(str(p.run_id)) for p in opened}
        targets = link_targets(B, run_mode, rank_scope, nodes, user_group)
        layout = (run_mode, rank_scope, user_group)
        assert set(targets) == expected, layout
        assert len(targets) == len(expected), layout
