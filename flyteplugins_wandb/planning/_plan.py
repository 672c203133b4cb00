"""The planning core: topology and layout in, a frozen per-process plan out.

This module holds every rule for run ids, groups and shared-mode roles. It imports neither wandb nor flyte, does no
I/O and needs no communication: each process derives its own plan, and the Flyte links derive theirs from the same
functions, so a link cannot disagree with the run it names.

Run id rules (``base`` is ``{run_name}-{action_name}``; a "child" is a task launched by a task that has a run):

| layout                                  | run id                                  | group                         |
| --------------------------------------- | --------------------------------------- | ----------------------------- |
| not distributed, auto / shared          | ``{base}``                              | -                             |
| not distributed, new                    | ``{base}``                              | ``{base}``                    |
| child, not distributed, auto / shared   | the parent's run id (non-primary writer)| the parent's                  |
| child, not distributed, new             | ``{base}``                              | the parent's group, or its id |
| one node, auto / shared                 | ``{base}``                              | -                             |
| one node, new                           | ``{base}-rank-{rank}``                  | ``{base}``                    |
| several nodes, auto / shared, global    | ``{base}``                              | -                             |
| several nodes, auto / shared, worker    | ``{base}-worker-{i}``                   | -                             |
| several nodes, new, global              | ``{base}-rank-{rank}``                  | ``{base}``                    |
| several nodes, new, worker              | ``{base}-worker-{i}-rank-{local_rank}`` | ``{base}-worker-{i}``         |

A user-given group replaces the ``{base}`` stem of the new-mode groups, and is the group of auto/shared runs.
A trial of an online sweep takes the run id the W&B sweep server assigned it as its ``base``.

A user-given run id (``wandb_config(id=...)``, ``@wandb_init(id=...)``) is the run id of a layout that has one run
of its own: a task that is not distributed (its group in ``new`` mode is the user's group, else the parent's, else
the id), and a distributed task whose layout makes one run (``auto``/``shared`` under global scope or on one node,
where all ranks that write share it). A layout that makes several runs (``new`` on several processes, worker scope
on several nodes) cannot take one id and raises :class:`LayoutError`; so does a child that would join its parent's
run (``auto``/``shared``) under a different id.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from ._options import RANK_SCOPES, RUN_MODES, RankScope, RunMode, check_choice
from ._topology import DistributedInfo

__all__ = [
    "LayoutError",
    "LinkTarget",
    "ParentRun",
    "RunPlan",
    "SharedWriter",
    "base_id",
    "link_target",
    "link_targets",
    "plan",
]


_FORBIDDEN_ID_CHARACTERS = "/\\#?%:"


def base_id(run_name: str, action_name: str) -> str:
    """The id every layout builds on: ``{run_name}-{action_name}``."""
    if not run_name or not action_name:
        raise ValueError(f"run_name and action_name must be non-empty, got {run_name!r} and {action_name!r}")
    base = f"{run_name}-{action_name}"
    bad = sorted(set(base) & set(_FORBIDDEN_ID_CHARACTERS))
    if bad:
        raise ValueError(f"a W&B run id cannot contain {''.join(bad)!r}; got run id base {base!r}")
    return base


@dataclass(frozen=True)
class SharedWriter:
    """This process's role as one of several writers of a W&B shared-mode run."""

    label: str
    """``x_label``: tells this writer's metrics, console lines and system stats apart."""
    primary: bool
    """``x_primary``: creates the run, uploads shared files and alone sets the final state."""
    writers: int
    """How many processes of this task write to this run (the primary waits for the others before finishing);
    0 for a child task joining its parent's run, whose writers are not counted."""


@dataclass(frozen=True)
class RunPlan:
    """What one process does: whether it opens a run, with which id and group, and in which role."""

    run_mode: RunMode
    rank_scope: RankScope
    """The scope in force: always ``global`` on one node, where rank_scope has no effect."""
    run_id: str | None
    """None when this process opens no run."""
    group: str | None = None
    writer: SharedWriter | None = None
    """Set only in shared mode with more than one writer."""
    gpu_index: int | None = None
    """The local GPU this process drives, by convention its local rank; None when not distributed."""
    leader: bool = False
    """This process leads its layout unit: global rank 0, or local rank 0 of each worker under worker scope, of a
    distributed task; the process of a plain task; never a child joining its parent's run. The leader logs what
    its unit reduces across ranks (``log_reduced``). Not W&B's "primary" writer role (see :class:`SharedWriter`),
    though a shared run's primary writer is its unit's leader."""
    role: Literal["main", "worker"] | None = None
    """The default W&B job type of a distributed task's runs: ``main`` for global rank 0's, ``worker`` for the
    others (so saved views can filter workers); None for a task that is not distributed."""

    @property
    def starts_run(self) -> bool:
        return self.run_id is not None


