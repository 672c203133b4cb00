"""Code written for Flyte's public W&B plugin (``flyteplugins-wandb``, imported as ``flyteplugins.wandb``) runs here
with only the import line changed: the names and shapes its users call, exercised as their scripts do, through real
local Flyte runs and real elastic workers, read back from the offline files."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import compat_elastic_tasks as seed_tasks
import flyte
import pytest
import wandb
from fake_wandb_server import KEY, LONG_KEY, FakeWandb, StoredRun, serve
from readback import offline_runs

import flyteplugins_wandb
from flyteplugins.wandb import (
    Wandb,
    WandbSweep,
    download_wandb_run_dir,
    download_wandb_run_logs,
    download_wandb_sweep_dirs,
    download_wandb_sweep_logs,
    get_wandb_context,
    get_wandb_run,
    get_wandb_run_dir,
    get_wandb_sweep_context,
    get_wandb_sweep_id,
    wandb_config,
    wandb_init,
    wandb_sweep,
    wandb_sweep_config,
)
from flyteplugins_wandb import WandbApiAuthError, WandbApiUnreachable, WandbRunNotFound
from flyteplugins_wandb.local import run_elastic_locally
from flyteplugins_wandb.run._guards import MissingApiKeyError

ROOT = Path(__file__).resolve().parent.parent
env = flyte.TaskEnvironment(name="compat")


def _python(code: str, *, path: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*(path or []), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


# --- the import path ------------------------------------------------------------------------------------------------


def test_both_import_paths_give_the_same_objects() -> None:
    import flyteplugins.wandb as public

    assert public.__all__ == flyteplugins_wandb.__all__
    for name in flyteplugins_wandb.__all__:
        assert getattr(public, name) is getattr(flyteplugins_wandb, name), name


def test_flyteplugins_pytorch_still_imports_beside_the_alias() -> None:
    out = _python("import flyteplugins.wandb, flyteplugins.pytorch.task as t; print(t.Elastic.__name__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Elastic"


def test_the_alias_ships_no_namespace_init() -> None:
    # An __init__.py there would make `flyteplugins` a regular package and hide flyteplugins.pytorch.
    assert not (ROOT / "flyteplugins" / "__init__.py").exists()


def test_importing_warns_once_when_flyteplugins_wandb_is_installed_too(tmp_path: Path) -> None:
    other = tmp_path / "flyteplugins_wandb-2.12.1.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: flyteplugins-wandb\nVersion: 2.12.1\n")
    code = "import warnings; warnings.simplefilter('always'); import flyteplugins.wandb, flyteplugins_wandb"
    out = _python(code, path=[str(tmp_path)])
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("flyteplugins-wandb 2.12.1 is installed beside") == 1, out.stderr


def test_importing_does_not_warn_without_the_other_distribution() -> None:
    out = _python("import warnings; warnings.simplefilter('error'); import flyteplugins.wandb")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


# --- get_distributed_info() as a dict ----------------------------------------------------------------------------


def test_distributed_info_reads_as_the_dict_users_index() -> None:
    info = flyteplugins_wandb.DistributedInfo.from_env(
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1"}
    )
    assert info is not None
    assert dict(info) == {
        "rank": 3,
        "local_rank": 1,
        "world_size": 4,
        "local_world_size": 2,
        "worker_index": 1,
        "num_workers": 2,
    }
    assert (info["rank"], info.rank, info.get("nope")) == (3, 3, None)


def test_an_unknown_key_of_the_distributed_info_names_the_keys() -> None:
    info = flyteplugins_wandb.DistributedInfo(0, 0, 1, 1, 0, 1)
    with pytest.raises(KeyError, match="'global_rank' is not a key of the distributed info; keys: rank, local_rank"):
        info["global_rank"]


# --- the download helpers, against a fake W&B server at the HTTP seam ------------------------------------------------

STORED = StoredRun(
    summary={"loss": 0.25, "_step": 2},
    config={"lr": 0.1},
    history=[{"_step": 0, "loss": 1.0}, {"_step": 1, "loss": 0.5}, {"_step": 2, "loss": 0.25}],
    files={"config.yaml": b"lr:\n  value: 0.1\n", "output.log": b"epoch 0\nepoch 1\n", "media/plot.json": b"{}"},
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandb]:
    fake = FakeWandb(entity="team")
    fake.stored["team/proj/run-a"] = STORED
    with serve(fake) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_API_KEY", KEY)
        yield fake


def _read_dir(path: str) -> dict[str, str]:
    root = Path(path)
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_download_wandb_run_dir_writes_the_runs_files_summary_and_history(server: FakeWandb, tmp_path: Path) -> None:
    out = download_wandb_run_dir("run-a", path=str(tmp_path / "a"), entity="team", project="proj")
    files = _read_dir(out)
    assert sorted(files) == ["config.yaml", "media/plot.json", "metrics_history.json", "output.log", "summary.json"]
    assert json.loads(files["summary.json"]) == {"loss": 0.25, "_step": 2}
    assert [row["loss"] for row in json.loads(files["metrics_history.json"])] == [1.0, 0.5, 0.25]
    assert files["output.log"] == "epoch 0\nepoch 1\n"


def test_download_without_history_leaves_the_history_out(server: FakeWandb, tmp_path: Path) -> None:
    out = download_wandb_run_dir("team/proj/run-a", path=str(tmp_path / "a"), include_history=False)
    assert "metrics_history.json" not in _read_dir(out)


def test_a_download_without_an_api_key_says_how_to_give_one(
    server: FakeWandb, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(MissingApiKeyError, match="needs an API key.*WANDB_API_KEY"):
        download_wandb_run_dir("team/proj/run-a", path=str(tmp_path / "a"))
    assert server.auth == []  # nothing was sent without a key


def test_a_refused_api_key_is_named_as_such(server: FakeWandb, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "wrong-key")
    with pytest.raises(WandbApiAuthError, match=r"refused the W&B API key \(HTTP 401\)"):
        download_wandb_run_dir("team/proj/run-a", path=str(tmp_path / "a"))


def test_an_unknown_run_is_named_with_its_project(server: FakeWandb, tmp_path: Path) -> None:
    with pytest.raises(WandbRunNotFound, match="has no run 'run-zz' in project team/proj"):
        download_wandb_run_dir("team/proj/run-zz", path=str(tmp_path / "a"))


def test_a_server_that_never_answers_fails_the_download_within_its_timeout(server: FakeWandb, tmp_path: Path) -> None:
    server.hang = True
    started = time.monotonic()
    with pytest.raises(WandbApiUnreachable, match="within 0.5s"):
        download_wandb_run_dir("team/proj/run-a", path=str(tmp_path / "a"), timeout=0.5)
    assert time.monotonic() - started < 30  # a hang guard: the bound is the 0.5 s timeout


def test_a_sweep_downloads_every_run_and_reports_the_one_that_fails(
    server: FakeWandb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = StoredRun(summary={"loss": 9.0}, files={"bad.bin": b"x"})
    server.stored.update({"team/proj/run-b": broken, "team/proj/run-c": STORED})
    server.sweep_runs["team/proj/swp1"] = ["run-a", "run-b", "run-c"]
    server.broken_files.add("bad.bin")
    with caplog.at_level(logging.WARNING, logger="flyteplugins_wandb"):
        dirs = download_wandb_sweep_dirs("team/proj/swp1", base_path=str(tmp_path / "sweep"))
    assert [Path(d).name for d in dirs] == ["run-a", "run-c"]
    assert json.loads(_read_dir(dirs[1])["summary.json"])["loss"] == 0.25
    assert "run run-b could not be downloaded" in caplog.text and "HTTP 500" in caplog.text


def test_an_unknown_sweep_is_named(server: FakeWandb, tmp_path: Path) -> None:
    with pytest.raises(WandbRunNotFound, match="has no sweep 'nope'"):
        download_wandb_sweep_dirs("team/proj/nope", base_path=str(tmp_path / "sweep"))


@wandb_init(project="proj", entity="team", mode="offline")
@env.task
async def train_then_read_back() -> dict[str, str]:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": 0.25})
    # The user's code: the current task's run (here the fake server holds a finished copy under its id).
    files = _read_dir(download_wandb_run_dir(path=os.path.join(os.environ["WANDB_DIR"], "back")))
    return {**files, "the run's id": str(run.id)}


def test_the_current_tasks_run_is_downloaded_when_no_run_id_is_given(server: FakeWandb) -> None:
    server.any_run = STORED
    run = flyte.run(train_then_read_back)
    files = run.outputs()[0]
    assert json.loads(files["summary.json"]) == {"loss": 0.25, "_step": 2}
    # The task's own run, in the task's project and entity.
    run_id = files["the run's id"]
    assert server.downloads[0].startswith(f"/files/team/proj/{run_id}/")


@env.task
async def logs_as_flyte_dirs() -> list[str]:
    run_dir = await download_wandb_run_logs("team/proj/run-a")
    sweep_dir = await download_wandb_sweep_logs("team/proj/swp1")
    return [await run_dir.download(), await sweep_dir.download()]


def test_the_log_helpers_return_flyte_dirs_of_the_downloads(server: FakeWandb) -> None:
    server.sweep_runs["team/proj/swp1"] = ["run-a"]
    run_path, sweep_path = flyte.run(logs_as_flyte_dirs).outputs()[0]
    assert json.loads(_read_dir(run_path)["summary.json"])["loss"] == 0.25
    assert "run-a/metrics_history.json" in _read_dir(sweep_path)


# --- the user's own sweep agents: wandb.agent over @wandb_init objectives ------------------------------------------


# The fake serves the sweep protocol, not runs: the trials log offline (the decorator's mode wins over the context's).
@wandb_init(mode="offline")
def objective() -> None:
    """A plain function, as flyteplugins-wandb users write it for wandb.agent."""
    run = get_wandb_run()
    assert run is not None and run is wandb.run
    x = wandb.config["x"]  # wandb's module API, as code written for wandb.agent uses it
    wandb.log({"loss": (x - 1.0) ** 2})
    if x < 0:
        raise ValueError(f"x={x} diverged")


@wandb_sweep
@env.task
async def sweep_agent(agent_id: int, sweep_id: str, count: int) -> int:
    wandb.agent(sweep_id, function=objective, count=count)
    return agent_id


@wandb_sweep
@env.task
async def run_parallel_sweep(total_trials: int, trials_per_agent: int) -> str:
    sweep_id = get_wandb_sweep_id()
    assert sweep_id is not None
    agents = total_trials // trials_per_agent
    await asyncio.gather(*(sweep_agent(agent_id=i, sweep_id=sweep_id, count=trials_per_agent) for i in range(agents)))
    return sweep_id


@pytest.fixture
def sweep_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandb]:
    """Online against the fake sweep server with a key wandb's own client accepts; the runs log offline."""
    from wandb.agents.pyagent import Agent

    # wandb's documented knob for tests ("Tests may set to 0"): heartbeats every 0.2 s instead of 5 s.
    monkeypatch.setattr(Agent, "HEARTBEAT_SLEEP_SECONDS", 0.2)
    fake = FakeWandb(proposals=[{"x": 0.5}, {"x": 1.5}, {"x": -1.0}, {"x": 2.0}])
    with serve(fake) as url:
        monkeypatch.delenv("WANDB_MODE")
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_API_KEY", LONG_KEY)
        yield fake


