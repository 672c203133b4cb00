"""Every writer of a shared run on a node gets a W&B service of its own, started by the pod: wandb's service holds
one stream per run id, so writers of one run cannot share one, and a service owned by the pod outlives a killed
writer (its rows survive; see tests/test_worker_restart.py for the killed shared writer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flyteplugins_wandb.pod._node_service import (
    SERVICE_ENV,
    WRITER_SERVICES_ENV,
    join_writer_service,
    service_reachable,
    writer_services,
)


def test_the_pod_starts_one_service_per_writer_and_stops_them_all() -> None:
    environ = {SERVICE_ENV: "3-1-unix-/a/users/service"}
    with writer_services(3, stop_timeout=60, environ=environ) as services:
        tokens = [s.token for s in services]
        assert len(set(tokens)) == 3 and all(s.owned for s in services)
        assert environ == {WRITER_SERVICES_ENV: " ".join(tokens)}  # the user's service is hidden from the writers
        assert all(service_reachable(t) for t in tokens)
    assert environ == {SERVICE_ENV: "3-1-unix-/a/users/service"}
    assert not any(service_reachable(t) for t in tokens)


@pytest.mark.parametrize(
    ("local_rank", "joined"),
    [
        pytest.param("0", "tok-a", id="first"),
        pytest.param("1", "tok-b", id="second"),
        pytest.param("2", None, id="none"),
    ],
)
def test_a_writer_joins_the_service_of_its_local_rank(local_rank: str, joined: str | None) -> None:
    environ = {WRITER_SERVICES_ENV: "tok-a tok-b", "LOCAL_RANK": local_rank}
    assert join_writer_service(environ) is (joined is not None)
    assert environ.get(SERVICE_ENV) == joined


def test_without_writer_services_a_worker_keeps_what_it_had() -> None:
    environ = {"LOCAL_RANK": "0", SERVICE_ENV: "node"}
    assert join_writer_service(environ) is False
    assert environ == {"LOCAL_RANK": "0", SERVICE_ENV: "node"}


def test_the_pod_hands_its_services_to_the_workers_once_they_are_up(tmp_path: Path) -> None:
    """The pod starts its services beside the workers: the hand-over file is named at once, written once the
    services are up, and a worker takes from it what the services changed (a user's service hidden included)."""
    from flyteplugins_wandb._keys import SERVICE_HANDOVER_ENV
    from flyteplugins_wandb.pod._node_service import join_pod_services, started_beside_workers

    pod = {SERVICE_ENV: "3-1-unix-/a/users/service"}
    handover = str(tmp_path / "services.json")
    with started_beside_workers(lambda env: writer_services(2, stop_timeout=60, environ=env), handover, pod):
        assert pod[SERVICE_HANDOVER_ENV] == handover  # before any service is up: the workers start meanwhile
        worker = {**pod, "LOCAL_RANK": "1"}
        join_pod_services(worker, timeout=60)
        assert SERVICE_ENV not in worker  # the user's service could hold only one writer of the run
        tokens = worker[WRITER_SERVICES_ENV].split()
        assert len(tokens) == 2 and all(service_reachable(t) for t in tokens)
        assert join_writer_service(worker) and worker[SERVICE_ENV] == tokens[1]
    assert pod == {SERVICE_ENV: "3-1-unix-/a/users/service"}
    assert not any(service_reachable(t) for t in tokens)  # stopped when the block ended


def test_a_worker_whose_pod_never_hands_its_service_over_starts_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from flyteplugins_wandb._keys import SERVICE_HANDOVER_ENV
    from flyteplugins_wandb.pod._node_service import join_pod_services

    worker = {SERVICE_HANDOVER_ENV: str(tmp_path / "never.json")}
    with caplog.at_level("WARNING", logger="flyteplugins_wandb"):
        join_pod_services(worker, timeout=0.2)
    assert worker == {SERVICE_HANDOVER_ENV: str(tmp_path / "never.json")}
    assert [r.getMessage() for r in caplog.records] == [
        "the pod's W&B service was not up after 0s; this worker starts its own"
    ]
