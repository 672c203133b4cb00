"""The rest of the public plugin's contract (``flyteplugins-wandb``) that code written for it relies on: its config
objects, the context getters, a user's run id, ``@wandb_sweep``'s keywords, the links, the download helpers, and a
workflow that mixes both plugins (a parent on one, children on the other), through the run-context keys both read.

Everything here runs for real: local ``flyte.run``, W&B offline read back from its files, the fake W&B server only
where a server must answer. Decorations that the previous release refused are made inside the tests, so that each
test fails on its own there."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import flyte
import pytest
from fake_wandb_server import KEY, FakeWandb, StoredRun, serve
from flyteplugins.pytorch.task import Elastic
from readback import offline_runs

from flyteplugins.wandb import (
    DistributedInfo,
    Wandb,
    WandbSweep,
    download_wandb_run_dir,
    download_wandb_sweep_dirs,
    get_wandb_context,
    get_wandb_run,
    get_wandb_sweep_context,
    get_wandb_sweep_id,
    plan,
    wandb_config,
    wandb_init,
    wandb_sweep,
    wandb_sweep_config,
)
from flyteplugins_wandb import LayoutError

env = flyte.TaskEnvironment(name="contract")
declared = flyte.TaskEnvironment(name="contract_declared", env_vars={"WANDB_PROJECT": "declared-proj"})
ACTION = "{{.actionName}}"
GRID = {"x": {"values": [1, 2]}}


def render(link: Any, context: dict[str, str] | None = None, run_name: str = "r7", action_name: str = "a1") -> str:
    """get_link as Flyte calls it when a run is launched."""
    return str(
        link.get_link(
            run_name=run_name,
            project="fp",
            domain="development",
            context=context or {},
            parent_action_name="a0",
            action_name=action_name,
            pod_name="pod",
        )
    )


# --- wandb_config / wandb_sweep_config: the objects code written for the public plugin reads -----------------------


def test_wandb_config_fields_read_as_attributes_with_the_layout_defaults() -> None:
    cfg = wandb_config(project="p", entity="e", tags=["a"], config={"lr": 0.1})
    assert (cfg.project, cfg.entity, cfg.tags, cfg.config) == ("p", "e", ("a",), {"lr": 0.1})
    assert (cfg.run_mode, cfg.rank_scope, cfg.group) == ("auto", "global", None)
    assert wandb_config(run_mode="new").run_mode == "new"
    # Still the run-context entries themselves, and to_dict() gives them as a plain dict.
    assert isinstance(cfg, dict) and cfg.to_dict() == dict(cfg) and type(cfg.to_dict()) is dict
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in cfg.to_dict().items())
    with pytest.raises(AttributeError, match="has no attribute 'projcet'"):
        cfg.projcet  # noqa: B018


def test_a_sweep_config_may_give_only_its_method() -> None:
    cfg = wandb_sweep_config(method="random")
    assert (cfg.method, cfg.parameters, cfg.metric) == ("random", None, None)


def test_bayes_without_a_metric_is_accepted_until_the_sweep_is_created() -> None:
    cfg = wandb_sweep_config(method="bayes", parameters={"x": {"min": 0.0, "max": 1.0}})
    with pytest.raises(Exception, match="metric is required for method 'bayes'"):
        flyte.with_runcontext(custom_context=cfg).run(sweep_driver()).outputs()


@cache
def sweep_driver() -> Any:
    @wandb_sweep
    @env.task
    async def driver() -> str:
        return str(get_wandb_sweep_id())

    return driver


@env.task
async def reads_sweep_context() -> str:
    sweep = get_wandb_sweep_context()
    return json.dumps(None if sweep is None else [sweep.method, sweep.parameters])


@env.task
async def applies_sweep_config_to_a_child() -> list[str]:
    with wandb_sweep_config(method="grid", parameters=GRID):
        inside = await reads_sweep_context()
    return [inside, await reads_sweep_context()]


def test_wandb_sweep_config_is_a_context_manager_for_the_tasks_launched_inside() -> None:
    inside, after = flyte.run(applies_sweep_config_to_a_child).outputs()[0]
    assert json.loads(inside) == ["grid", GRID]
    assert json.loads(after) is None


@env.task
async def reads_download_logs() -> str:
    context = get_wandb_context()
    return json.dumps([get_wandb_sweep_id(), context and context.download_logs])


def test_wandb_sweep_config_takes_download_logs_for_the_trials() -> None:
    cfg = wandb_sweep_config(method="grid", parameters=GRID, download_logs=True)
    assert cfg.download_logs is True
    assert "download_logs" not in cfg.config.to_wandb()  # not W&B's key: the server never sees it

    @env.task
    async def driver_of_children() -> str:
        return await reads_download_logs()

    driver = wandb_sweep(driver_of_children)
    sweep_id, download_logs = json.loads(flyte.with_runcontext(custom_context=cfg).run(driver).outputs()[0])
    assert sweep_id is not None and download_logs is True


@env.task
async def reads_kwargs() -> str:
    context = get_wandb_context()
    assert context is not None
    return json.dumps([context.notes, context.job_type, dict(context.init_kwargs or {})])


@env.task
async def nests_wandb_config() -> str:
    with wandb_config(notes="inner"):
        return await reads_kwargs()


def test_an_inner_wandb_config_block_keeps_the_outer_blocks_other_init_keywords() -> None:
    context = wandb_config(job_type="outer", resume="allow")
    out = flyte.with_runcontext(custom_context=context).run(nests_wandb_config).outputs()[0]
    assert json.loads(out) == ["inner", "outer", {"resume": "allow"}]


# --- the context getters -------------------------------------------------------------------------------------------


@env.task
async def plain_reader() -> str:
    return json.dumps([get_wandb_context() is None, get_wandb_run() is None])


def test_get_wandb_context_is_none_in_a_task_without_wandb_settings_or_run() -> None:
    assert json.loads(flyte.run(plain_reader).outputs()[0]) == [True, True]


def test_get_wandb_sweep_context_reads_a_partial_sweep_config() -> None:
    context = {"wandb_sweep_method": "bayes"}  # as a driver's partial wandb_sweep_config(method="bayes") writes it
    out = flyte.with_runcontext(custom_context=context).run(reads_sweep_context).outputs()[0]
    assert json.loads(out) == ["bayes", None]


# --- a user's run id ------------------------------------------------------------------------------------------------


@wandb_init(project="ids", entity="team")
@env.task
async def logs_one_row() -> str:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": 1.0})
    return str(run.id)


def test_wandb_config_id_names_the_run_of_a_plain_task_and_its_link(wandb_env: Path) -> None:
    context = wandb_config(id="my-run-7")
    run = flyte.with_runcontext(custom_context=context).run(logs_one_row)
    assert run.outputs()[0] == "my-run-7"
    [written] = offline_runs(wandb_env)
    assert written.run_id == "my-run-7" and written.metric("loss") == [1.0]
    [link] = logs_one_row.links
    assert render(link, context) == "https://wandb.ai/team/ids/runs/my-run-7"


async def _fixed_id_body() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


@cache
def fixed_id_task() -> Any:
    return wandb_init(id="fixed-id", project="ids", entity="team")(env.task(_fixed_id_body))


def test_wandb_init_id_names_the_run_of_a_plain_task_and_its_link(wandb_env: Path) -> None:
    task = fixed_id_task()
    assert flyte.run(task).outputs()[0] == "fixed-id"
    assert [r.run_id for r in offline_runs(wandb_env)] == ["fixed-id"]
    [link] = task.links
    assert render(link) == "https://wandb.ai/team/ids/runs/fixed-id"


def _topology(rank: int, world: int, per_node: int) -> DistributedInfo:
    return DistributedInfo(rank, rank % per_node, world, per_node, rank // per_node, world // per_node)


@pytest.mark.parametrize(
    ("run_mode", "rank_scope", "per_node", "ids"),
    [
        pytest.param("auto", "global", 2, ["mine", None, None, None], id="auto-global-one-run-from-rank-0"),
        pytest.param("shared", "global", 2, ["mine"] * 4, id="shared-global-one-run-every-writer"),
        pytest.param("auto", "worker", 4, ["mine", None, None, None], id="auto-worker-on-one-node-one-run"),
    ],
)
def test_a_distributed_layout_with_one_run_takes_the_user_id(
    run_mode: str, rank_scope: str, per_node: int, ids: list[str | None]
) -> None:
    plans = [plan(_topology(r, 4, per_node), run_mode, rank_scope, "R-a1", run_id="mine") for r in range(4)]
    assert [p.run_id for p in plans] == ids


@pytest.mark.parametrize(
    ("run_mode", "rank_scope", "runs"),
    [
        pytest.param("new", "global", 4, id="new-a-run-per-rank"),
        pytest.param("new", "worker", 4, id="new-worker"),
        pytest.param("auto", "worker", 2, id="auto-worker-a-run-per-node"),
        pytest.param("shared", "worker", 2, id="shared-worker-a-run-per-node"),
    ],
)
def test_a_layout_of_several_runs_refuses_a_user_id(run_mode: str, rank_scope: str, runs: int) -> None:
    with pytest.raises(LayoutError, match=f"id='mine' names one run, but run_mode='{run_mode}'.* makes {runs} runs"):
        plan(_topology(0, 4, 2), run_mode, rank_scope, "R-a1", run_id="mine")


def _worker_env(rank: int) -> dict[str, str]:
    return {"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0"}


def test_each_worker_of_a_distributed_task_plans_the_run_context_id_for_its_one_run() -> None:
    from flyteplugins_wandb.run._lifecycle import InitOptions, decide

    options = InitOptions(distributed_task=True)
    decisions = [decide(options, wandb_config(id="mine"), "R", "a1", 0, _worker_env(r)) for r in (0, 1)]
    assert [d.placement.plan.run_id if d.placement else "?" for d in decisions] == ["mine", None]
    with pytest.raises(LayoutError, match="id='mine' names one run, but run_mode='new'"):
        decide(options, wandb_config(id="mine", run_mode="new"), "R", "a1", 0, _worker_env(0))


def test_an_elastic_task_asking_for_a_run_per_process_refuses_an_id_where_it_is_written() -> None:
    elastic = flyte.TaskEnvironment(name="contract_elastic", plugin_config=Elastic(nproc_per_node=2, nnodes=1))

    async def per_rank() -> None: ...

    with pytest.raises(ValueError, match="id='x' names one run, but run_mode='new'"):
        wandb_init(id="x", run_mode="new")(elastic.task(per_rank))


@wandb_init(run_mode="new")
@env.task
async def new_child() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


@wandb_init
@env.task
async def parent_of_new_child() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    return [str(run.id), await new_child()]


def test_the_run_context_id_names_the_launched_task_not_its_children(wandb_env: Path) -> None:
    parent, child = flyte.with_runcontext(custom_context=wandb_config(id="top")).run(parent_of_new_child).outputs()[0]
    assert parent == "top" and child not in ("top", "")
    assert sorted(r.run_id for r in offline_runs(wandb_env)) == sorted([parent, child])


# --- @wandb_sweep's keywords ---------------------------------------------------------------------------------------


async def _keyword_sweep_body() -> str:
    sweep = get_wandb_sweep_context()
    assert sweep is not None
    return json.dumps([get_wandb_sweep_id(), sweep.method, sweep.project, sweep.entity])


def test_wandb_sweep_takes_project_entity_and_sweep_fields_as_keywords() -> None:
    task = wandb_sweep(project="sp", entity="team", method="grid", parameters=GRID)(env.task(_keyword_sweep_body))
    sweep_id, method, project, entity = json.loads(flyte.run(task).outputs()[0])
    assert (method, project, entity) == ("grid", "sp", "team") and sweep_id.endswith("-sweep")
    [link] = task.links
    assert render(link) == "https://wandb.ai/team/sp/sweeps"


# --- links ---------------------------------------------------------------------------------------------------------


def test_the_sweep_link_of_an_agent_task_opens_the_sweep_in_its_run_context() -> None:
    # What a driver hands the agent tasks it launches (the public plugin writes the same _wandb_sweep_id key).
    context = {**wandb_config(entity="team", project="p"), "_wandb_sweep_id": "abc123"}
    assert render(WandbSweep(), context) == "https://wandb.ai/team/p/sweeps/abc123"
    assert render(WandbSweep(), wandb_config(entity="team", project="p")) == "https://wandb.ai/team/p/sweeps"


def test_a_host_in_the_run_context_wins_over_the_one_on_a_hand_made_link() -> None:
    context = wandb_config(host="https://theirs.example")
    run_link = Wandb(project="p", entity="team", host="https://mine.example")
    sweep_link = WandbSweep(project="p", entity="team", host="https://mine.example")
    assert render(run_link, context).startswith("https://theirs.example/team/p/runs/")
    assert render(sweep_link, context) == "https://theirs.example/team/p/sweeps"
    assert render(run_link).startswith("https://mine.example/team/p/runs/")


@pytest.mark.parametrize(
    "link",
    [
        pytest.param(Wandb(entity="team"), id="run-link-no-project"),
        pytest.param(Wandb(project="p"), id="run-link-no-entity"),
        pytest.param(WandbSweep(entity="team"), id="sweep-link-no-project"),
        pytest.param(WandbSweep(project="p"), id="sweep-link-no-entity"),
    ],
)
def test_a_missing_project_or_entity_gives_the_hosts_page(link: Any) -> None:
    assert render(link) == "https://wandb.ai/home"


@wandb_init(project="p", entity="team", run_mode="new", rank_scope="worker")
@env.task
async def described() -> None: ...


def test_the_links_of_wandb_init_carry_the_decorators_settings() -> None:
    [link] = described.links
    assert (link.project, link.entity, link.run_mode, link.rank_scope) == ("p", "team", "new", "worker")


@wandb_init(entity="team")
@declared.task
async def in_declared_project() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.project)


@wandb_init(entity="team")
@env.task
async def in_launching_project() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.project)


def test_the_link_falls_back_to_the_project_of_the_tasks_declared_environment() -> None:
    [link] = in_declared_project.links
    assert render(link) == "https://wandb.ai/team/declared-proj/runs/r7-a1"


def test_the_link_falls_back_to_the_launching_processs_wandb_project_where_the_run_is_made(
    wandb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    run = flyte.run(in_launching_project)
    assert run.outputs()[0] == "from-env"
    [written] = offline_runs(wandb_env)
    [link] = in_launching_project.links
    run_name, _, action = written.run_id.rpartition("-")
    assert written.project == "from-env"
    assert (
        render(link, run_name=run_name, action_name=action) == f"https://wandb.ai/team/from-env/runs/{written.run_id}"
    )


@wandb_init(run_mode="shared", project="p", entity="team")
@env.task
async def shared_alone() -> None: ...


def test_shared_on_a_plain_task_without_a_parent_links_the_project_page(wandb_env: Path) -> None:
    [link] = shared_alone.links
    assert render(link) == "https://wandb.ai/team/p"
    with pytest.raises(Exception, match="no parent run to share"):
        flyte.run(shared_alone).outputs()  # the run the old link pointed at is never made
    assert offline_runs(wandb_env) == []
    # With a parent run in the launching context, the link opens the run the task joins.
    assert render(link, {"_wandb_run_id": "R-parent"}) == "https://wandb.ai/team/p/runs/R-parent"


@pytest.mark.parametrize(
    ("context", "links"),
    [
        pytest.param(
            {"wandb_sweep_method": "grid", "wandb_sweep_parameters": "{oops"}, ["sweep"], id="malformed-sweep-json"
        ),
        pytest.param({"wandb_sweep_method": "grd"}, ["sweep"], id="bad-sweep-method"),
        pytest.param({"wandb_run_mode": "shard"}, ["run", "sweep"], id="bad-run-mode"),
        pytest.param({"wandb_tags": "[1]"}, ["run", "sweep"], id="bad-tags"),
    ],
)
def test_get_link_never_raises_on_a_bad_run_context(context: dict[str, str], links: list[str]) -> None:
    made = {"run": Wandb(project="p", entity="team"), "sweep": WandbSweep(project="p", entity="team")}
    for kind in links:
        assert render(made[kind], context) == "https://wandb.ai/home", kind


def test_a_bad_sweep_config_fails_the_task_that_reads_it() -> None:
    context = {"wandb_sweep_method": "grid", "wandb_sweep_parameters": "{oops"}
    with pytest.raises(Exception, match="run-context key 'wandb_sweep_parameters' must hold JSON"):
        flyte.with_runcontext(custom_context=context).run(reads_sweep_context).outputs()


# --- download helpers ----------------------------------------------------------------------------------------------

STORED = StoredRun(summary={"loss": 0.25}, history=[{"_step": 0, "loss": 0.25}], files={"output.log": b"hi\n"})


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandb]:
    fake = FakeWandb(entity="team")
    fake.any_run = STORED
    with serve(fake) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_API_KEY", KEY)
        yield fake


@env.task
async def downloads_without_a_run_id() -> str:
    return download_wandb_run_dir(path=os.path.join(os.environ["WANDB_DIR"], "back"))


# Disabled: a run object with the layout's id and no local files, so the server is asked for it.
@wandb_init(project="proj", entity="team", mode="disabled")
@env.task
async def parent_with_a_run() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    return [str(run.id), await downloads_without_a_run_id()]


def test_download_without_a_run_id_in_a_child_without_a_run_downloads_the_parents_run(server: FakeWandb) -> None:
    parent_id, path = flyte.run(parent_with_a_run).outputs()[0]
    assert server.downloads and all(d.startswith(f"/files/team/proj/{parent_id}/") for d in server.downloads)
    assert json.loads(Path(path, "summary.json").read_text()) == {"loss": 0.25}


@wandb_init(project="proj", mode="offline")
@env.task
async def trains_offline() -> str:
    run = get_wandb_run()
    assert run is not None
    for step in range(3):
        run.log({"loss": 1.0 / (step + 1)})
    return str(run.id)


def test_an_offline_run_of_this_workflow_is_read_from_its_own_files(
    wandb_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no API key anywhere: the server cannot be asked
    run_id = flyte.run(trains_offline).outputs()[0]
    out = Path(download_wandb_run_dir(run_id, path=str(tmp_path / "back"), project="proj"))
    assert json.loads((out / "summary.json").read_text())["loss"] == pytest.approx(1 / 3)
    rows = json.loads((out / "metrics_history.json").read_text())
    assert [r["loss"] for r in rows] == pytest.approx([1.0, 0.5, 1 / 3])
    assert (out / "requirements.txt").exists() or any(out.iterdir())  # the run's own files came along


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: download_wandb_run_dir(), id="run-no-id-no-run"),
        pytest.param(lambda: download_wandb_run_dir("a/b/c/d"), id="run-bad-id"),
        pytest.param(lambda: download_wandb_run_dir("nowhere-run"), id="run-no-project"),
        pytest.param(lambda: download_wandb_sweep_dirs(), id="sweep-no-id"),
        pytest.param(lambda: download_wandb_sweep_dirs("swp1"), id="sweep-no-project"),
    ],
)
def test_every_failure_of_the_download_helpers_is_a_runtime_error(call: Any) -> None:
    with pytest.raises(RuntimeError):
        call()


# --- mixing plugins in one workflow ---------------------------------------------------------------------------------

# What a parent task on flyteplugins-wandb hands its children, from its documentation: its wandb_config's fields
# under wandb_<field> (strings as they are, lists and mappings as JSON), further wandb.init keywords in wandb_kwargs,
# its run under _wandb_run_id, the sweep under _wandb_sweep_id, W&B's other sweep keys in wandb_sweep_kwargs.
PUBLIC_PARENT = {
    "wandb_project": "mixed",
    "wandb_entity": "team",
    "wandb_tags": '["from-public"]',
    "wandb_config": '{"lr": 0.1}',
    "wandb_run_mode": "auto",
    "wandb_rank_scope": "global",
    "wandb_download_logs": "true",
    "wandb_kwargs": '{"notes": "migrating", "job_type": "train", "resume": "allow", "host": "https://w.example"}',
    "_wandb_run_id": "public-parent-run",
    "_wandb_sweep_id": "swp9",
    "wandb_sweep_method": "grid",
    "wandb_sweep_parameters": '{"x": {"values": [1, 2]}}',
    "wandb_sweep_kwargs": '{"run_cap": 4, "description": "from public"}',
}


@wandb_init
@env.task
async def child_of_a_public_parent() -> str:
    run = get_wandb_run()
    context = get_wandb_context()
    sweep = get_wandb_sweep_context()
    assert run is not None and context is not None and sweep is not None
    run.log({"child_metric": 1.0})
    return json.dumps(
        {
            "run": run.id,
            "settings": [context.project, context.entity, list(context.tags or ()), dict(context.config or {})],
            "kwargs": [context.notes, context.job_type, dict(context.init_kwargs or {}), context.host],
            "download_logs": context.download_logs,
            "sweep": [get_wandb_sweep_id(), sweep.method, sweep.run_cap, sweep.description],
        }
    )


def test_a_child_reads_the_context_of_a_parent_on_the_public_plugin(wandb_env: Path) -> None:
    out = json.loads(flyte.with_runcontext(custom_context=PUBLIC_PARENT).run(child_of_a_public_parent).outputs()[0])
    assert out["run"] == "public-parent-run"  # it joins the parent's run
    assert out["settings"] == ["mixed", "team", ["from-public"], {"lr": 0.1}]
    assert out["kwargs"] == ["migrating", "train", {"resume": "allow"}, "https://w.example"]
    assert out["download_logs"] is True
    assert out["sweep"] == ["swp9", "grid", 4, "from public"]
    [written] = offline_runs(wandb_env)
    assert (written.run_id, written.project) == ("public-parent-run", "mixed")
    assert written.metric("child_metric") == [1.0]


# The public plugin's wandb_config fields, from its documentation. Its codec turns every wandb_* key (sweep keys
# aside) into a keyword of its config class, so a key it has no field for raises TypeError there.
PUBLIC_FIELDS = frozenset(
    {"project", "entity", "id", "name", "tags", "config", "mode", "group", "run_mode", "rank_scope", "download_logs"}
)


@dataclasses.dataclass
class PublicConfig:
    """A model of the public plugin's ``from_dict``: each ``wandb_<field>`` key becomes a keyword."""

    project: str | None = None
    entity: str | None = None
    id: str | None = None
    name: str | None = None
    tags: str | None = None
    config: str | None = None
    mode: str | None = None
    group: str | None = None
    run_mode: str | None = None
    rank_scope: str | None = None
    download_logs: str | None = None
    kwargs: str | None = None

    @classmethod
    def from_dict(cls, context: dict[str, str]) -> PublicConfig:
        return cls(
            **{
                k[len("wandb_") :]: v
                for k, v in context.items()
                if k.startswith("wandb_") and not k.startswith("wandb_sweep_")
            }
        )


