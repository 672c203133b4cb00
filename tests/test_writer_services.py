"""Every writer of a shared run on a node gets a W&B service of its own, started by the pod: wandb's service holds
one stream per run id, so writers of one run cannot share one, and a service owned by the pod outlives a killed
writer (its rows survive; see tests/test_worker_restart.py for the killed shared writer)."""

from __future__ import annotations

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
