"""wandb_config / WandbConfig: validation, and the exact codec to and from Flyte's str -> str run context."""

from __future__ import annotations

import json
from typing import Any

import flyte
import pytest

from flyteplugins_wandb import WandbConfig, WandbContext, wandb_config
from flyteplugins_wandb.planning._config import decode_config

ROUND_TRIP = [
    pytest.param(WandbConfig(), id="empty"),
    pytest.param(WandbConfig(project="2024", entity="true", name="null", notes="[1]", group="{}"), id="json-looking"),
    pytest.param(WandbConfig(job_type="1.5", host="https://wandb.example.com", dir="/tmp/x"), id="plain-strings"),
    pytest.param(WandbConfig(project="", entity=""), id="empty-strings"),
    pytest.param(WandbConfig(mode="offline", run_mode="new", rank_scope="worker"), id="choices"),
    pytest.param(WandbConfig(tags=("2024", "true", "null", "[1]", "a b")), id="json-looking-tags"),
    pytest.param(WandbConfig(tags=()), id="no-tags"),
    pytest.param(
        WandbConfig(
            config={
                "year": "2024",
                "flag": "true",
                "nothing": "null",
                "listy": "[1]",
                "lr": 0.001,
                "epochs": 3,
                "on": True,
                "none": None,
                "nested": {"layers": [64, {"act": "relu"}], "dropout": {"p": 0.1}},
            }
        ),
        id="nested-config",
    ),
    pytest.param(WandbConfig(config={}), id="empty-config"),
    pytest.param(
        WandbConfig(init_kwargs={"resume": "must", "save_code": False, "config_exclude_keys": ["x"]}), id="kw"
    ),
    pytest.param(WandbConfig(project="p", parent_run_id="r-a0", parent_group="g"), id="parent"),
    pytest.param(WandbConfig(report=True), id="report-on"),
    pytest.param(WandbConfig(report=False), id="report-off"),
]


@pytest.mark.parametrize("config", ROUND_TRIP)
def test_decoding_the_encoded_context_gives_back_the_same_config(config: WandbConfig) -> None:
    assert decode_config(config.to_context()) == config


@pytest.mark.parametrize("config", ROUND_TRIP)
def test_the_encoded_context_is_a_str_to_str_mapping_with_prefixed_keys(config: WandbConfig) -> None:
    encoded = config.to_context()
    prefixes = ("wandb_", "_wandb_")  # the fields both W&B plugins have, and those only this one has
    assert all(isinstance(k, str) and k.startswith(prefixes) and isinstance(v, str) for k, v in encoded.items())


def test_string_values_travel_as_they_are_not_as_json() -> None:
    assert WandbConfig(project="2024", name="true").to_context() == {"wandb_project": "2024", "wandb_name": "true"}


def test_unset_fields_are_left_out_of_the_context() -> None:
    assert WandbConfig(project="p").to_context() == {"wandb_project": "p"}


def test_wandb_config_returns_a_context_of_its_config() -> None:
    ctx = wandb_config(project="2024", tags=["a"], config={"year": "2024"}, resume="allow")
    assert ctx.settings == WandbConfig(
        project="2024", tags=("a",), config={"year": "2024"}, init_kwargs={"resume": "allow"}
    )
    assert decode_config(ctx) == ctx.settings


def test_unknown_wandb_keys_and_unprefixed_keys_are_ignored() -> None:
    context = {"wandb_project": "p", "wandb_from_the_future": "{not json", "project": "other", "team": "x"}
    assert decode_config(context) == WandbConfig(project="p")


def test_no_context_decodes_to_an_empty_config() -> None:
    assert decode_config(None) == WandbConfig()


@pytest.mark.parametrize("key", ["wandb_tags", "wandb_config", "wandb_kwargs"])
def test_malformed_json_in_a_structured_key_is_a_value_error_naming_the_key(key: str) -> None:
    with pytest.raises(ValueError, match=f"run-context key {key!r} must hold JSON, got '\\[oops'"):
        decode_config({key: "[oops"})