SWEEP_CONTEXT = {
    **wandb_config(project="agents", entity="team", tags=["compat"], config={"dataset": "toy"}),
    **wandb_sweep_config(
        method="random", metric={"name": "loss", "goal": "minimize"}, parameters={"x": {"min": -2.0, "max": 2.0}}
    ),
}


def test_user_agents_log_each_trial_into_the_run_the_sweep_server_assigned(
    sweep_server: FakeWandb, wandb_env: Path
) -> None:
    run = flyte.with_runcontext(custom_context=SWEEP_CONTEXT).run(
        run_parallel_sweep, total_trials=4, trials_per_agent=2
    )
    assert run.outputs()[0] == "swp00000"
    # One sweep: the agent tasks joined their driver's sweep instead of creating one each.
    assert len(sweep_server.sweeps) == 1
    assert [a["sweep"] for a in sweep_server.agents] == ["swp00000", "swp00000"]

    runs = {r.run_id: r for r in offline_runs(wandb_env)}
    launched = {entry["run_id"]: entry["params"]["x"] for entry in sweep_server.launched}
    assert sorted(runs) == sorted(launched) == ["run000", "run001", "run002", "run003"]
    for run_id, x in launched.items():
        r = runs[run_id]
        assert (r.project, r.entity, r.tags) == ("agents", "team", ["compat"])  # the task's W&B settings
        assert (r.config["x"], r.config["dataset"]) == (x, "toy")  # the server's parameters, and the task's config
        assert r.metric("loss") == [(x - 1.0) ** 2]
        assert r.state == ("failed" if x < 0 else "finished")