@env.task
async def public_child() -> str:
    tctx = flyte.ctx()
    assert tctx is not None
    context = dict(tctx.custom_context)
    public = PublicConfig.from_dict(context)  # what the public plugin's get_wandb_context() does in this child
    return json.dumps({"context": context, "project": public.project})


@wandb_init(
    project="ours", entity="team", notes="n", job_type="jt", config={"year": "2024"}, report=False, host="https://h.io"
)
@env.task
async def our_parent() -> list[str]:
    run = get_wandb_run()
    assert run is not None
    return [str(run.id), await public_child()]


def test_a_public_plugin_child_reads_our_parents_context(wandb_env: Path) -> None:
    context = {**wandb_config(group="g", mode="offline"), **wandb_sweep_config(method="grid", parameters=GRID)}
    parent_id, raw = flyte.with_runcontext(custom_context=context).run(our_parent).outputs()[0]
    seen = json.loads(raw)
    handed = seen["context"]
    # Its from_dict took what ours wrote without a TypeError, and finds the parent's run under its own key.
    assert seen["project"] == "ours" and handed["_wandb_run_id"] == parent_id
    assert {k[len("wandb_") :] for k in handed if k.startswith("wandb_") and not k.startswith("wandb_sweep_")} <= (
        PUBLIC_FIELDS | {"kwargs"}
    )
    assert json.loads(handed["wandb_config"])["year"] == "2024"
    # What only this plugin has travels where the public plugin does not look, and is still read by ours.
    assert handed["_wandb_host"] == "https://h.io"


