"""Online sweeps against a fake W&B server at the HTTP seam (no W&B server is reachable here): ``@wandb_sweep``
creates the sweep, agents run the server's trials as real local Flyte tasks whose offline runs are read back, and
every way the server can fail ends in an offline sweep, an error before the body, or a driver that returns."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flyte
import pytest
from fake_wandb_server import KEY, LONG_KEY, FakeWandb, serve
from readback import offline_runs

from flyteplugins_wandb import (
    AgentPolicy,
    WandbSweep,
    get_wandb_run,
    get_wandb_sweep_id,
    run_sweep,
    wandb_config,
    wandb_init,
    wandb_sweep,
    wandb_sweep_config,
)
from flyteplugins_wandb.sweeps._server import (
    SweepServer,
    SweepServerAuthError,
    SweepServerError,
    SweepServerUnreachable,
)

env = flyte.TaskEnvironment(name="sweeps_online")

LOSS = {"name": "loss", "goal": "minimize"}
CONFIG = wandb_sweep_config(
    method="bayes",
    metric=LOSS,
    parameters={"x": {"min": -2.0, "max": 2.0}, "b": {"values": [0, 1]}},
    project="sweeps-proj",
)
GRID = wandb_sweep_config(method="grid", metric=LOSS, parameters={"x": {"values": [0.0, 1.0]}, "b": {"values": [0, 1]}})
PROPOSALS = [{"x": 0.5, "b": 0}, {"x": 1.0, "b": 1}, {"x": -1.0, "b": 0}, {"x": 1.5, "b": 1}]
# Heartbeats every 0.1 s, so a trial of 0.3 s is seen running. The server is a thread of this process, which a
# busy machine slows: every bound on a call that should succeed is a generous hang guard, not a clock.
FAST = AgentPolicy(heartbeat_interval=0.1, max_failures=3, idle_timeout=10.0, call_timeout=30.0)
LOADED = 30.0
"""Seconds for a call to the fake server that is meant to succeed."""


def loss_of(x: float, b: int) -> float:
    return (x - 1.0) ** 2 + b


# The fake serves the sweep protocol only, not runs: the trials log offline (the decorator's mode wins).
@wandb_init(mode="offline")
@env.task
async def trial(x: float, b: int) -> float:
    run = get_wandb_run()
    assert run is not None
    await asyncio.sleep(0.3)
    loss = loss_of(x, b)
    run.log({"loss": loss, "seen_sweep_id": get_wandb_sweep_id()})
    return loss


@wandb_init
@env.task
async def plain_trial(x: float, b: int) -> float:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": loss_of(x, b)})
    return loss_of(x, b)


@wandb_init(mode="offline", run_mode="new")
@env.task
async def trial_child() -> str:
    run = get_wandb_run()
    assert run is not None
    return str(run.id)


@wandb_init(mode="offline")
@env.task
async def parent_trial(x: float, b: int) -> float:
    """A trial whose own child has a run: the child is not the trial and must not take its server run id."""
    run = get_wandb_run()
    assert run is not None
    child_id = await trial_child()
    run.log({"loss": loss_of(x, b), "child_run_id": child_id})
    return loss_of(x, b)


@wandb_init(mode="offline")
@env.task
async def endless_trial(x: float, b: int) -> float:
    for _ in range(600):  # a minute: the server stops it long before
        await asyncio.sleep(0.1)
    return x


def _summary(result: Any, seen: str | None) -> str:
    # JSON, since Flyte cannot pass a None inside a dict[str, Any] output.
    return json.dumps(
        {
            "sweep_id": result.sweep_id,
            "online": result.online,
            "url": result.url,
            "seen": seen,
            "best": None if result.best is None else {"params": result.best.params, "value": result.best.value},
            "trials": [
                {"run_id": t.run_id, "params": t.params, "status": t.status, "value": t.value, "error": t.error}
                for t in result.trials
            ],
        }
    )


@wandb_sweep(config=CONFIG, probe_timeout=LOADED, timeout=LOADED)
@env.task
async def online_driver(parallel: int, count: int) -> str:
    seen = get_wandb_sweep_id()
    return _summary(await run_sweep(trial, parallel=parallel, count=count, policy=FAST), seen)


@wandb_sweep(config=CONFIG, probe_timeout=LOADED, timeout=LOADED)
@env.task
async def stopping_driver() -> str:
    return _summary(await run_sweep(endless_trial, parallel=1, count=1, policy=FAST), get_wandb_sweep_id())


@wandb_sweep(config=CONFIG, probe_timeout=LOADED, timeout=LOADED)
@env.task
async def parent_trial_driver() -> str:
    return _summary(await run_sweep(parent_trial, parallel=1, count=1, policy=FAST), get_wandb_sweep_id())


# Its probe must also give up on a server that never answers (one of the breakages): 5 s, not LOADED.
@wandb_sweep(probe_timeout=5.0, timeout=10.0)
@env.task
async def context_driver(count: int) -> str:
    seen = get_wandb_sweep_id()
    return _summary(await run_sweep(plain_trial, parallel=2, count=count, policy=FAST), seen)


@wandb_sweep(config=CONFIG, probe_timeout=LOADED, timeout=LOADED)
@env.task
async def online_runs_driver() -> str:
    # plain_trial sets no mode: online, so its runs go to the server that handed them out.
    return _summary(await run_sweep(plain_trial, parallel=1, count=2, policy=FAST), get_wandb_sweep_id())


@wandb_sweep(config=GRID, strict=True, probe_timeout=LOADED)
@env.task
async def strict_driver() -> str:
    await run_sweep(plain_trial, parallel=1, count=1, policy=FAST)
    return "the body ran"


@pytest.fixture(autouse=True)
def _flyte_local() -> None:
    flyte.init()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandb]:
    """A fake W&B server, and a driver environment that is online against it with the right key."""
    fake = FakeWandb(proposals=[dict(p) for p in PROPOSALS])
    with serve(fake) as url:
        fake.url = url  # type: ignore[attr-defined]
        monkeypatch.setenv("WANDB_MODE", "online")
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_API_KEY", KEY)
        yield fake


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- the online path -----------------------------------------------------------------------------------------


def test_an_online_sweep_runs_the_servers_trials_as_flyte_tasks_under_their_server_run_ids(
    fake: FakeWandb, wandb_env: Path
) -> None:
    out = json.loads(flyte.run(online_driver, parallel=2, count=4).outputs()[0])
    url: str = fake.url  # type: ignore[attr-defined]

    assert out["online"] is True
    assert out["sweep_id"] == out["seen"] == "swp00000"
    assert out["url"] == f"{url}/alice/sweeps-proj/sweeps/swp00000"
    [created] = fake.sweeps
    assert created["parsed"] == {
        "method": "bayes",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": -2.0, "max": 2.0}, "b": {"values": [0, 1]}},
        "project": "sweeps-proj",
    }
    assert (created["projectName"], created["entityName"]) == ("sweeps-proj", "alice")
    assert [(a["sweep"], a["projectName"], a["entityName"]) for a in fake.agents] == [
        ("swp00000", "sweeps-proj", "alice")
    ] * 2
    assert set(fake.auth) == {"Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()}

    launched = {entry["run_id"]: entry["params"] for entry in fake.launched}
    assert sorted(launched) == ["run000", "run001", "run002", "run003"]
    assert {t["run_id"]: t["params"] for t in out["trials"]} == launched
    for t in out["trials"]:
        assert (t["status"], t["value"]) == ("complete", loss_of(**t["params"]))
    assert out["best"] == {"params": {"x": 0.5, "b": 0}, "value": 0.25}
    # Each run was reported running in a heartbeat while its trial ran.
    reported = {run for _, running in fake.heartbeats for run in running}
    assert reported == set(launched)

    runs = {r.run_id: r for r in offline_runs(wandb_env)}
    assert sorted(runs) == sorted(launched)
    for run_id, run in runs.items():
        assert run.sweep_id == "swp00000"
        assert run.group == "swp00000"
        assert (run.project, run.entity) == ("sweeps-proj", "alice")
        assert {k: run.config[k] for k in ("x", "b")} == launched[run_id]
        assert run.config["sweep_id"] == "swp00000"
        assert run.summary["seen_sweep_id"] == "swp00000"
        assert run.summary["loss"] == loss_of(**launched[run_id])


def test_an_online_trials_run_is_created_on_the_server_under_the_run_id_and_sweep_it_was_assigned(
    fake: FakeWandb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", LONG_KEY)  # wandb itself wants a key of 40 characters
    out = json.loads(flyte.run(online_runs_driver).outputs()[0])
    assert sorted(t["run_id"] for t in out["trials"]) == ["run000", "run001"]
    created = {}
    for sent in fake.ops("UpsertBucket"):
        created.setdefault(sent.run, sent.variables)  # the first upsert of each run creates it
    assert {run: (v["sweep"], v["project"]) for run, v in created.items()} == {
        "run000": ("swp00000", "sweeps-proj"),
        "run001": ("swp00000", "sweeps-proj"),
    }


def test_count_bounds_the_runs_asked_of_the_server(fake: FakeWandb) -> None:
    fake.proposals.extend(dict(p) for p in PROPOSALS)
    out = json.loads(flyte.run(online_driver, parallel=2, count=3).outputs()[0])
    assert len(out["trials"]) == 3
    assert len(fake.launched) == 3, "the agents asked the server for a run they did not run"


def test_exit_from_the_server_ends_the_sweep_before_count(fake: FakeWandb) -> None:
    del fake.proposals[2:]
    out = json.loads(flyte.run(online_driver, parallel=2, count=10).outputs()[0])
    assert sorted(t["run_id"] for t in out["trials"]) == ["run000", "run001"]


def test_malformed_and_unknown_commands_are_skipped_without_using_up_the_count(
    fake: FakeWandb, caplog: pytest.LogCaptureFixture
) -> None:
    fake.scripted = [
        [{"type": "run", "args": {"x": {"value": 1.0}}}],
        [{"type": "run", "run_id": "bad-args", "args": [1, 2]}],
        [{"type": "reboot"}],
    ]
    with caplog.at_level(logging.WARNING, logger="flyteplugins_wandb"):
        out = json.loads(flyte.run(online_driver, parallel=1, count=2).outputs()[0])
    assert [t["run_id"] for t in out["trials"]] == ["run000", "run001"]
    assert caplog.text.count("ignoring a malformed run command") == 2
    assert "ignoring unknown command {'type': 'reboot'}" in caplog.text


def test_a_run_the_server_stops_is_cancelled_and_recorded_as_stopped(fake: FakeWandb) -> None:
    fake.stop_runs = {"run000"}
    out = json.loads(flyte.run(stopping_driver).outputs()[0])
    [stopped] = out["trials"]
    assert (stopped["run_id"], stopped["status"], stopped["value"]) == ("run000", "stopped", None)
    assert out["best"] is None


def test_a_server_that_stops_answering_ends_the_agents_and_the_driver_returns(
    fake: FakeWandb, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_heartbeats_after = 2
    with caplog.at_level(logging.WARNING, logger="flyteplugins_wandb"):
        out = json.loads(flyte.run(online_driver, parallel=1, count=4).outputs()[0])
    # Heartbeat 1 hands out run000 and heartbeat 2 sees it running; then the server fails. So run000 ran, and at
    # most one more trial (if heartbeat 2 found the agent idle), never the four asked for.
    assert [t["run_id"] for t in out["trials"]][:1] == ["run000"] and len(out["trials"]) <= 2
    assert "the server stopped answering" in caplog.text
    # A trial in flight when the server went away still finished.
    assert all(t["status"] == "complete" for t in out["trials"])


def test_a_trials_children_get_runs_of_their_own_not_the_trials_server_run(fake: FakeWandb, wandb_env: Path) -> None:
    json.loads(flyte.run(parent_trial_driver).outputs()[0])
    runs = {r.run_id: r for r in offline_runs(wandb_env)}
    assert "run000" in runs
    child = runs["run000"].summary["child_run_id"]
    assert child != "run000" and child in runs
    assert runs[child].sweep_id == "", "a trial's child must not report to the sweep"
    assert runs["run000"].sweep_id == "swp00000"


def test_a_trials_link_names_the_run_the_server_assigned() -> None:
    from flyteplugins_wandb import Wandb
    from flyteplugins_wandb.planning._config import WandbConfig

    context = WandbConfig(entity="alice", project="p", run_mode="auto", trial_run_id="run007").to_context()
    assert Wandb().get_link("r1", "p", "d", context, "a0", "a1", "pod") == "https://wandb.ai/alice/p/runs/run007"


# --- offline and fallbacks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param({"url": "refused"}, id="connection-refused"),
        pytest.param({"hang": True}, id="never-answers"),
        pytest.param({"status": 503}, id="server-error"),
        pytest.param({"graphql_error": "invalid sweep config: boom"}, id="config-rejected"),
    ],
)
def test_a_server_that_cannot_create_the_sweep_makes_it_offline_with_offline_trials(
    fake: FakeWandb,
    wandb_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    breakage: dict[str, Any],
) -> None:
    if breakage.pop("url", None):
        monkeypatch.setenv("WANDB_BASE_URL", _refused_url())
    for name, value in breakage.items():
        setattr(fake, name, value)
    ctx = {**wandb_config(project="fallback"), **GRID}
    with caplog.at_level(logging.WARNING, logger="flyteplugins_wandb"):
        out = json.loads(flyte.with_runcontext(custom_context=ctx).run(context_driver, count=4).outputs()[0])
    assert "the sweep runs offline on the local engine" in caplog.text
    if "graphql_error" in breakage:
        assert "invalid sweep config: boom" in caplog.text
    assert out["online"] is False and out["url"] is None
    assert out["sweep_id"].endswith("-sweep") and out["seen"] == out["sweep_id"]
    assert [t["params"] for t in out["trials"]] == [{"x": x, "b": b} for x in (0.0, 1.0) for b in (0, 1)]
    assert fake.agents == []
    runs = offline_runs(wandb_env)
    assert len(runs) == 4, "the trials' runs must be offline (the server is unusable), not lost"
    for run in runs:
        assert run.group == out["sweep_id"] and run.sweep_id == "" and run.project == "fallback"


def test_a_server_that_takes_no_agent_runs_the_sweep_offline_under_the_drivers_own_id(
    fake: FakeWandb, wandb_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_agents = True
    ctx = {**wandb_config(project="fallback"), **GRID}
    with caplog.at_level(logging.WARNING, logger="flyteplugins_wandb"):
        out = json.loads(flyte.with_runcontext(custom_context=ctx).run(context_driver, count=4).outputs()[0])
    assert "no agent could register" in caplog.text
    assert fake.sweeps, "the sweep was created before the agents failed"
    assert out["online"] is False and out["sweep_id"].endswith("-sweep")
    assert out["seen"] == fake.sweeps[0]["name"], "the body saw the server sweep it was given"
    assert [t["status"] for t in out["trials"]] == ["complete"] * 4
    runs = offline_runs(wandb_env)
    assert len(runs) == 4 and all(r.group == out["sweep_id"] and r.sweep_id == "" for r in runs)


def test_offline_mode_never_calls_the_server(fake: FakeWandb, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = json.loads(flyte.with_runcontext(custom_context=dict(GRID)).run(context_driver, count=2).outputs()[0])
    assert out["online"] is False and len(out["trials"]) == 2
    assert fake.auth == []


def test_strict_raises_when_the_server_cannot_create_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_BASE_URL", _refused_url())
    with pytest.raises(Exception, match="cannot create the W&B sweep .*strict=True"):
        flyte.run(strict_driver)


def test_strict_raises_when_the_server_takes_no_agent(fake: FakeWandb) -> None:
    fake.fail_agents = True
    with pytest.raises(Exception, match="no agent could register .*strict=True"):
        flyte.run(strict_driver)
    assert fake.sweeps and fake.launched == []


def test_a_refused_key_fails_before_the_body_runs(fake: FakeWandb, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "wrong-key")
    with pytest.raises(Exception, match="refused the W&B API key"):
        flyte.run(online_driver, parallel=1, count=1)
    assert fake.sweeps == [] and fake.agents == []


def test_online_without_a_key_fails_before_the_body_runs(
    fake: FakeWandb, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(Exception, match="no API key was found"):
        flyte.run(online_driver, parallel=1, count=1)
    assert fake.auth == []


# --- the client, call by call --------------------------------------------------------------------------------


def test_the_client_reads_the_viewer_and_files_the_sweep_where_the_server_says(fake: FakeWandb) -> None:
    server = SweepServer(fake.url, KEY, timeout=LOADED)  # type: ignore[attr-defined]
    assert server.probe(LOADED) == "alice"
    created = server.create_sweep(GRID.config, entity=None, project=None)
    assert (created.sweep_id, created.entity, created.project) == ("swp00000", "alice", "uncategorized")
    assert fake.sweeps[0]["parsed"] == {
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": [0.0, 1.0]}, "b": {"values": [0, 1]}},
    }
    agent = server.register_agent("swp00000", entity="alice", project="uncategorized", host="h")
    assert server.heartbeat(agent, {}) == [
        {"type": "run", "run_id": "run000", "args": {"x": {"value": 0.5}, "b": {"value": 0}}}
    ]


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        pytest.param({"status": 401}, SweepServerAuthError, "refused the W&B API key", id="401"),
        pytest.param({"status": 403}, SweepServerAuthError, "refused the W&B API key", id="403"),
        pytest.param({"status": 500}, SweepServerUnreachable, "HTTP 500", id="500"),
        pytest.param({"status": 429}, SweepServerUnreachable, "HTTP 429", id="429"),
        pytest.param({"status": 404}, SweepServerError, "HTTP 404", id="404"),
        pytest.param({"hang": True, "probe": 0.5}, SweepServerUnreachable, "no answer from .* within 0.5s", id="hangs"),
        pytest.param({"key": "wrong"}, SweepServerAuthError, "HTTP 401", id="wrong-key"),
    ],
)
def test_every_way_the_probe_fails_is_a_typed_error_naming_the_server(
    fake: FakeWandb, setup: dict[str, Any], error: type[Exception], message: str
) -> None:
    key, probe = setup.pop("key", KEY), setup.pop("probe", LOADED)
    for name, value in setup.items():
        setattr(fake, name, value)
    with pytest.raises(error, match=message):
        SweepServer(fake.url, key).probe(probe)  # type: ignore[attr-defined]


def test_a_refused_connection_is_unreachable() -> None:
    with pytest.raises(SweepServerUnreachable, match="no answer from http://127.0.0.1"):
        SweepServer(_refused_url(), KEY).probe(LOADED)


def test_a_graphql_error_is_reported_with_the_servers_message(fake: FakeWandb) -> None:
    fake.graphql_error = "parameter lr: min must be < max"
    with pytest.raises(SweepServerError, match="reported: parameter lr: min must be < max"):
        SweepServer(fake.url, KEY).create_sweep(GRID.config, entity="e", project="p")  # type: ignore[attr-defined]


@pytest.mark.parametrize("timeout", [0, -1, "5"])
def test_a_bad_client_timeout_is_refused(timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        SweepServer("http://x", KEY, timeout=timeout)


# --- the decorator and its link ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param({"config": {"method": "grid"}}, TypeError, "config must be wandb_sweep_config", id="dict-config"),
        pytest.param({"probe_timeout": 0}, ValueError, "probe_timeout must be a positive", id="zero-probe"),
        pytest.param({"timeout": -3}, ValueError, "timeout must be a positive", id="negative-timeout"),
        pytest.param({"timeout": True}, ValueError, "timeout must be a positive", id="bool-timeout"),
    ],
)
def test_bad_decorator_arguments_are_refused_at_definition(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        wandb_sweep(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"heartbeat_interval": 0}, "heartbeat_interval must be a positive", id="zero-interval"),
        pytest.param({"idle_timeout": -1.0}, "idle_timeout must be a positive", id="negative-idle"),
        pytest.param({"call_timeout": "30"}, "call_timeout must be a positive", id="str-timeout"),
        pytest.param({"max_failures": 0}, "max_failures must be a positive int", id="zero-failures"),
        pytest.param({"max_failures": 2.5}, "max_failures must be a positive int", id="float-failures"),
    ],
)
def test_a_bad_agent_policy_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AgentPolicy(**kwargs)


def test_decorating_twice_is_refused() -> None:
    with pytest.raises(TypeError, match="already decorated with @wandb_sweep"):
        wandb_sweep(online_driver)


def test_a_driver_without_a_sweep_configuration_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(Exception, match=r"needs a sweep configuration: @wandb_sweep\(config="):
        flyte.run(context_driver, count=1)


def test_the_decorator_attaches_one_link_to_the_projects_sweeps_page() -> None:
    links = [link for link in online_driver.links if isinstance(link, WandbSweep)]
    assert len(links) == 1
    assert links[0].get_link("r1", "p", "d", {**wandb_config(entity="team")}, "a0", "a1", "pod") == (
        "https://wandb.ai/team/sweeps-proj/sweeps"
    )


@pytest.mark.parametrize(
    ("link", "context", "expected"),
    [
        pytest.param(WandbSweep(), {}, "https://wandb.ai/home", id="no-entity"),
        pytest.param(
            WandbSweep(),
            {**wandb_config(entity="e", project="p", host="https://w.corp/")},
            "https://w.corp/e/p/sweeps",
            id="from-wandb-config",
        ),
        pytest.param(
            WandbSweep(),
            {
                **wandb_config(entity="e", project="p"),
                **wandb_sweep_config(method="grid", parameters={"a": {"value": 1}}, entity="s", project="q"),
            },
            "https://wandb.ai/s/q/sweeps",
            id="sweep-config-wins",
        ),
        pytest.param(
            WandbSweep(), {**wandb_config(entity="e")}, "https://wandb.ai/home", id="no-project-the-hosts-page"
        ),
        pytest.param(
            WandbSweep(CONFIG.config),
            {**wandb_config(entity="a b")},
            "https://wandb.ai/a%20b/sweeps-proj/sweeps",
            id="decorator-config-quoted",
        ),
    ],
)
def test_the_sweep_link_points_at_the_sweeps_page_of_the_sweeps_project(
    link: WandbSweep, context: dict[str, str], expected: str
) -> None:
    assert link.get_link("r1", "p", "d", context, "a0", "a1", "pod") == expected
