"""Many shared-mode launches in a row beside a CPU load: every writer of every launch must get its run.

Not in the default run (minutes): ``python -m pytest -m stress tests/test_shared_writers_stress.py``. Set
``STRESS_LAUNCHES`` for more or fewer launches (the default is 50), half on 1 node x 2, half on 2 nodes x 2, the
layout alternately from the decorator and from the run context.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import elastic_tasks as tasks
import pytest

from flyteplugins_wandb import wandb_config
from flyteplugins_wandb.local import run_elastic_locally

LAUNCHES = int(os.environ.get("STRESS_LAUNCHES", "50"))
# (task, nodes, run context): the shared layouts, 1 x 2 and 2 x 2, the layout written both ways.
CASES = [
    (tasks.single_shared, 1, None),
    (tasks.shared_global, 2, None),
    (tasks.from_context, 1, ("shared", "worker")),
    (tasks.from_context, 2, ("shared", "worker")),
    (tasks.from_context, 1, ("shared", "global")),
    (tasks.shared_worker, 2, None),
]


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """One process that keeps a core busy for the test's duration."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        burner.kill()
        burner.wait()


@pytest.mark.stress
@pytest.mark.elastic
@pytest.mark.timeout(LAUNCHES * 240)
def test_every_writer_of_every_shared_launch_gets_its_run(tmp_path: Path, cpu_load: None) -> None:
    without: list[str] = []
    started = time.monotonic()
    for i in range(LAUNCHES):
        task, nodes, layout = CASES[i % len(CASES)]
        out = tmp_path / f"launch-{i}"
        out.mkdir()
        context = None
        if layout is not None:
            context = wandb_config(project=tasks.PROJECT, entity=tasks.ENTITY, run_mode=layout[0], rank_scope=layout[1])
        run_elastic_locally(
            task, nnodes=nodes, custom_context=context, max_restarts=0, timeout=180, out_dir=str(out), x=i
        )
        facts = tasks.read_facts(out)
        missing = sorted(set(range(nodes * 2)) - set(facts))
        no_run = sorted(rank for rank, f in facts.items() if f["run_id"] is None)
        if missing or no_run:
            without.append(f"launch {i} ({task.name}, {nodes} node(s), {layout}): no facts {missing}, no run {no_run}")
    took = time.monotonic() - started
    print(f"{LAUNCHES} shared launches in {took:.0f}s, {len(without)} with a writer without a run")
    assert without == []