def test_everything_wandb_config_writes_is_readable_by_the_public_plugins_codec() -> None:
    ours = wandb_config(
        project="p", host="https://h.io", notes="n", job_type="j", dir="/d", report=True, download_logs=True, id="i"
    )
    public = PublicConfig.from_dict(ours)
    assert (public.project, public.id, public.download_logs) == ("p", "i", "true")
    assert json.loads(public.kwargs or "{}") == {"notes": "n", "job_type": "j", "dir": "/d"}


def test_a_bool_written_in_pythons_spelling_is_read() -> None:
    from flyteplugins_wandb.planning._config import decode_config

    assert decode_config({"wandb_download_logs": "True"}).download_logs is True
    assert decode_config({"wandb_download_logs": "False"}).download_logs is False


def test_the_codec_round_trip_stays_exact_with_the_shared_keys() -> None:
    from flyteplugins_wandb import WandbConfig
    from flyteplugins_wandb.planning._config import decode_config

    config = WandbConfig(
        project="2024",
        id="true",
        notes="null",
        job_type="[1]",
        dir="/d",
        host="https://h.io",
        init_kwargs={"resume": "allow", "save_code": False},
        parent_run_id="R-a0",
        download_logs=False,
    )
    encoded = config.to_context()
    assert decode_config(encoded) == config
    assert encoded["_wandb_run_id"] == "R-a0" and "wandb_host" not in encoded and "_wandb_host" in encoded
    assert json.loads(encoded["wandb_kwargs"]) == {
        "resume": "allow",
        "save_code": False,
        "notes": "null",
        "job_type": "[1]",
        "dir": "/d",
    }
    # The public parent's context, read and written again, reads the same.
    once = decode_config(PUBLIC_PARENT)
    assert decode_config(once.to_context()) == once