@dataclass(frozen=True)
class ParentRun:
    """The run of the task that launched this one (it travels to children in the run context)."""

    run_id: str
    group: str | None = None


class LayoutError(ValueError):
    """The requested layout cannot be built for this process."""


def plan(
    topology: DistributedInfo | None,
    run_mode: str,
    rank_scope: str,
    base: str,
    group: str | None = None,
    *,
    parent: ParentRun | None = None,
    label: str | None = None,
    standalone_shared: bool = True,
    attempt: int | None = None,
    run_id: str | None = None,
) -> RunPlan:
    """Decide this process's run from its topology and the layout. Pure: same inputs, same plan, on every rank.

    ``group`` is the user's group, if any: in ``new`` mode it replaces ``{base}`` as the stem of the layout's
    groups; in ``auto``/``shared`` mode it is the run's group as given.

    ``parent`` is the run of the launching task. A task that is not distributed joins it in ``auto``/``shared``
    mode (as a non-primary writer labelled ``label``) and is grouped with it in ``new`` mode. Distributed tasks
    build their own layout. Without a parent, ``shared`` on a task that is not distributed is one plain run when
    ``standalone_shared`` (an Elastic task running in one process, or a layout that came from the run context),
    and a :class:`LayoutError` otherwise.

    ``attempt`` asks for a fresh run per Flyte attempt (Flyte counts from 0): ``-attempt-{n}`` is appended to
    every id this task creates, and runs without a layout group are grouped under their id without the suffix.

    ``run_id`` is the user's run id: it replaces ``base`` where the layout has one run (see the module's docstring).
    """
    if run_id is not None:
        _check_user_id(topology, run_mode, rank_scope, run_id, parent)
        base = run_id
    p = _plan(topology, run_mode, rank_scope, base, group, parent, label, standalone_shared)
    if run_id is not None and p.run_id is not None and (p.writer is None or p.writer.writers != 0):
        p = dataclasses.replace(p, run_id=run_id)  # a one-process new layout would otherwise add "-rank-0"
    if attempt is None or p.run_id is None or (p.writer is not None and p.writer.writers == 0):
        return p
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt!r}")
    return dataclasses.replace(p, run_id=f"{p.run_id}-attempt-{attempt}", group=p.group or p.run_id)


def _check_user_id(
    topology: DistributedInfo | None, run_mode: str, rank_scope: str, run_id: str, parent: ParentRun | None
) -> None:
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"id must be a non-empty str (a W&B run id), got {run_id!r}")
    bad = sorted(set(run_id) & set(_FORBIDDEN_ID_CHARACTERS))
    if bad:
        raise ValueError(f"a W&B run id cannot contain {''.join(bad)!r}; got id {run_id!r}")
    if topology is None:
        if parent is not None and run_mode != "new" and run_id != parent.run_id:
            raise LayoutError(
                f"id={run_id!r}: in run_mode={run_mode!r} this child task logs to its parent's run "
                f"{parent.run_id!r}; give it run_mode='new' for a run of its own under that id, or no id"
            )
        return
    per_worker = rank_scope == "worker" and topology.is_multi_node
    runs = topology.world_size if run_mode == "new" else topology.num_workers if per_worker else 1
    if runs > 1:
        raise LayoutError(
            f"id={run_id!r} names one run, but run_mode={run_mode!r} with rank_scope={rank_scope!r} makes {runs} "
            f"runs on this task's {topology.world_size} processes ({topology.num_workers} nodes); give no id (the "
            "layout names each run) or use a layout with one run (run_mode 'auto' or 'shared', rank_scope 'global')"
        )