@pytest.mark.parametrize(
    ("context", "message"),
    [
        pytest.param({"wandb_tags": '"a"'}, "tags must be a sequence of str", id="tags-a-json-string"),
        pytest.param({"wandb_tags": "[1, 2]"}, "tags must be a sequence of str", id="tags-not-strings"),
        pytest.param({"wandb_config": "[1]"}, "config must be a mapping", id="config-a-list"),
        pytest.param({"wandb_run_mode": "shard"}, "run_mode must be one of", id="bad-run-mode"),
        pytest.param({"_wandb_report": '"yes"'}, "report must be a bool, got str 'yes'", id="report-not-a-bool"),
        pytest.param({"wandb_kwargs": '{"nope": 1}'}, "'nope' is not a wandb.init keyword", id="unknown-init-kwarg"),
    ],
)
def test_a_wrongly_typed_context_value_is_a_value_error_saying_what_is_wrong(
    context: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match="invalid W&B settings in the run context") as err:
        decode_config(context)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param({"project": 1}, TypeError, "project must be a str, got int 1", id="int-project"),
        pytest.param({"entity": b"e"}, TypeError, "entity must be a str", id="bytes-entity"),
        pytest.param({"tags": "ab"}, TypeError, "tags must be a sequence of str, got 'ab'", id="str-tags"),
        pytest.param({"tags": ["a", 1]}, TypeError, "tags must be a sequence of str", id="non-str-tag"),
        pytest.param({"config": [("a", 1)]}, TypeError, "config must be a mapping with str keys", id="config-list"),
        pytest.param({"config": {1: "a"}}, TypeError, "config must be a mapping with str keys", id="int-config-key"),
        pytest.param({"config": {"f": object()}}, TypeError, "config must be JSON-serializable", id="object-value"),
        pytest.param({"config": {"x": float("nan")}}, TypeError, "config must be JSON-serializable", id="nan"),
        pytest.param(
            {"run_mode": "shard"},
            ValueError,
            "run_mode must be one of ('auto', 'new', 'shared'), got 'shard'",
            id="bad-run-mode",
        ),
        pytest.param(
            {"rank_scope": "node"},
            ValueError,
            "rank_scope must be one of ('global', 'worker'), got 'node'",
            id="bad-rank-scope",
        ),
        pytest.param(
            {"mode": "shared"},
            ValueError,
            "mode must be one of ('online', 'offline', 'disabled'), got 'shared'",
            id="bad-wandb-mode",
        ),
        pytest.param({"report": "yes"}, TypeError, "report must be a bool, got str 'yes'", id="str-report"),
        pytest.param({"reinit": True}, ValueError, "'reinit' cannot be set through wandb_config", id="reserved-reinit"),
        pytest.param({"settings": {}}, ValueError, "'settings' cannot be set through wandb_config", id="settings"),
        pytest.param({"colour": "red"}, ValueError, "'colour' is not a wandb.init keyword", id="not-an-init-keyword"),
        pytest.param({"resume_from": object()}, TypeError, "init_kwargs must be JSON-serializable", id="non-json-kw"),
    ],
)
def test_wandb_config_rejects_a_bad_argument_with_a_clear_error(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as err:
        wandb_config(**kwargs)
    assert message in str(err.value)


def test_a_named_field_cannot_be_smuggled_in_through_init_kwargs() -> None:
    with pytest.raises(ValueError, match=r"give 'project' as wandb_config\(project=...\)"):
        WandbConfig(init_kwargs={"project": "p"})


def test_a_sequence_of_tags_is_kept_as_a_tuple() -> None:
    assert wandb_config(tags=["b", "a"]).settings.tags == ("b", "a")


def test_the_config_does_not_keep_a_reference_to_the_users_mapping() -> None:
    user = {"lr": 0.1}
    config = WandbConfig(config=user)
    user["lr"] = 0.2
    assert config.config == {"lr": 0.1}


def test_merged_over_takes_unset_fields_from_the_base() -> None:
    top = WandbConfig(project="top")
    assert top.merged_over(WandbConfig(project="base", entity="team")) == WandbConfig(project="top", entity="team")


def test_merged_over_keeps_empty_strings_as_real_values() -> None:
    assert WandbConfig(project="").merged_over(WandbConfig(project="base")).project == ""


def test_merged_over_merges_config_key_by_key_with_the_top_winning() -> None:
    top = WandbConfig(config={"lr": 0.1, "nested": {"a": 1}})
    base = WandbConfig(config={"lr": 0.5, "epochs": 3, "nested": {"b": 2}})
    # One level deep: a nested mapping is a value, replaced whole.
    assert top.merged_over(base).config == {"lr": 0.1, "epochs": 3, "nested": {"a": 1}}


def test_merged_over_merges_init_kwargs_key_by_key_with_the_top_winning() -> None:
    top = WandbConfig(init_kwargs={"resume": "must"})
    base = WandbConfig(init_kwargs={"resume": "allow", "save_code": True})
    assert top.merged_over(base).init_kwargs == {"resume": "must", "save_code": True}


def test_merged_over_replaces_tags_whole() -> None:
    assert WandbConfig(tags=("a",)).merged_over(WandbConfig(tags=("b", "c"))).tags == ("a",)


def test_merged_over_leaves_both_configs_unchanged() -> None:
    top, base = WandbConfig(config={"a": 1}), WandbConfig(config={"b": 2})
    top.merged_over(base)
    assert (top.config, base.config) == ({"a": 1}, {"b": 2})


def test_a_wandb_context_is_a_dict_of_str_to_str() -> None:
    ctx = wandb_config(project="p", tags=["t"], config={"n": 1})
    assert isinstance(ctx, WandbContext) and isinstance(ctx, dict)
    assert dict(ctx) == {"wandb_project": "p", "wandb_tags": '["t"]', "wandb_config": json.dumps({"n": 1})}


def test_two_contexts_combine_with_dict_unpacking_the_right_one_winning_per_key() -> None:
    combined = {**wandb_config(project="a", entity="team"), **wandb_config(project="b"), "other": "x"}
    assert decode_config(combined) == WandbConfig(project="b", entity="team")


env = flyte.TaskEnvironment(name="test_config_env")


@env.task
def echo_context() -> dict[str, str]:
    return dict(flyte.ctx().custom_context)


def test_a_wandb_context_is_accepted_by_with_runcontext_and_reaches_the_task() -> None:
    flyte.init()
    ctx = {**wandb_config(project="2024", config={"year": "2024"}), "team": "x"}
    seen = flyte.with_runcontext(custom_context=ctx).run(echo_context).outputs()[0]
    assert decode_config(seen) == WandbConfig(project="2024", config={"year": "2024"})
