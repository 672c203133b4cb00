"""Reading a process's place in a torchrun/Elastic job from the launcher's environment variables."""

from __future__ import annotations

import re

import pytest

from flyteplugins_wandb import DistributedInfo, TopologyError, get_distributed_info

TORCHRUN_ENV = {
    "RANK": "5",
    "WORLD_SIZE": "8",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "4",
    "GROUP_RANK": "1",
    "GROUP_WORLD_SIZE": "2",
    "TORCHELASTIC_RESTART_COUNT": "3",
    "MASTER_ADDR": "localhost",
    "MASTER_PORT": "29500",
}


def assert_names(err: pytest.ExceptionInfo[TopologyError], variable: str, value: str) -> None:
    message = str(err.value)
    assert variable in message, message
    assert re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", message), message


@pytest.mark.parametrize(
    "environ",
    [{}, {"PATH": "/usr/bin", "MASTER_ADDR": "localhost"}],
    ids=["empty", "unrelated-variables"],
)
def test_an_environment_without_rank_and_world_size_is_not_distributed(environ: dict[str, str]) -> None:
    assert DistributedInfo.from_env(environ) is None


def test_a_full_torchrun_environment_is_read_exactly() -> None:
    assert DistributedInfo.from_env(TORCHRUN_ENV) == DistributedInfo(
        rank=5, local_rank=1, world_size=8, local_world_size=4, worker_index=1, num_workers=2, restart_count=3
    )


def test_a_full_torchrun_environment_with_several_workers_is_multi_node() -> None:
    info = DistributedInfo.from_env(TORCHRUN_ENV)
    assert info is not None and info.is_multi_node


def test_without_node_variables_the_job_is_one_node_and_local_equals_global() -> None:
    assert DistributedInfo.from_env({"RANK": "2", "WORLD_SIZE": "4"}) == DistributedInfo(
        rank=2, local_rank=2, world_size=4, local_world_size=4, worker_index=0, num_workers=1, restart_count=0
    )


def test_a_one_node_job_is_not_multi_node() -> None:
    info = DistributedInfo.from_env({"RANK": "2", "WORLD_SIZE": "4"})
    assert info is not None and not info.is_multi_node


def test_without_group_world_size_the_worker_count_is_world_size_over_local_world_size() -> None:
    info = DistributedInfo.from_env(
        {"RANK": "7", "WORLD_SIZE": "12", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "1"}
    )
    assert info is not None and (info.num_workers, info.worker_index) == (3, 1)


def test_group_world_size_gives_the_worker_count_when_set() -> None:
    # Elastic jobs may have nodes with different process counts; GROUP_WORLD_SIZE is then the truth.
    info = DistributedInfo.from_env(
        {"RANK": "4", "WORLD_SIZE": "5", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "2"}
        | {"GROUP_WORLD_SIZE": "3"}
    )
    assert info is not None and (info.num_workers, info.worker_index) == (3, 2)


def test_the_restart_count_defaults_to_zero() -> None:
    info = DistributedInfo.from_env({k: v for k, v in TORCHRUN_ENV.items() if k != "TORCHELASTIC_RESTART_COUNT"})
    assert info is not None and info.restart_count == 0


def test_surrounding_whitespace_in_a_value_is_tolerated() -> None:
    info = DistributedInfo.from_env({"RANK": " 1 ", "WORLD_SIZE": "2\n"})
    assert info is not None and (info.rank, info.world_size) == (1, 2)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RANK", "zero"),
        ("WORLD_SIZE", "8.0"),
        ("LOCAL_RANK", "one"),
        ("LOCAL_WORLD_SIZE", "4x"),
        ("GROUP_RANK", ""),
        ("GROUP_WORLD_SIZE", "two"),
        ("TORCHELASTIC_RESTART_COUNT", "-"),
    ],
)
def test_a_non_integer_value_is_a_topology_error_naming_the_variable_and_value(variable: str, value: str) -> None:
    with pytest.raises(TopologyError) as err:
        DistributedInfo.from_env(TORCHRUN_ENV | {variable: value})
    assert f"{variable} must be an integer, got {value!r}" in str(err.value)


