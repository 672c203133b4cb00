"""The Wandb flyte.Link, rendered as Flyte renders it: from strings and the launching run context only."""

from __future__ import annotations

import inspect
from pathlib import Path

import flyte
import pytest

from flyteplugins_wandb import Wandb, WandbConfig, wandb_config

ACTION = "{{.actionName}}"
TEAM = WandbConfig(entity="team", project="proj")


def render(link: Wandb, context: dict[str, str] | None = None, run_name: str = "r7x", action_name: str = ACTION) -> str:
    """get_link called with Flyte's keywords, as on submission (the action name is still a template)."""
    return link.get_link(
        run_name=run_name,
        project="flyteproject",
        domain="development",
        context=context or {},
        parent_action_name="a0",
        action_name=action_name,
        pod_name="{{.podName}}",
    )


def test_wandb_has_the_members_of_the_flyte_link_protocol() -> None:
    link = Wandb()
    assert isinstance(link.name, str) and link.name
    assert isinstance(link.icon_uri, str) and link.icon_uri.startswith("https://")
    protocol = set(inspect.signature(flyte.Link.get_link).parameters)
    assert set(inspect.signature(Wandb.get_link).parameters) == protocol


@pytest.mark.parametrize(
    ("run_mode", "rank_scope", "num_workers", "page"),
    [
        pytest.param("auto", "global", None, f"runs/r7x-{ACTION}", id="plain-auto"),
        pytest.param("new", "global", None, f"runs/r7x-{ACTION}", id="plain-new-its-one-run"),
        pytest.param("auto", "worker", 1, f"runs/r7x-{ACTION}", id="one-node-auto"),
        pytest.param("new", "worker", 1, f"groups/r7x-{ACTION}", id="one-node-new-group"),
        pytest.param("auto", "global", 2, f"runs/r7x-{ACTION}", id="two-nodes-auto-global"),
        pytest.param("shared", "global", 2, f"runs/r7x-{ACTION}", id="two-nodes-shared-global"),
        pytest.param("new", "global", 2, f"groups/r7x-{ACTION}", id="two-nodes-new-global-group"),
    ],
)
def test_a_single_link_opens_the_one_run_or_group_of_its_layout(
    run_mode: str, rank_scope: str, num_workers: int | None, page: str
) -> None:
    config = WandbConfig(entity="team", project="proj", run_mode=run_mode, rank_scope=rank_scope)
    assert render(Wandb(config, num_workers=num_workers)) == f"https://wandb.ai/team/proj/{page}"


@pytest.mark.parametrize(
    ("run_mode", "pages"),
    [
        pytest.param("auto", [f"runs/r7x-{ACTION}-worker-0", f"runs/r7x-{ACTION}-worker-1"], id="auto"),
        pytest.param("shared", [f"runs/r7x-{ACTION}-worker-0", f"runs/r7x-{ACTION}-worker-1"], id="shared"),
        pytest.param("new", [f"groups/r7x-{ACTION}-worker-0", f"groups/r7x-{ACTION}-worker-1"], id="new"),
    ],
)
@pytest.mark.parametrize("source", ["decorator", "context"])
def test_worker_scope_gives_each_worker_link_its_own_page(run_mode: str, pages: list[str], source: str) -> None:
    config = WandbConfig(entity="team", project="proj", run_mode=run_mode, rank_scope="worker")
    if source == "decorator":
        links = [Wandb(config, num_workers=2, worker_index=i) for i in range(2)]
        context: dict[str, str] = {}
    else:
        links = [Wandb(num_workers=2, worker_index=i) for i in range(2)]
        context = config.to_context()
    assert [render(link, context) for link in links] == [f"https://wandb.ai/team/proj/{p}" for p in pages]


@pytest.mark.parametrize(
    ("run_mode", "page"), [("auto", "runs"), ("shared", "runs"), ("new", "groups")], ids=["auto", "shared", "new"]
)
def test_under_global_scope_every_worker_link_opens_the_same_page(run_mode: str, page: str) -> None:
    # The decorator attaches per-worker links when the scope is left to the context; the context may say global.
    context = wandb_config(entity="team", project="proj", run_mode=run_mode, rank_scope="global")
    urls = {render(Wandb(num_workers=3, worker_index=i), context) for i in range(3)}
    assert urls == {f"https://wandb.ai/team/proj/{page}/r7x-{ACTION}"}


def test_a_worker_scope_from_the_launching_context_moves_the_single_link_to_worker_0() -> None:
    context = wandb_config(entity="team", project="proj", rank_scope="worker")
    assert render(Wandb(num_workers=2), context) == f"https://wandb.ai/team/proj/runs/r7x-{ACTION}-worker-0"


def test_the_layout_in_the_launching_context_is_followed_when_the_decorator_gives_none() -> None:
    context = wandb_config(entity="team", project="proj", run_mode="new")
    assert render(Wandb(num_workers=2), context) == f"https://wandb.ai/team/proj/groups/r7x-{ACTION}"