# --- the context getters, an undecorated child, a trace ------------------------------------------------------------


@env.task
async def undecorated_child() -> str:
    # No @wandb_init here: no run, in local mode too; the settings are those the child received.
    context = get_wandb_context()
    return json.dumps(
        {"run": get_wandb_run() is not None, "run_dir": get_wandb_run_dir(), "project": context and context.project}
    )


@flyte.trace
async def traced_step() -> str | None:
    run = get_wandb_run()
    return None if run is None else run.id


@wandb_init(tags=["decorated"], config={"lr": 0.1}, rank_scope="worker")
@env.task
async def decorated_parent() -> str:
    run = get_wandb_run()
    assert run is not None
    context = get_wandb_context()
    assert context is not None
    return json.dumps(
        {
            "run_id": run.id,
            "traced": await traced_step(),
            "context": [context.project, context.entity, list(context.tags or ()), dict(context.config or {})],
            "layout": [context.run_mode, context.rank_scope],
            "run_dir": get_wandb_run_dir(),
            "child": json.loads(await undecorated_child()),
            "sweep_context": get_wandb_sweep_context() is None,
        }
    )


def test_the_context_getters_the_undecorated_child_and_a_trace(wandb_env: Path) -> None:
    context = wandb_config(project="ctx", entity="team", tags=["from-context"], config={"lr": 1.0, "seed": 7})
    out = json.loads(flyte.with_runcontext(custom_context=context).run(decorated_parent).outputs()[0])
    # The decorator's settings over the run context's, field by field (mappings key by key).
    assert out["context"] == ["ctx", "team", ["decorated"], {"lr": 0.1, "seed": 7}]
    assert out["layout"] == [None, "worker"]  # the decorator's; run_mode is set nowhere (the default applies)
    assert out["traced"] == out["run_id"]  # a trace sees its task's run
    [written] = offline_runs(wandb_env)
    assert out["run_dir"] == str(Path(written.path).parent / "files")
    assert out["child"] == {"run": False, "run_dir": None, "project": "ctx"}
    assert out["sweep_context"] is True


