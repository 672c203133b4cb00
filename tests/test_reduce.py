"""``log_reduced`` and ``log_artifact`` on real ranks: torch elastic workers talking over gloo, W&B offline, and
what W&B wrote read back with ``wandb leet inspect --json``.

Elastic launches are slow, so each one is asserted whole: one shared-mode launch (2 nodes x 2 processes) carries
the reductions, the per-rank values, the error cases every rank must see and the artifact; one auto-mode launch
(1 node x 4 processes) ends in a key mismatch that must fail the task. Expected numbers are computed here from the
values each rank passes, with dyadic values so that float64 sums are exact in any order.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flyte
import pytest
import torch
import torch.distributed as dist
from flyteplugins.pytorch.task import Elastic
from readback import OfflineRun, inspect_command, offline_runs
from remote_task import run_as_pod

from flyteplugins_wandb import get_wandb_run, wandb_init
from flyteplugins_wandb.local import LocalElasticError, pod_context, run_elastic_locally
from flyteplugins_wandb.run._artifacts import log_artifact
from flyteplugins_wandb.run._reduce import STEP_METRIC, ReduceOpName, log_reduced

OPS: tuple[ReduceOpName, ...] = ("mean", "sum", "min", "max")
WORLD = 4
WIDE = 40  # more keys than the initial 32 value slots of the wire format
CKPT_FILES = ("weights.pt", "optimizer.pt")

two_nodes = flyte.TaskEnvironment(name="reduce_2x2", plugin_config=Elastic(nnodes=2, nproc_per_node=2))
one_node = flyte.TaskEnvironment(name="reduce_1x4", plugin_config=Elastic(nnodes=1, nproc_per_node=4))
plain = flyte.TaskEnvironment(name="reduce_plain")


def rank_values(op: str, rank: int) -> dict[str, Any]:
    """What ``rank`` passes for ``op``: a tensor, a float and an int, all different on every rank."""
    return {f"{op}/loss": torch.tensor(float(rank + 1)), f"{op}/acc": rank * 0.25, f"{op}/tokens": 10 * rank - 15}


def expected(op: str) -> dict[str, float]:
    per_rank = [rank_values(op, r) for r in range(WORLD)]
    out: dict[str, float] = {}
    for key in per_rank[0]:
        xs = [float(v[key]) for v in per_rank]
        out[key] = {"mean": sum(xs) / WORLD, "sum": sum(xs), "min": min(xs), "max": max(xs)}[op]
    return out


def mismatches(rank: int) -> dict[str, dict[str, Any]]:
    """Calls in which one rank differs from the others, by what differs."""
    return {
        "names": {"eval/acc": 1.0} if rank != 3 else {"eval/accuracy": 1.0},
        "count": {"eval/acc": 1.0, **({"eval/extra": 2.0} if rank == 1 else {})},
        "value": {"eval/acc": "n/a" if rank == 2 else 1.0},
    }


def _write(out_dir: str, rank: int, facts: dict[str, Any]) -> None:
    Path(out_dir, f"rank-{rank}.json").write_text(json.dumps(facts), encoding="utf-8")


def read_facts(out_dir: Path) -> dict[int, dict[str, Any]]:
    return {int(p.stem.split("-")[1]): json.loads(p.read_text(encoding="utf-8")) for p in out_dir.glob("rank-*.json")}


@wandb_init(project="p", run_mode="shared")
@two_nodes.task
def shared_training(out_dir: str) -> str:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    facts: dict[str, Any] = {}
    for step, op in enumerate(OPS):
        facts[op] = log_reduced(rank_values(op, rank), op=op, step=step, per_rank=op == "mean")
    facts["wide"] = log_reduced({f"wide/k{i:02d}": rank * i for i in range(WIDE)}, op="sum", step=4)
    facts["eval"] = log_reduced({"eval/acc": 0.5 * rank}, op="max", step=5)  # fewer keys than before: fine
    for what, metrics in mismatches(rank).items():
        try:
            log_reduced(metrics, step=6)
        except (ValueError, TypeError) as e:
            facts[what] = f"{type(e).__name__}: {e}"
    facts["after"] = log_reduced({"after/x": rank}, op="max", step=7)  # the ranks are still in step
    ckpt = Path(out_dir, "ckpt")
    if rank == 0:  # the checkpoint exists only where it is written, as on separate nodes
        ckpt.mkdir()
        for name in CKPT_FILES:
            (ckpt / name).write_bytes(name.encode())
    logged = log_artifact(ckpt, name="ckpt", aliases=("latest", "best"), metadata={"step": 7})
    facts["artifact_returned"] = logged is not None
    _write(out_dir, rank, facts)
    dist.barrier()
    dist.destroy_process_group()
    return "done"


@wandb_init(project="p")
@one_node.task
def auto_training_with_a_key_typo(out_dir: str) -> str:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    facts: dict[str, Any] = {"reduced": log_reduced({"loss": rank + 1.0}, step=7)}
    if rank == 0:
        Path(out_dir, "model.pt").write_bytes(b"weights")
    facts["artifact_returned"] = log_artifact(Path(out_dir, "model.pt"), name="model") is not None
    facts["wandb_imported"] = "wandb" in sys.modules
    try:
        log_reduced({"loss": 1.0, "acc" if rank != 3 else "accuarcy": 0.5})
    except ValueError as e:
        facts["error"] = str(e)
        raise
    finally:
        _write(out_dir, rank, facts)
    return "unreachable"


def _records(run: OfflineRun, kind: str) -> list[dict[str, Any]]:
    """Every record of one kind (``metric``, ``artifact``...) in an offline run file."""
    return [r[kind] for r in _inspect(run.path) if r.get("type") == kind]


@functools.lru_cache(maxsize=32)
def _inspect(path: Path) -> tuple[dict[str, Any], ...]:
    # Several tests look at the same files of the module's one launch.
    raw = subprocess.run(inspect_command(path, "--json"), capture_output=True, text=True, check=True)
    return tuple(json.loads(line) for line in raw.stdout.splitlines() if line.strip())


def _step_axes(run: OfflineRun) -> dict[str, str]:
    return {m["name"]: m.get("step_metric", "") for m in _records(run, "metric")}


def _keys(run: OfflineRun) -> set[str]:
    return {k for row in run.history for k in row if not k.startswith("_")}


@pytest.fixture(scope="module")
def shared_launch(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[int, dict[str, Any]], list[OfflineRun]]:
    """One shared-mode launch and its four writers' runs, shared by the tests below (isolated like conftest)."""
    root = tmp_path_factory.mktemp("shared-launch")
    out, wandb_dir = root / "out", root / "wandb"
    out.mkdir()
    wandb_dir.mkdir()
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("WANDB_")]:
            del os.environ[key]
        for sub in ("cache", "config", "data"):
            (root / sub).mkdir()
            os.environ[f"WANDB_{sub.upper()}_DIR"] = str(root / sub)
        os.environ.update(WANDB_DIR=str(wandb_dir), WANDB_MODE="offline", WANDB_SILENT="true")
        result = run_elastic_locally(shared_training, max_restarts=0, out_dir=str(out))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert result.output == "done"
    return read_facts(out), sorted(offline_runs(wandb_dir), key=lambda r: str(r.path))


