"""What each process passes to ``wandb.init``: the user's settings win or are refused, never silently replaced;
in a shared run only the primary writer sets run-level metadata; the start bound follows W&B's own setting."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flyte
import pytest
import wandb
from remote_task import run_as_pod

from flyteplugins_wandb import DistributedInfo, WandbConfig, get_wandb_run, plan, wandb_init
from flyteplugins_wandb.planning._config import INIT_FIELDS, NOT_INHERITED, USER_FIELDS, cleared, decode_config
from flyteplugins_wandb.planning._resolve import resolve
from flyteplugins_wandb.run._init_args import PER_PROCESS_SETTINGS, RUN_METADATA, build_init_kwargs
from flyteplugins_wandb.run._lifecycle import DEFAULT_START_TIMEOUT, InitOptions, start_bound

USER = WandbConfig(
    project="p",
    name="exp-1",
    notes="why",
    job_type="train",
    tags=("a",),
    group="g",
    config={"lr": 0.1},
)


def _kwargs(t: DistributedInfo, run_mode: str, rank_scope: str = "global", mode: str = "online") -> dict[str, Any]:
    p = plan(t, run_mode, rank_scope, "R-a0", "g")
    return build_init_kwargs(p, resolve(USER, WandbConfig(mode=mode), {}), None, {})  # type: ignore[arg-type]


def _rank(rank: int, world: int, local_world: int) -> DistributedInfo:
    return DistributedInfo(
        rank=rank,
        local_rank=rank % local_world,
        world_size=world,
        local_world_size=local_world,
        worker_index=rank // local_world,
        num_workers=world // local_world,
    )


@pytest.mark.parametrize(
    ("world", "local_world", "rank_scope", "primaries"),
    [
        pytest.param(2, 2, "global", {0}, id="1x2"),
        pytest.param(4, 2, "global", {0}, id="2x2-global"),
        pytest.param(4, 2, "worker", {0, 2}, id="2x2-worker"),
    ],
)
@pytest.mark.parametrize("mode", ["online", "offline"])
def test_only_the_primary_writer_of_a_shared_run_sends_run_level_metadata(
    world: int, local_world: int, rank_scope: str, primaries: set[int], mode: str
) -> None:
    for rank in range(world):
        kwargs = _kwargs(_rank(rank, world, local_world), "shared", rank_scope, mode)
        settings = kwargs["settings"]
        assert settings.x_primary is (rank in primaries), f"rank {rank}"
        assert settings.x_update_finish_state is (rank in primaries), f"rank {rank}"
        sent = {name: kwargs[name] for name in RUN_METADATA if name in kwargs}
        if rank in primaries:
            assert sent == {
                "name": "exp-1",
                "notes": "why",
                "job_type": "train",
                "tags": ["a"],
                "group": "g",
                "config": {"lr": 0.1},
            }, f"rank {rank}"
        else:
            assert sent == {}, f"rank {rank} would overwrite the primary's {sorted(sent)}"
        if mode == "online":
            assert settings.mode == "shared" and "mode" not in kwargs


def test_the_default_job_type_of_a_shared_run_is_the_primarys_main() -> None:
    bare = resolve(WandbConfig(), WandbConfig(mode="online"), {})
    for rank in range(2):
        p = plan(_rank(rank, 2, 2), "shared", "global", "R-a0")
        kwargs = build_init_kwargs(p, bare, None, {})
        assert kwargs.get("job_type") == ("main" if rank == 0 else None), f"rank {rank}"


def test_new_mode_runs_keep_their_own_metadata_and_roles() -> None:
    bare = resolve(WandbConfig(), WandbConfig(), {})
    roles = [
        build_init_kwargs(plan(_rank(r, 2, 2), "new", "global", "R-a0"), bare, None, {})["job_type"] for r in (0, 1)
    ]
    assert roles == ["main", "worker"]
    assert _kwargs(_rank(1, 2, 2), "new")["tags"] == ["a"]


def test_every_setting_set_per_process_is_listed_for_the_users_settings_check() -> None:
    seen: set[str] = set()
    trial = WandbConfig(trial_run_id="abc", trial_sweep_id="sw")
    for run_mode in ("auto", "shared", "new"):
        for rank in range(4):
            p = plan(_rank(rank, 4, 2), run_mode, "worker", "R-a0")
            if p.run_id is None:
                continue
            kwargs = build_init_kwargs(p, resolve(WandbConfig(), trial, {}), None, {})
            seen |= set(kwargs["settings"].model_fields_set)
    assert seen == {"mode", "x_label", "x_primary", "x_update_finish_state", "sweep_id"}
    assert seen <= PER_PROCESS_SETTINGS


@pytest.mark.parametrize("field", sorted(PER_PROCESS_SETTINGS - {"run_id", "run_group"}) + ["run_id", "run_group"])
def test_a_users_settings_that_set_a_per_process_field_are_refused(field: str) -> None:
    values: dict[str, Any] = {
        "mode": "offline",
        "run_id": "x",
        "run_group": "g",
        "resume": "allow",
        "x_label": "l",
        "x_primary": True,
        "x_update_finish_state": True,
        "sweep_id": "s",
        "x_stats_gpu_device_ids": [0],
    }
    with pytest.raises(ValueError, match=f"settings may not set {field}: the plugin sets them per process"):
        wandb_init(settings=wandb.Settings(**{field: values[field]}))


def test_a_start_timeout_that_contradicts_the_settings_init_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="start_timeout=5 and settings.init_timeout=30 disagree"):
        wandb_init(start_timeout=5, settings=wandb.Settings(init_timeout=30))
    wandb_init(start_timeout=30, settings=wandb.Settings(init_timeout=30))


@pytest.mark.parametrize(
    ("options", "environ", "bound"),
    [
        pytest.param(InitOptions(), {}, (DEFAULT_START_TIMEOUT, True), id="nothing-given"),
        pytest.param(InitOptions(), {"WANDB_INIT_TIMEOUT": "10"}, (10.0, False), id="environment"),
        pytest.param(InitOptions(start_timeout=7), {"WANDB_INIT_TIMEOUT": "10"}, (7.0, True), id="decorator-wins"),
        pytest.param(
            InitOptions(settings=wandb.Settings(init_timeout=12)),
            {"WANDB_INIT_TIMEOUT": "10"},
            (12.0, False),
            id="settings-beat-environment",
        ),
        pytest.param(InitOptions(), {"WANDB_INIT_TIMEOUT": " "}, (DEFAULT_START_TIMEOUT, True), id="blank-env"),
    ],
)
def test_the_start_bound_is_the_decorators_else_the_users_wandb_setting(
    options: InitOptions, environ: dict[str, str], bound: tuple[float, bool]
) -> None:
    assert start_bound(options, environ) == bound


@pytest.mark.parametrize("raw", ["soon", "0", "-3", "inf"])
def test_a_bad_wandb_init_timeout_names_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match=f"WANDB_INIT_TIMEOUT must be a positive number of seconds, got '{raw}'"):
        start_bound(InitOptions(), {"WANDB_INIT_TIMEOUT": raw})


def test_wandb_init_gets_no_init_timeout_of_the_plugins_when_the_user_set_one() -> None:
    p = plan(None, "auto", "global", "R-a0")
    kwargs = build_init_kwargs(p, resolve(WandbConfig(), WandbConfig(), {}), None, {}, init_timeout=None)
    assert "settings" not in kwargs
    kwargs = build_init_kwargs(p, resolve(WandbConfig(), WandbConfig(), {}), None, {}, init_timeout=9.0)
    assert kwargs["settings"].init_timeout == 9.0


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A W&B server that accepts connections and never answers (a hung load balancer, say)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


env = flyte.TaskEnvironment(name="init-settings")


@wandb_init(project="p")
@env.task
def no_start_timeout(x: int) -> tuple[int, bool]:
    return x, get_wandb_run() is None


def test_the_users_wandb_init_timeout_bounds_a_hanging_server(silent_server: str, wandb_env: Path) -> None:
    # Online against a server that never answers: with the plugin's own 120 s per try the pod would outlive the
    # 100 s hang guard; WANDB_INIT_TIMEOUT=2 makes wandb give up after 2 s per try, and the task trains on.
    result = run_as_pod(
        no_start_timeout,
        run_name="R",
        action_name="a1",
        env={
            "WANDB_MODE": "online",
            "WANDB_BASE_URL": silent_server,
            "WANDB_API_KEY": "x" * 40,
            "WANDB_INIT_TIMEOUT": "2",
        },
        timeout=100,
        x=5,
    )
    assert result == ("ok", (5, True))


def test_field_roles_decide_what_reaches_wandb_init_and_the_children() -> None:
    assert INIT_FIELDS == ("project", "entity", "name", "notes", "job_type", "dir", "tags")
    assert set(NOT_INHERITED) == {
        "id", "name", "notes", "group", "job_type", "run_mode", "rank_scope",
        "parent_run_id", "parent_group", "trial_run_id", "trial_sweep_id",
    }  # fmt: skip
    assert "parent_run_id" not in USER_FIELDS and "project" in USER_FIELDS


def test_an_empty_value_unsets_the_plugins_own_fields_but_not_the_users() -> None:
    context = {**WandbConfig(project="", parent_run_id="r-a0").to_context(), **cleared("parent_run_id")}
    assert decode_config(context) == WandbConfig(project="")
    with pytest.raises(ValueError, match="only the plugin's own fields can be cleared"):
        cleared("project")
    with pytest.raises(ValueError, match="parent_run_id must be a non-empty str or None"):
        WandbConfig(parent_run_id="")
