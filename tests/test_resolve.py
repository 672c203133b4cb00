"""Precedence: @wandb_init arguments > run context (wandb_config) > WANDB_* environment > defaults."""

from __future__ import annotations

import dataclasses

import pytest

from flyteplugins_wandb import WandbConfig
from flyteplugins_wandb.planning._resolve import Layout, resolve, resolve_layout
from flyteplugins_wandb.task._web import web_host

NONE = WandbConfig()


def test_with_nothing_given_the_defaults_apply() -> None:
    r = resolve(NONE, NONE, {})
    assert (r.wandb_mode, r.layout.group, r.disabled_by_env) == ("online", None, False)
    assert r.layout == Layout("auto", "global", project=None, entity=None, host=None, group=None)


def test_the_decorator_beats_the_run_context_field_by_field() -> None:
    decorator = WandbConfig(project="dec", run_mode="new")
    context = WandbConfig(project="ctx", entity="team", run_mode="shared", rank_scope="worker")
    r = resolve(decorator, context, {})
    assert (r.config.project, r.config.entity) == ("dec", "team")
    assert (r.layout.run_mode, r.layout.rank_scope) == ("new", "worker")


def test_the_run_context_beats_the_defaults() -> None:
    layout = resolve_layout(NONE, WandbConfig(run_mode="shared", rank_scope="worker", project="p", entity="e"))
    assert layout == Layout(
        "shared", "worker", project="p", entity="e", host=None, group=None, run_mode_source="context"
    )


def test_the_layout_says_where_its_run_mode_came_from() -> None:
    assert resolve_layout(WandbConfig(run_mode="new"), WandbConfig(run_mode="shared")).run_mode_source == "decorator"
    assert resolve_layout(NONE, WandbConfig(run_mode="shared")).run_mode_source == "context"
    assert resolve_layout(NONE, NONE).run_mode_source == "default"


def test_a_link_sees_no_wandb_run_group() -> None:
    assert resolve_layout(NONE, NONE).group is None
    assert resolve_layout(NONE, NONE, {"WANDB_RUN_GROUP": "env-group"}).group == "env-group"


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("offline", "offline"),
        ("disabled", "disabled"),
        ("online", "online"),
        ("dryrun", "offline"),
        ("run", "online"),
        (" Offline ", "offline"),
        ("", "online"),
    ],
)
def test_wandb_mode_from_the_environment_applies_when_nothing_else_sets_the_mode(raw: str, mode: str) -> None:
    assert resolve(NONE, NONE, {"WANDB_MODE": raw}).wandb_mode == mode


def test_an_invalid_wandb_mode_is_rejected_naming_the_value_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"WANDB_MODE must be one of \('online', 'offline', 'disabled'\), got 'cloud'"):
        resolve(NONE, NONE, {"WANDB_MODE": "cloud"})


def test_the_run_context_mode_beats_wandb_mode() -> None:
    assert resolve(NONE, WandbConfig(mode="online"), {"WANDB_MODE": "offline"}).wandb_mode == "online"


def test_the_decorator_mode_beats_the_run_context_mode() -> None:
    assert resolve(WandbConfig(mode="offline"), WandbConfig(mode="disabled"), {}).wandb_mode == "offline"


def test_a_given_mode_makes_an_invalid_wandb_mode_irrelevant() -> None:
    assert resolve(WandbConfig(mode="offline"), NONE, {"WANDB_MODE": "cloud"}).wandb_mode == "offline"


@pytest.mark.parametrize("value", ["true", "1", "yes", "on", "TRUE", " True "])
def test_wandb_disabled_is_a_kill_switch_over_every_other_setting(value: str) -> None:
    r = resolve(WandbConfig(mode="online"), WandbConfig(mode="offline"), {"WANDB_DISABLED": value})
    assert (r.disabled_by_env, r.wandb_mode) == (True, "disabled")


@pytest.mark.parametrize("value", ["false", "0", "", "no"])
def test_a_false_wandb_disabled_changes_nothing(value: str) -> None:
    r = resolve(NONE, NONE, {"WANDB_DISABLED": value, "WANDB_MODE": "offline"})
    assert (r.disabled_by_env, r.wandb_mode) == (False, "offline")


def test_wandb_run_group_is_the_group_when_nothing_else_sets_one() -> None:
    assert resolve(NONE, NONE, {"WANDB_RUN_GROUP": "env-group"}).layout.group == "env-group"


def test_an_empty_wandb_run_group_is_no_group() -> None:
    assert resolve(NONE, NONE, {"WANDB_RUN_GROUP": ""}).layout.group is None


def test_the_run_context_group_beats_wandb_run_group() -> None:
    assert resolve(NONE, WandbConfig(group="ctx"), {"WANDB_RUN_GROUP": "env"}).layout.group == "ctx"


def test_the_decorator_group_beats_the_run_context_group() -> None:
    assert resolve(WandbConfig(group="dec"), WandbConfig(group="ctx"), {"WANDB_RUN_GROUP": "env"}).layout.group == "dec"


def test_the_host_defaults_to_wandb_ai() -> None:
    assert web_host(resolve_layout(NONE, NONE).host, {}) == "https://wandb.ai"


@pytest.mark.parametrize("host", ["https://wandb.example.com/", "https://wandb.example.com//"])
def test_trailing_slashes_are_stripped_from_the_host(host: str) -> None:
    assert web_host(resolve_layout(NONE, WandbConfig(host=host)).host, {}) == "https://wandb.example.com"


def test_the_decorator_host_beats_the_run_context_host() -> None:
    layout = resolve_layout(WandbConfig(host="https://dec.example"), WandbConfig(host="https://ctx.example"))
    assert layout.host == "https://dec.example"


def test_the_layout_ignores_the_environment_but_for_the_group_a_link_cannot_see() -> None:
    # A link sees no pod environment, so the layout must not depend on one, except WANDB_RUN_GROUP (W&B's own
    # convention, honoured in the process; the README says a link cannot know it).
    in_process = resolve(NONE, NONE, {"WANDB_RUN_GROUP": "env", "WANDB_MODE": "offline"}).layout
    assert dataclasses.replace(in_process, group=None) == resolve_layout(NONE, NONE)
    assert in_process.group == "env"