def _writer(runs: list[OfflineRun], rank: int) -> OfflineRun:
    (run,) = [r for r in runs if f"{os.sep}rank-{rank}{os.sep}" in str(r.path)]
    return run


@pytest.mark.elastic
def test_four_ranks_log_the_exact_mean_sum_min_and_max_once(
    shared_launch: tuple[dict[int, dict[str, Any]], list[OfflineRun]],
) -> None:
    facts, runs = shared_launch
    assert sorted(facts) == [0, 1, 2, 3]
    assert len(runs) == WORLD and len({r.run_id for r in runs}) == 1
    primary = _writer(runs, 0)
    for step, op in enumerate(OPS):
        want = expected(op)
        assert all(facts[r][op] == want for r in range(WORLD)), op  # every rank gets the result back
        (row,) = [row for row in primary.history if f"{op}/loss" in row]
        assert {k: row[k] for k in want} == want
        assert row[STEP_METRIC] == step
    # Tensors, floats and ints were mixed in each call; the mean of 1..4 and of 0, .25, .5, .75 is exact.
    assert expected("mean") == {"mean/loss": 2.5, "mean/acc": 0.375, "mean/tokens": 0.0}
    assert primary.metric("wide/k39") == [39 * 6] and primary.metric("wide/k00") == [0]
    assert primary.metric("eval/acc") == [1.5]
    assert primary.metric("after/x") == [3]
    assert primary.metric(STEP_METRIC) == [0, 1, 2, 3, 4, 5, 7]  # the failed calls (step 6) logged nothing
    for rank in (1, 2, 3):  # the other writers log no reduced value
        assert {k for k in _keys(_writer(runs, rank)) if not k.startswith(f"rank{rank}/")} == set()