def test_the_decorator_layout_beats_the_launching_context() -> None:
    link = Wandb(WandbConfig(entity="team", project="proj", run_mode="auto"), num_workers=2)
    context = wandb_config(run_mode="new", entity="other", project="elsewhere")
    assert render(link, context) == f"https://wandb.ai/team/proj/runs/r7x-{ACTION}"


def test_project_and_entity_can_come_from_the_launching_context() -> None:
    assert (
        render(Wandb(), wandb_config(entity="team", project="proj")) == f"https://wandb.ai/team/proj/runs/r7x-{ACTION}"
    )


def test_the_action_name_template_survives_rendering() -> None:
    assert render(Wandb(TEAM)).endswith("/r7x-{{.actionName}}")


def test_deploy_time_templates_for_run_and_action_survive_rendering() -> None:
    url = render(Wandb(TEAM), run_name="{{.runName}}", action_name="{{.actionName}}")
    assert url == "https://wandb.ai/team/proj/runs/{{.runName}}-{{.actionName}}"


def test_a_concrete_action_name_gives_the_concrete_run_id() -> None:
    assert render(Wandb(TEAM), run_name="r7x", action_name="a3") == "https://wandb.ai/team/proj/runs/r7x-a3"


def test_a_user_group_names_the_group_page_in_new_mode() -> None:
    context = wandb_config(entity="team", project="proj", run_mode="new", group="exp")
    assert render(Wandb(num_workers=2), context) == "https://wandb.ai/team/proj/groups/exp"


def test_a_user_group_is_the_stem_of_worker_group_pages_in_new_mode() -> None:
    context = wandb_config(entity="team", project="proj", run_mode="new", rank_scope="worker", group="exp")
    assert render(Wandb(num_workers=2, worker_index=1), context) == "https://wandb.ai/team/proj/groups/exp-worker-1"


def test_the_host_comes_from_wandb_config() -> None:
    context = wandb_config(host="https://wandb.example.com/", entity="team", project="proj")
    assert render(Wandb(), context) == f"https://wandb.example.com/team/proj/runs/r7x-{ACTION}"


def test_the_host_on_the_link_beats_the_launching_context() -> None:
    link = Wandb(WandbConfig(host="https://mine.example", entity="team", project="proj"))
    assert render(link, wandb_config(host="https://theirs.example")).startswith("https://mine.example/team/")


@pytest.mark.parametrize(
    ("config", "context"),
    [
        (WandbConfig(), {}),
        (WandbConfig(project="proj"), {}),
        (WandbConfig(), wandb_config(project="proj", run_mode="new")),
    ],
    ids=["nothing", "project-only", "context-without-entity"],
)
def test_without_an_entity_the_link_opens_the_home_page(config: WandbConfig, context: dict[str, str]) -> None:
    assert render(Wandb(config), context) == "https://wandb.ai/home"


def test_without_an_entity_the_home_page_is_on_the_configured_host() -> None:
    assert render(Wandb(), wandb_config(host="https://wandb.example.com/")) == "https://wandb.example.com/home"


def test_names_that_need_it_are_url_quoted() -> None:
    url = render(Wandb(WandbConfig(entity="my team", project="p&q")), run_name="r 1", action_name="a3")
    assert url == "https://wandb.ai/my%20team/p%26q/runs/r%201-a3"


def test_unknown_wandb_keys_in_the_launching_context_do_not_break_the_link() -> None:
    context = {**wandb_config(entity="team", project="proj"), "wandb_added_later": "{"}
    assert render(Wandb(), context) == f"https://wandb.ai/team/proj/runs/r7x-{ACTION}"


def test_without_a_configured_entity_the_link_takes_the_launching_process_wandb_entity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_ENTITY", "envteam")
    assert render(Wandb(WandbConfig(project="proj"))) == f"https://wandb.ai/envteam/proj/runs/r7x-{ACTION}"
    assert render(Wandb(TEAM)).startswith("https://wandb.ai/team/"), "a configured entity still wins"


def test_the_entity_in_wandbs_settings_file_is_the_last_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))
    (tmp_path / "settings").write_text("[default]\nentity = fileteam\n")
    assert render(Wandb(WandbConfig(project="proj"))) == f"https://wandb.ai/fileteam/proj/runs/r7x-{ACTION}"


@pytest.mark.parametrize(
    ("base_url", "host"),
    [
        pytest.param("https://wandb.example.com/", "https://wandb.example.com", id="private-server"),
        pytest.param("https://api.wandb.ai", "https://wandb.ai", id="public-api"),
    ],
)
def test_run_and_sweep_links_take_the_host_from_the_same_rule(
    monkeypatch: pytest.MonkeyPatch, base_url: str, host: str
) -> None:
    from flyteplugins_wandb import WandbSweep

    monkeypatch.setenv("WANDB_BASE_URL", base_url)
    context = wandb_config(entity="team", project="proj")
    assert render(Wandb(), context).startswith(f"{host}/team/proj/runs/")
    assert render(WandbSweep(), context).startswith(f"{host}/team/proj/sweeps")
    configured = wandb_config(host="https://mine.example", entity="team", project="proj")
    assert render(Wandb(), configured).startswith("https://mine.example/team/")
    assert render(WandbSweep(), configured).startswith("https://mine.example/team/")