def test_the_getters_outside_a_task_return_none() -> None:
    assert (get_wandb_context(), get_wandb_sweep_context(), get_wandb_run_dir(), get_wandb_run()) == (None,) * 4


# --- hand-made links, for tasks that call wandb.init themselves -----------------------------------------------------

LAUNCH = dict(project="fp", domain="development", parent_action_name="a0", pod_name="pod")


@env.task(links=[Wandb(project="own", entity="team", host="https://wandb.example.com", id="fixed-run", name="Run")])
async def own_init_with_id() -> str:
    run = wandb.init(project="own", entity="team", id="fixed-run", reinit="create_new")
    run.log({"loss": 1.0})
    run.finish()
    return str(run.id)


@env.task(links=[Wandb(project="own", entity="team", run_mode="new", rank_scope="global")])
async def own_init_layout_id() -> str:
    tctx = flyte.ctx()
    assert tctx is not None
    run = wandb.init(project="own", id=f"{tctx.action.run_name}-{tctx.action.name}", reinit="create_new")
    run.finish()
    return str(run.id)


@env.task(links=[WandbSweep(project="sp", entity="team", id="abc123", name="Sweep")])
async def own_sweep() -> None: ...


def test_a_hand_made_link_with_an_id_names_the_run_the_task_opened(wandb_env: Path) -> None:
    [link] = own_init_with_id.links
    run = flyte.run(own_init_with_id)
    url = link.get_link(run_name=run.name, context={}, action_name="a1", **LAUNCH)
    assert (link.name, url) == ("Run", "https://wandb.example.com/team/own/runs/fixed-run")
    [written] = offline_runs(wandb_env)
    assert url.endswith(f"/runs/{written.run_id}") and run.outputs()[0] == written.run_id