@pytest.mark.elastic
def test_the_reduced_metrics_are_plotted_against_the_trainer_step(
    shared_launch: tuple[dict[int, dict[str, Any]], list[OfflineRun]],
) -> None:
    _, runs = shared_launch
    axes = _step_axes(_writer(runs, 0))
    assert axes[STEP_METRIC] == ""
    assert {k: axes[k] for k in ("mean/loss", "max/acc", "wide/k39", "after/x")} == dict.fromkeys(
        ("mean/loss", "max/acc", "wide/k39", "after/x"), STEP_METRIC
    )


@pytest.mark.elastic
def test_per_rank_values_of_every_writer_arrive_on_their_own_step_axis(
    shared_launch: tuple[dict[int, dict[str, Any]], list[OfflineRun]],
) -> None:
    _, runs = shared_launch
    for rank in range(WORLD):
        run = _writer(runs, rank)
        own = {k: float(v) for k, v in rank_values("mean", rank).items()}
        prefixed = {f"rank{rank}/{k}" for k in own} | {f"rank{rank}/step"}
        assert {k for k in _keys(run) if k.startswith("rank")} == prefixed  # no other rank's values
        assert {k: run.metric(f"rank{rank}/{k}") for k in own} == {k: [v] for k, v in own.items()}
        assert run.metric(f"rank{rank}/step") == [0]
        axes = _step_axes(run)
        assert {axes[f"rank{rank}/{k}"] for k in own} == {f"rank{rank}/step"}


@pytest.mark.elastic
def test_ranks_passing_different_keys_or_a_bad_value_get_a_clear_error_on_every_rank(
    shared_launch: tuple[dict[int, dict[str, Any]], list[OfflineRun]],
) -> None:
    facts, _ = shared_launch
    for rank in range(WORLD):
        names = mismatches(rank)
        assert facts[rank]["names"].startswith("ValueError: log_reduced: the ranks passed different metric names")
        assert str(sorted(names["names"])) in facts[rank]["names"]
        assert facts[rank]["count"].startswith("ValueError: log_reduced: the ranks passed different numbers")
        assert str(sorted(names["count"])) in facts[rank]["count"]
        assert facts[rank]["value"].startswith("TypeError: log_reduced:")
    assert "metric 'eval/acc' must be a real number" in facts[2]["value"]
    assert "another rank passed a metric that is not a number" in facts[0]["value"]
    assert [facts[r]["after"] for r in range(WORLD)] == [{"after/x": 3.0}] * WORLD


@pytest.mark.elastic
def test_an_artifact_logged_from_every_rank_is_written_once_with_its_aliases(
    shared_launch: tuple[dict[int, dict[str, Any]], list[OfflineRun]],
) -> None:
    facts, runs = shared_launch
    assert [facts[r]["artifact_returned"] for r in range(WORLD)] == [True, False, False, False]
    found = {rank: _records(_writer(runs, rank), "artifact") for rank in range(WORLD)}
    assert {rank: len(a) for rank, a in found.items()} == {0: 1, 1: 0, 2: 0, 3: 0}
    (artifact,) = found[0]
    assert (artifact["name"], artifact["type"], sorted(artifact["aliases"])) == ("ckpt", "model", ["best", "latest"])
    assert json.loads(artifact["metadata"]) == {"step": 7}
    assert sorted(entry["path"] for entry in artifact["manifest"]["contents"]) == sorted(CKPT_FILES)