def _plan(
    topology: DistributedInfo | None,
    run_mode: str,
    rank_scope: str,
    base: str,
    group: str | None,
    parent: ParentRun | None,
    label: str | None,
    standalone_shared: bool,
) -> RunPlan:
    mode: RunMode = check_choice("run_mode", run_mode, RUN_MODES)  # type: ignore[assignment]
    scope: RankScope = check_choice("rank_scope", rank_scope, RANK_SCOPES)  # type: ignore[assignment]

    stem = group if group is not None else base
    if topology is None:
        if parent is not None and mode != "new":
            joining = SharedWriter(label=label or base, primary=False, writers=0)
            return RunPlan(mode, "global", run_id=parent.run_id, group=parent.group, writer=joining)
        if parent is not None:
            return RunPlan(mode, "global", run_id=base, group=group or parent.group or parent.run_id, leader=True)
        if mode == "shared" and not standalone_shared:
            raise LayoutError(
                f"run_mode='shared' on task {base!r}: there is no parent run to share (the launching task has no "
                "@wandb_init run) and the task is not distributed; use run_mode='auto' or 'new'"
            )
        return RunPlan(mode, "global", run_id=base, group=stem if mode == "new" else group, leader=True)

    t = topology
    if not t.is_multi_node:
        scope = "global"
    per_worker = scope == "worker"
    unit = f"{base}-worker-{t.worker_index}" if per_worker else base
    leader = t.local_rank == 0 if per_worker else t.rank == 0
    role: Literal["main", "worker"] = "main" if t.rank == 0 else "worker"

    if mode == "auto":
        run_id = unit if leader else None
        return RunPlan(mode, scope, run_id=run_id, group=group, gpu_index=t.local_rank, leader=leader, role=role)

    if mode == "new":
        run_id = f"{unit}-rank-{t.local_rank}" if per_worker else f"{base}-rank-{t.rank}"
        new_group = f"{stem}-worker-{t.worker_index}" if per_worker else stem
        return RunPlan(mode, scope, run_id=run_id, group=new_group, gpu_index=t.local_rank, leader=leader, role=role)

    writers = t.local_world_size if per_worker else t.world_size
    writer = None
    if writers > 1:
        label = f"worker-{t.worker_index}-rank-{t.local_rank}" if per_worker else f"rank-{t.rank}"
        writer = SharedWriter(label=label, primary=leader, writers=writers)
    return RunPlan(
        mode, scope, run_id=unit, group=group, writer=writer, gpu_index=t.local_rank, leader=leader, role=role
    )


@dataclass(frozen=True)
class LinkTarget:
    """A W&B page that shows part of what a layout creates."""

    kind: Literal["run", "group"]
    name: str


def link_target(
    base: str,
    run_mode: str,
    rank_scope: str,
    num_workers: int | None,
    worker_index: int = 0,
    group: str | None = None,
    parent: ParentRun | None = None,
    per_attempt: bool = False,
    run_id: str | None = None,
    standalone_shared: bool = True,
) -> LinkTarget:
    """The W&B page that shows what worker ``worker_index`` logs to: its run, or its group for a distributed
    ``new`` layout. Where that worker opens no run of its own (``auto`` under global scope), the page of the one
    run there is. Constant time in the number of workers: it plans one process, the worker's local rank 0.

    ``num_workers`` is None for a task that is not distributed. With ``per_attempt`` (a fresh run per Flyte
    attempt, unknown when the link is drawn) runs are shown by their group.
    ``run_id`` (the user's) and ``standalone_shared`` are as for :func:`plan`, which raises :class:`LayoutError`
    where they make the layout impossible.
    """
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers must be >= 1 or None, got {num_workers!r}")
    if num_workers is not None and not 0 <= worker_index < num_workers:
        raise ValueError(f"worker_index must be in [0, {num_workers}), got {worker_index!r}")
    attempt = 0 if per_attempt else None
    topology = None
    if num_workers is not None:
        # Local rank 0 of the worker; world and local sizes do not change its ids, so one process per worker will do.
        topology = DistributedInfo(
            rank=worker_index,
            local_rank=0,
            world_size=num_workers,
            local_world_size=1,
            worker_index=worker_index,
            num_workers=num_workers,
        )
    p = plan(
        topology,
        run_mode,
        rank_scope,
        base,
        group,
        parent=parent,
        attempt=attempt,
        run_id=run_id,
        standalone_shared=standalone_shared,
    )
    if p.run_id is None:
        return link_target(base, run_mode, rank_scope, num_workers, 0, group, parent, per_attempt, run_id)
    if p.group and ((p.run_mode == "new" and topology is not None) or (per_attempt and p.writer is None)):
        return LinkTarget("group", p.group)
    return LinkTarget("run", p.run_id)


def link_targets(
    base: str,
    run_mode: str,
    rank_scope: str,
    num_workers: int | None,
    group: str | None = None,
    parent: ParentRun | None = None,
    per_attempt: bool = False,
    run_id: str | None = None,
) -> tuple[LinkTarget, ...]:
    """Every page a layout's links can show, in worker order, without duplicates: together they show every run
    the layout creates. See :func:`link_target`."""
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers must be >= 1 or None, got {num_workers!r}")
    targets: list[LinkTarget] = []
    for i in range(1 if num_workers is None else num_workers):
        target = link_target(base, run_mode, rank_scope, num_workers, i, group, parent, per_attempt, run_id)
        if target not in targets:
            targets.append(target)
    return tuple(targets)
