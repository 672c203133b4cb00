"""@wandb_init as a decorator: forms, kinds and signatures, Flyte task objects and their links, early errors."""

from __future__ import annotations

import inspect
import itertools
import logging
from dataclasses import dataclass
from typing import Any

import flyte
import pytest
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import Wandb, get_wandb_run, wandb_init

_names = itertools.count()


def fresh_env(**kwargs: Any) -> flyte.TaskEnvironment:
    return flyte.TaskEnvironment(name=f"test_decorator_{next(_names)}", **kwargs)


def add(x: int, y: int = 2, *, scale: float = 1.0) -> float:
    return (x + y) * scale


async def add_async(x: int, y: int = 2, *, scale: float = 1.0) -> float:
    return (x + y) * scale


def wandb_links(task: Any) -> list[Wandb]:
    return [link for link in task.links if isinstance(link, Wandb)]


def render(link: Any, action_name: str = "a3") -> str:
    url: str = link.get_link(
        run_name="r7x",
        project="p",
        domain="d",
        context={},
        parent_action_name="a0",
        action_name=action_name,
        pod_name="pod",
    )
    return url


@dataclass
class DashboardLink:
    name: str = "dashboard"
    icon_uri: str | None = ""

    def get_link(
        self,
        run_name: str,
        project: str,
        domain: str,
        context: dict[str, str],
        parent_action_name: str,
        action_name: str,
        pod_name: str,
        **kwargs: Any,
    ) -> str:
        return "https://dashboard.example"


# --- forms, kinds, signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["bare", "called"])
def test_a_decorated_sync_function_keeps_its_kind_and_signature(form: str) -> None:
    wrapped = wandb_init(add) if form == "bare" else wandb_init(project="p")(add)
    assert not inspect.iscoroutinefunction(wrapped)
    assert inspect.signature(wrapped) == inspect.signature(add)
    assert (wrapped.__name__, wrapped.__doc__) == (add.__name__, add.__doc__)


@pytest.mark.parametrize("form", ["bare", "called"])
def test_a_decorated_async_function_stays_a_coroutine_function_with_its_signature(form: str) -> None:
    wrapped = wandb_init(add_async) if form == "bare" else wandb_init(project="p")(add_async)
    assert inspect.iscoroutinefunction(wrapped)
    assert inspect.signature(wrapped) == inspect.signature(add_async)


def test_a_decorated_function_called_outside_a_flyte_task_runs_without_a_run(caplog: pytest.LogCaptureFixture) -> None:
    @wandb_init
    def body(x: int) -> object:
        return (x, get_wandb_run())

    with caplog.at_level(logging.WARNING, logger="flyteplugins_wandb"):
        assert body(3) == (3, None)
    assert "not inside a Flyte task" in caplog.text


# --- Flyte task objects ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["bare", "called"])
def test_decorating_a_task_returns_the_same_object_that_the_environment_holds(form: str) -> None:
    env = fresh_env()
    task = env.task(add)
    decorated = wandb_init(task) if form == "bare" else wandb_init(project="p")(task)
    assert decorated is task
    assert list(env.tasks.values()) == [task] and next(iter(env.tasks.values())) is task


def test_decorating_a_task_wraps_its_function_keeping_the_signature() -> None:
    task = wandb_init(fresh_env().task(add))
    assert task.func is not add and inspect.unwrap(task.func) is add
    assert inspect.signature(task.func) == inspect.signature(add)
    assert not inspect.iscoroutinefunction(task.func)


def test_decorating_an_async_task_wraps_its_function_with_a_coroutine_function() -> None:
    task = wandb_init(fresh_env().task(add_async))
    assert inspect.unwrap(task.func) is add_async and inspect.iscoroutinefunction(task.func)


def test_a_plain_task_gets_one_wandb_link() -> None:
    task = wandb_init(fresh_env().task(add))
    assert len(task.links) == 1 and isinstance(task.links[0], Wandb)


def test_the_tasks_own_links_are_kept_first() -> None:
    mine: flyte.Link = DashboardLink()
    task = wandb_init(fresh_env().task(links=(mine,))(add))
    assert task.links[0] is mine and len(wandb_links(task)) == 1 and len(task.links) == 2


