"""One wording of who wrote a run: the local launch's table and the report tab name each writer alike."""

from __future__ import annotations

import dataclasses

import pytest
from records import run_record

from flyteplugins_wandb.local._summary import RunState, render_summary
from flyteplugins_wandb.pod import RunRecord, writer_label
from flyteplugins_wandb.readback._report_read import WriterData, build_view

WRITERS = [
    pytest.param(run_record(rank=None, worker_index=None), "not distributed", id="not-distributed"),
    pytest.param(run_record(rank=2, worker_index=1), "rank 2 (node 1)", id="rank-on-a-node"),
    pytest.param(run_record(rank=3, worker_index=1, restart_count=2, attempt=1), "rank 3 (node 1, restart 2, retry 1)",
                 id="restarted-and-retried"),
    pytest.param(run_record(label="rank-0", primary=True), "rank 0 (primary, node 0)", id="shared-primary"),
    pytest.param(run_record(label="rank-1", primary=False, rank=1), "rank 1 (node 0)", id="shared-writer"),
    pytest.param(
        run_record(label="worker-1-rank-0", primary=True, rank=2, worker_index=1),
        "worker 1 rank 0 (primary)",
        id="shared-worker-scope-names-its-node",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("record", "expected"), WRITERS)
def test_a_writer_is_named_by_its_label_or_rank_with_what_applies(record: RunRecord, expected: str) -> None:
    assert writer_label(record) == expected


def test_the_launch_table_and_the_report_tab_name_every_writer_alike() -> None:
    records = [
        dataclasses.replace(param.values[0], run_id=f"run-{i}", directory=f"/d/{i}")  # type: ignore[attr-defined]
        for i, param in enumerate(WRITERS)
    ]
    states = {r.directory: RunState("finished") for r in records if r.directory}
    data = {r.directory: WriterData("finished") for r in records if r.directory}

    table = render_summary(records, None, states).splitlines()
    view = build_view(records, data)

    for record in records:
        line = next(line for line in table if line.strip().startswith(record.run_id + " "))
        assert f"  {writer_label(record)}  " in line, line
    assert {(row.run_id, row.writer) for row in view.rows} == {(r.run_id, writer_label(r)) for r in records}