def test_a_hand_made_link_without_an_id_names_the_layouts_run(wandb_env: Path) -> None:
    [link] = own_init_layout_id.links
    run = flyte.run(own_init_layout_id)
    [written] = offline_runs(wandb_env)
    run_name, _, action = written.run_id.rpartition("-")
    assert link.get_link(run_name=run_name, context={}, action_name=action, **LAUNCH) == (
        f"https://wandb.ai/team/own/runs/{written.run_id}"
    )
    assert run.outputs()[0] == written.run_id


def test_a_hand_made_sweep_link_with_an_id_opens_that_sweep() -> None:
    [link] = own_sweep.links
    url = link.get_link(run_name="r", context={}, action_name="a1", **LAUNCH)
    assert (link.name, url) == ("Sweep", "https://wandb.ai/team/sp/sweeps/abc123")


def test_a_hand_made_link_refuses_an_unknown_run_mode() -> None:
    with pytest.raises(ValueError, match=r"run_mode must be one of \('auto', 'new', 'shared'\), got 'shard'"):
        Wandb(project="p", run_mode="shard")


# --- W&B's other sweep keys reach the server -------------------------------------------------------------------------


@wandb_sweep(
    config=wandb_sweep_config(
        method="random",
        parameters={"x": {"min": 0.0, "max": 1.0}},
        description="compat sweep",
        program="train.py",
        command=["${env}", "python", "${program}", "${args}"],
        prior_runs=["old-1", "old-2"],
    )
)
@env.task
async def described_sweep() -> str:
    sweep = get_wandb_sweep_context()
    assert sweep is not None
    return json.dumps([get_wandb_sweep_id(), sweep.description, sweep.program])


def test_the_other_sweep_keys_and_prior_runs_are_passed_to_the_server(sweep_server: FakeWandb) -> None:
    out = json.loads(flyte.run(described_sweep).outputs()[0])
    assert out == ["swp00000", "compat sweep", "train.py"]
    [created] = sweep_server.sweeps
    assert created["parsed"]["description"] == "compat sweep"
    assert created["parsed"]["command"] == ["${env}", "python", "${program}", "${args}"]
    assert "prior_runs" not in created["parsed"]
    assert json.loads(created["priorRunsFilters"]) == {"$or": [{"name": "old-1"}, {"name": "old-2"}]}


def test_a_sweep_command_with_an_unknown_macro_is_refused() -> None:
    with pytest.raises(ValueError, match=r"command: unknown macro '\$\{arg\}'"):
        wandb_sweep_config(method="random", parameters={"x": {"min": 0.0, "max": 1.0}}, command=["${arg}"])