@pytest.mark.elastic
def test_a_key_mismatch_fails_the_task_on_every_rank_and_ranks_without_a_run_never_import_wandb(
    wandb_env: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(LocalElasticError, match="different metric names") as failure:
        run_elastic_locally(auto_training_with_a_key_typo, max_restarts=0, out_dir=str(out))
    assert "accuarcy" in str(failure.value) or "'acc'" in str(failure.value)
    facts = read_facts(out)
    assert sorted(facts) == [0, 1, 2, 3]
    for rank in range(WORLD):
        assert "different metric names" in facts[rank]["error"]
        assert ("accuarcy" if rank == 3 else "'acc'") in facts[rank]["error"]
        assert facts[rank]["reduced"] == {"loss": 2.5}
    assert [facts[r]["artifact_returned"] for r in range(WORLD)] == [True, False, False, False]
    assert [facts[r]["wandb_imported"] for r in range(WORLD)] == [True, False, False, False]
    (run,) = offline_runs(wandb_env)
    assert run.exit_code == 1
    assert run.history and [(row["loss"], row[STEP_METRIC]) for row in run.history] == [(2.5, 7)]
    (artifact,) = _records(run, "artifact")
    assert (artifact["name"], artifact["aliases"]) == ("model", ["latest"])


# One process, no process group: the values are logged as given.


@wandb_init(project="p")
@plain.task
def single_process(ckpt: str) -> str:
    seen: dict[str, Any] = {
        "reduced": log_reduced({"loss": torch.tensor(0.25), "n": 3}, step=10, per_rank=True),
    }
    try:
        log_artifact(Path(ckpt, "missing.pt"), name="ckpt")
    except FileNotFoundError as e:
        seen["missing"] = str(e)
    Path(ckpt, "model.pt").write_bytes(b"weights")
    seen["artifact_returned"] = log_artifact(Path(ckpt, "model.pt"), name="ckpt", aliases=["best"]) is not None
    return json.dumps(seen)


@pytest.fixture
def local_flyte() -> Iterator[None]:
    import wandb

    wandb.teardown()  # wandb reads WANDB_DIR once per process; this test has its own
    flyte.init()
    yield
    wandb.teardown()


def test_without_a_process_group_the_values_are_logged_as_given(
    wandb_env: Path, tmp_path: Path, local_flyte: None
) -> None:
    seen = json.loads(flyte.run(single_process, ckpt=str(tmp_path)).outputs()[0])
    assert seen["reduced"] == {"loss": 0.25, "n": 3.0}
    assert str(tmp_path / "missing.pt") in seen["missing"]
    assert seen["artifact_returned"] is True
    (run,) = offline_runs(wandb_env)
    assert [{k: v for k, v in row.items() if not k.startswith("_")} for row in run.history] == [
        {"loss": 0.25, "n": 3, STEP_METRIC: 10}  # per_rank has no meaning without ranks
    ]
    ((artifact),) = _records(run, "artifact")
    assert (artifact["name"], sorted(artifact["aliases"])) == ("ckpt", ["best", "latest"])  # W&B adds latest


@wandb_init(project="p")
@plain.task
async def opens_a_run() -> str:
    run = get_wandb_run()
    assert run is not None
    return run.id


def test_outside_a_tracked_task_the_values_come_back_and_nothing_is_logged(wandb_env: Path) -> None:
    assert log_reduced({"a": 1, "b": torch.tensor(2.5)}, op="max") == {"a": 1.0, "b": 2.5}
    assert log_artifact(wandb_env, name="nothing") is None
    assert list(wandb_env.iterdir()) == []


def test_once_a_tracked_task_has_returned_its_run_gets_nothing_more(
    wandb_env: Path, tmp_path: Path, local_flyte: None
) -> None:
    # The task runs in this very context, as a pod runs it (flyte.run would use an event loop of its own, whose
    # context never comes back here), so a run left bound after the body would receive what follows.
    async def after_a_task() -> tuple[str, Any, dict[str, float], Any]:
        with pod_context("R", "a1", root=str(tmp_path / "pod")):
            run_id = await opens_a_run.execute()
            reduced = log_reduced({"a": 1, "b": torch.tensor(2.5)}, op="max")
            return run_id, get_wandb_run(), reduced, log_artifact(tmp_path, name="x")

    run_id, run_after, reduced, artifact = asyncio.run(after_a_task())
    assert run_id == "R-a1" and run_after is None
    assert (reduced, artifact) == ({"a": 1.0, "b": 2.5}, None)
    (written,) = offline_runs(wandb_env)
    assert written.metric("a") == [] and _records(written, "artifact") == []


def test_an_unknown_op_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"op must be one of \('mean', 'sum', 'min', 'max'\), got 'avg'"):
        log_reduced({"a": 1.0}, op="avg")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("0.5", "str", id="string"),
        pytest.param(None, "NoneType", id="none"),
        pytest.param(torch.ones(3), "shape (3,)", id="tensor-of-three"),
        pytest.param(torch.tensor(1j), "complex", id="complex-tensor"),
    ],
)
def test_a_value_that_is_not_a_number_is_refused_naming_its_key(value: Any, shown: str) -> None:
    with pytest.raises(TypeError, match=f"metric 'val/loss' must be a real number.*{re.escape(shown)}"):
        log_reduced({"ok": 1.0, "val/loss": value})


