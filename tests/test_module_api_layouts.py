"""wandb's module API in the body of an Elastic task, on real torch elastic workers, W&B offline: in every layout of
the spec tables a rank with a run logs, configures and summarises through ``wandb.log``/``wandb.config``/
``wandb.summary`` into its layout's run, and a rank without one gets an error that names the guard, and imports
wandb only when its own code does.

Every rank of the session's layout launches (tests/layout_launches.py) runs ``elastic_tasks.log_rank``, whose body
uses the module API after its ``get_wandb_run()`` rows; which rank writes to which run is checked against the spec
tables in test_elastic_layouts.py (with ``wandb.run`` on each rank: ``check_ranks``), so here each rank's own
``get_wandb_run()`` says whether it has one.
"""

from __future__ import annotations

from typing import Any

import elastic_tasks as tasks
import pytest
from layout_launches import TASKS, LayoutLaunch

pytestmark = [pytest.mark.elastic, pytest.mark.parametrize("layout_launch", sorted(TASKS), indirect=True)]


def _writers(launch: LayoutLaunch) -> dict[int, str]:
    return {rank: seen["run_id"] for rank, seen in launch.facts.items() if seen["run_id"] is not None}


def test_module_api_writes_rows_config_and_summary_into_each_writers_run_and_makes_no_other(
    layout_launch: LayoutLaunch,
) -> None:
    writers = _writers(layout_launch)
    assert writers, "every layout has a writer"
    assert len(layout_launch.files) == len(writers), "one offline run per writer, no extra run"
    by_rank = {f.metric("module_rank")[0]: f for f in layout_launch.files if f.metric("module_rank")}
    assert sorted(by_rank) == sorted(writers), "every writer's module-API rows are in a file of its own"
    for rank, written in by_rank.items():
        assert written.run_id == writers[rank]
        assert written.metric("module_loss") == [1.0 / (i + 1) for i in range(tasks.ROWS)], f"rank {rank}: rows"
        assert written.metric("module_rank") == [rank] * tasks.ROWS
        assert written.config[f"config_from_rank_{rank}"] == rank, f"rank {rank}: wandb.config.update"
        assert written.summary[f"summary_from_rank_{rank}"] == rank, f"rank {rank}: wandb.summary[...]"
        assert (written.exit_code, written.state) == (0, "finished")


def test_a_rank_without_a_run_imports_wandb_only_when_its_code_does_and_is_told_to_guard(
    layout_launch: LayoutLaunch,
) -> None:
    for rank, seen in layout_launch.facts.items():
        has_run = seen["run_id"] is not None
        # A rank with a run imported wandb to open it; one without never did before its own `import wandb`.
        assert seen["wandb_imported"] is has_run, f"rank {rank}: wandb imported before the body's import"
        errors: list[Any] = [seen.get("log_error"), seen.get("config_error")]
        if has_run:
            assert errors == [None, None], f"rank {rank}: its run takes the module API's calls"
            continue
        for error in errors:
            assert error is not None, f"rank {rank}: wandb's module API did not refuse"
            assert error.startswith("wandb.errors.errors.Error: wandb."), error
            assert f"rank {rank} has no W&B run in its layout (run_mode='auto'" in error, error
            assert "get_wandb_run() is None" in error, error
            assert "wandb.init()" not in error, "no advice to open a run of one's own"