# --- the seed page's distributed examples, on real elastic workers ------------------------------------------------

SEED_CONTEXT = wandb_config(project="multi-node-training", tags=["distributed", "multi-node"])


def _elastic(task: Any, tmp_path: Path, **inputs: Any) -> tuple[Any, dict[int, dict[str, Any]]]:
    out_dir = tmp_path / "facts"
    out_dir.mkdir()
    result = run_elastic_locally(
        task, custom_context=SEED_CONTEXT, run_name="seed", action_name="a1", out_dir=str(out_dir), **inputs
    )
    return result, seed_tasks.read_facts(out_dir)


def _info(rank: int, nodes: int) -> dict[str, int]:
    return {
        "rank": rank,
        "local_rank": rank % 2,
        "world_size": 2 * nodes,
        "local_world_size": 2,
        "worker_index": rank // 2,
        "num_workers": nodes,
    }


@pytest.mark.elastic
def test_seed_single_node_auto_logs_from_rank_0_only(tmp_path: Path, wandb_env: Path) -> None:
    result, facts = _elastic(seed_tasks.train_single_node, tmp_path)
    assert [facts[r]["info"] for r in (0, 1)] == [_info(0, 1), _info(1, 1)]
    assert [facts[r]["run_id"] for r in (0, 1)] == ["seed-a1", None]
    assert [facts[r]["project"] for r in (0, 1)] == ["multi-node-training"] * 2
    assert facts[1]["run_dir"] is None and Path(facts[0]["run_dir"]).is_dir()
    [run] = offline_runs(wandb_env)
    assert (run.run_id, run.project, run.tags) == ("seed-a1", "multi-node-training", ["distributed", "multi-node"])
    assert run.metric("loss") == [1.0, 0.5, pytest.approx(1 / 3)]
    assert result.output == pytest.approx(1 / 3)


@pytest.mark.elastic
def test_seed_single_node_shared_gives_every_rank_the_one_run(tmp_path: Path, wandb_env: Path) -> None:
    _, facts = _elastic(seed_tasks.train_with_per_gpu_metrics, tmp_path)
    assert [facts[r]["run_id"] for r in (0, 1)] == ["seed-a1", "seed-a1"]
    writers = offline_runs(wandb_env)
    assert sorted(r.run_id for r in writers) == ["seed-a1", "seed-a1"]
    assert sorted(r.metric("throughput_samples_per_sec")[0] for r in writers) == [100.0, 200.0]


@pytest.mark.elastic
def test_seed_multi_node_global_ddp_gives_one_run(tmp_path: Path, wandb_env: Path) -> None:
    result, facts = _elastic(seed_tasks.train_multi_node, tmp_path, epochs=2, batch_size=8)
    assert [facts[r]["info"] for r in range(4)] == [_info(r, 2) for r in range(4)]
    assert [facts[r]["run_id"] for r in range(4)] == ["seed-a1", None, None, None]
    [run] = offline_runs(wandb_env)
    assert run.run_id == "seed-a1" and run.metric("train/epoch_complete") == [0, 1]
    assert [name for name, _ in result.links] == ["Weights & Biases"]


@pytest.mark.elastic
def test_seed_multi_node_worker_scope_gives_one_run_per_node(tmp_path: Path, wandb_env: Path) -> None:
    result, facts = _elastic(seed_tasks.train_per_worker, tmp_path, epochs=2, batch_size=4)
    assert [facts[r]["run_id"] for r in range(4)] == ["seed-a1-worker-0", None, "seed-a1-worker-1", None]
    assert sorted(r.run_id for r in offline_runs(wandb_env)) == ["seed-a1-worker-0", "seed-a1-worker-1"]
    assert [name for name, _ in result.links] == ["Weights & Biases (worker 0)", "Weights & Biases (worker 1)"]