@pytest.mark.parametrize(
    ("environ", "variable", "value"),
    [
        pytest.param({"RANK": "9", "WORLD_SIZE": "4"}, "RANK", "9", id="rank-beyond-world-size"),
        pytest.param({"RANK": "4", "WORLD_SIZE": "4"}, "RANK", "4", id="rank-equal-to-world-size"),
        pytest.param({"RANK": "-1", "WORLD_SIZE": "4"}, "RANK", "-1", id="negative-rank"),
        pytest.param(
            {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "6", "LOCAL_WORLD_SIZE": "4"},
            "LOCAL_RANK",
            "6",
            id="local-rank-beyond-local-world-size",
        ),
        pytest.param(
            {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "7"},
            "GROUP_RANK",
            "7",
            id="group-rank-beyond-derived-worker-count",
        ),
        pytest.param(TORCHRUN_ENV | {"GROUP_RANK": "5"}, "GROUP_RANK", "5", id="group-rank-beyond-group-world-size"),
        pytest.param(
            {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "3"},
            "LOCAL_WORLD_SIZE",
            "3",
            id="local-world-size-beyond-world-size",
        ),
        pytest.param(
            {"RANK": "1", "WORLD_SIZE": "6", "LOCAL_WORLD_SIZE": "4"},
            "LOCAL_WORLD_SIZE",
            "4",
            id="world-size-not-a-multiple-of-local-world-size",
        ),
        pytest.param(
            TORCHRUN_ENV | {"TORCHELASTIC_RESTART_COUNT": "-2"},
            "TORCHELASTIC_RESTART_COUNT",
            "-2",
            id="negative-restart-count",
        ),
    ],
)
def test_an_inconsistent_value_is_a_topology_error_naming_the_variable_and_value(
    environ: dict[str, str], variable: str, value: str
) -> None:
    with pytest.raises(TopologyError) as err:
        DistributedInfo.from_env(environ)
    assert_names(err, variable, value)


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        pytest.param({"RANK": "0"}, "WORLD_SIZE", id="rank-without-world-size"),
        pytest.param({"WORLD_SIZE": "2"}, "RANK", id="world-size-without-rank"),
        pytest.param({"WORLD_SIZE": "2", "LOCAL_RANK": "0", "GROUP_RANK": "0"}, "RANK", id="node-vars-without-rank"),
    ],
)
def test_a_half_set_environment_is_a_topology_error_naming_the_missing_variable(
    environ: dict[str, str], missing: str
) -> None:
    with pytest.raises(TopologyError, match=f"{missing} is not set"):
        DistributedInfo.from_env(environ)


def test_a_rank_below_its_local_rank_is_a_topology_error() -> None:
    # Global ranks are numbered node by node, so a process's rank is at least its local rank; RANK=0 with
    # LOCAL_RANK=1 would give two processes of one node the same new/worker run id.
    with pytest.raises(TopologyError) as err:
        DistributedInfo.from_env({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert_names(err, "RANK", "0")


def test_more_workers_than_processes_is_a_topology_error() -> None:
    # Every worker runs at least one process.
    with pytest.raises(TopologyError) as err:
        DistributedInfo.from_env(
            {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "GROUP_WORLD_SIZE": "5"}
        )
    assert_names(err, "GROUP_WORLD_SIZE", "5")


def test_topology_error_is_a_value_error() -> None:
    assert issubclass(TopologyError, ValueError)


def test_get_distributed_info_reads_os_environ_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(key, value)
    assert get_distributed_info() == DistributedInfo.from_env(TORCHRUN_ENV)


def test_get_distributed_info_is_none_outside_distributed_training(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    assert get_distributed_info() is None


def test_distributed_info_is_frozen() -> None:
    info = DistributedInfo(rank=0, local_rank=0, world_size=1, local_world_size=1, worker_index=0, num_workers=1)
    with pytest.raises(AttributeError):
        info.rank = 1  # type: ignore[misc]