def test_a_launched_rank_without_a_process_group_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(RuntimeError, match="rank 1 of 4, but torch.distributed has no process group"):
        log_reduced({"loss": 1.0})


def test_the_step_axis_and_its_per_rank_twin_cannot_be_used_as_keys() -> None:
    with pytest.raises(ValueError, match="'trainer/step' is the step axis"):
        log_reduced({STEP_METRIC: 1})
    with pytest.raises(ValueError, match="'step' would clash"):
        log_reduced({"step": 1}, per_rank=True)
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        log_reduced({"a": 1}, step=-1)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"name": "a/b"}, ValueError, id="slash-in-name"),
        pytest.param({"name": ""}, TypeError, id="empty-name"),
        pytest.param({"name": "m", "type": "wandb-history"}, ValueError, id="reserved-type"),
        pytest.param({"name": "m", "aliases": "best"}, TypeError, id="aliases-as-one-string"),
        pytest.param({"name": "m", "aliases": ["v:1"]}, ValueError, id="colon-in-alias"),
    ],
)
def test_a_bad_artifact_name_type_or_alias_is_refused_on_every_rank(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error, match="log_artifact: "):
        log_artifact(tmp_path, **kwargs)


# A retried attempt continues the run: the trainer step goes on from the checkpoint, no row is dropped.


@wandb_init(project="p")
@plain.task
def resumable(ckpt: str, steps: int) -> int:
    path = Path(ckpt)
    start = int(path.read_text()) if path.exists() else 0
    for step in range(start, start + steps):
        log_reduced({"loss": 1.0 / (step + 1)}, step=step)
        path.write_text(str(step + 1))
    if flyte.ctx().attempt_number == 0:
        raise RuntimeError("preempted")
    return start


def test_after_a_resumed_attempt_the_steps_go_on_and_no_row_is_dropped(wandb_env: Path, tmp_path: Path) -> None:
    ckpt = str(tmp_path / "step")
    first = run_as_pod(resumable, run_name="R", action_name="a1", env={"FLYTE_ATTEMPT_NUMBER": "0"}, ckpt=ckpt, steps=3)
    second = run_as_pod(
        resumable, run_name="R", action_name="a1", env={"FLYTE_ATTEMPT_NUMBER": "1"}, ckpt=ckpt, steps=3
    )
    assert first[0] == "error" and "preempted" in first[1]
    assert second == ("ok", 3)
    runs = sorted(offline_runs(wandb_env), key=lambda r: r.start_time)
    assert [r.run_id for r in runs] == ["R-a1", "R-a1"]
    assert [r.metric(STEP_METRIC) for r in runs] == [[0, 1, 2], [3, 4, 5]]
    assert [r.metric("loss") for r in runs] == [[1.0, 0.5, 1 / 3], [0.25, 0.2, 1 / 6]]
    # W&B's own row counter is left alone (an online resume continues it); only the trainer step says where we are.
    assert [[row["_step"] for row in r.history] for r in runs] == [[0, 1, 2], [0, 1, 2]]
    assert [_step_axes(r)["loss"] for r in runs] == [STEP_METRIC, STEP_METRIC]  # defined again in the new attempt