@pytest.mark.parametrize(
    ("options", "nnodes", "count"),
    [
        pytest.param({"rank_scope": "global"}, 2, 1, id="two-nodes-global-one-link"),
        pytest.param({"rank_scope": "worker"}, 2, 2, id="two-nodes-worker-link-per-worker"),
        pytest.param({"run_mode": "new", "rank_scope": "worker"}, 3, 3, id="three-nodes-new-worker-link-per-worker"),
        # The link count is fixed at definition time; a scope left to the run context moves the one link.
        pytest.param({}, 2, 1, id="two-nodes-scope-left-to-the-context-one-link"),
        pytest.param({"run_mode": "new"}, 3, 1, id="three-nodes-new-global-one-group-link"),
        pytest.param({}, 1, 1, id="one-node-one-link"),
        pytest.param({"rank_scope": "worker"}, 1, 1, id="one-node-worker-scope-has-no-effect"),
        pytest.param({"rank_scope": "worker"}, "1:3", 3, id="elastic-range-uses-the-maximum"),
    ],
)
def test_an_elastic_task_gets_one_link_per_page_its_layout_may_create(
    options: dict[str, Any], nnodes: int | str, count: int
) -> None:
    env = fresh_env(plugin_config=Elastic(nproc_per_node=2, nnodes=nnodes))
    task = wandb_init(**options)(env.task(add))
    assert len(wandb_links(task)) == count == len(task.links)


def test_per_worker_links_open_each_workers_run() -> None:
    env = fresh_env(plugin_config=Elastic(nproc_per_node=2, nnodes=2))
    task = wandb_init(entity="team", project="proj", rank_scope="worker")(env.task(add))
    assert [render(link) for link in task.links] == [
        "https://wandb.ai/team/proj/runs/r7x-a3-worker-0",
        "https://wandb.ai/team/proj/runs/r7x-a3-worker-1",
    ]
    assert len({link.name for link in task.links}) == 2


def test_the_link_of_a_plain_task_opens_its_run() -> None:
    task = wandb_init(entity="team", project="proj")(fresh_env().task(add))
    assert render(task.links[0]) == "https://wandb.ai/team/proj/runs/r7x-a3"


# --- decorating twice -----------------------------------------------------------------------------------------


def test_decorating_a_task_twice_is_an_error() -> None:
    task = wandb_init(fresh_env().task(add))
    with pytest.raises(TypeError, match="already decorated with @wandb_init"):
        wandb_init(project="again")(task)


def test_a_failed_second_decoration_leaves_the_task_unchanged() -> None:
    task = wandb_init(fresh_env().task(add))
    func, links = task.func, task.links
    with pytest.raises(TypeError):
        wandb_init(task)
    assert (task.func, task.links) == (func, links)


def test_decorating_a_function_twice_is_an_error() -> None:
    with pytest.raises(TypeError, match="already decorated with @wandb_init"):
        wandb_init(wandb_init(add))


def test_decorating_a_task_made_from_a_decorated_function_is_an_error() -> None:
    task = fresh_env().task(wandb_init(add))
    with pytest.raises(TypeError, match="already decorated with @wandb_init"):
        wandb_init(task)


# --- errors at decoration time --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
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
        pytest.param({"colour": "red"}, TypeError, "unexpected keyword 'colour'", id="unknown-keyword"),
        pytest.param({"reinit": True}, TypeError, "does not take 'reinit'", id="reinit"),
        pytest.param(
            {"start_timeout": 0},
            ValueError,
            "start_timeout must be a positive number of seconds, got 0",
            id="zero-start-timeout",
        ),
        pytest.param(
            {"finish_timeout": -1.5},
            ValueError,
            "finish_timeout must be a positive number of seconds, got -1.5",
            id="negative-finish-timeout",
        ),
        pytest.param(
            {"start_timeout": "10"}, ValueError, "start_timeout must be a positive number", id="string-timeout"
        ),
        pytest.param({"start_timeout": True}, ValueError, "start_timeout must be a positive number", id="bool-timeout"),
        pytest.param(
            {"finish_timeout": float("inf")},
            ValueError,
            "finish_timeout must be a positive number of seconds, got inf",
            id="infinite-timeout",
        ),
        pytest.param(
            {"mode": "shared"},
            ValueError,
            "mode must be one of ('online', 'offline', 'disabled'), got 'shared'",
            id="bad-wandb-mode",
        ),
        pytest.param({"project": 7}, TypeError, "project must be a str, got int 7", id="int-project"),
        pytest.param({"tags": "a,b"}, TypeError, "tags must be a sequence of str", id="str-tags"),
    ],
)
def test_a_bad_option_fails_when_the_decorator_is_written(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as err:
        wandb_init(**kwargs)
    assert message in str(err.value)


def test_the_unknown_keyword_error_lists_the_wandb_init_keywords() -> None:
    with pytest.raises(TypeError, match="'job_type'"):
        wandb_init(colour="red")


@pytest.mark.parametrize("target", [42, "train", None], ids=["int", "str", "none"])
def test_decorating_something_that_is_not_callable_is_a_type_error(target: object) -> None:
    with pytest.raises(TypeError, match="decorates a Flyte task or a function"):
        wandb_init(project="p")(target)  # type: ignore[type-var]


def test_the_bare_form_on_something_that_is_not_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="decorates a Flyte task or a function"):
        wandb_init(42)  # type: ignore[call-overload]
