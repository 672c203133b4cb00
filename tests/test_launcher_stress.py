"""Many short local elastic launches in a row: none may lose its error or wait out its timeout.

Not in the default run (a few minutes): ``python -m pytest -m stress tests/test_launcher_stress.py``. Set
``STRESS_LAUNCHES`` for more launches (the default is 24); run it beside other work to see it under load.
"""

from __future__ import annotations

import os
import time

import elastic_tasks as tasks
import pytest

from flyteplugins_wandb.local import LocalElasticError, run_elastic_locally

LAUNCHES = int(os.environ.get("STRESS_LAUNCHES", "24"))
# (task, rank that fails or -1): success and failure on each layout, the failing rank on either node of two.
CASES = [
    (tasks.fails_on_rank_1x2, -1),
    (tasks.fails_on_rank_2x2, -1),
    (tasks.fails_on_rank_1x2, 1),
    (tasks.fails_on_rank_2x2, 1),
    (tasks.fails_on_rank_2x2, 3),
    (tasks.fails_on_rank_2x2, 0),
]


@pytest.mark.stress
@pytest.mark.elastic
@pytest.mark.timeout(LAUNCHES * 240)
def test_every_launch_returns_rank_0s_output_or_the_first_workers_error() -> None:
    wrong: list[str] = []
    started = time.monotonic()
    for i in range(LAUNCHES):
        task, rank = CASES[i % len(CASES)]
        case = f"launch {i} ({task.name}, failing rank {rank})"
        try:
            output = run_elastic_locally(task, max_restarts=0, timeout=180, rank=rank).output
        except LocalElasticError as e:
            # The error must name the worker's own exception: not "exited without a result", not a timeout.
            if rank < 0 or f"deliberate failure on rank {rank}" not in str(e).split("\n\n")[0]:
                wrong.append(f"{case}: {str(e)[:400]}")
            continue
        if rank >= 0 or output != "rank-0":
            wrong.append(f"{case}: returned {output!r}")
    took = time.monotonic() - started
    print(f"{LAUNCHES} launches in {took:.0f}s, {len(wrong)} wrong")
    assert wrong == []
