"""The "Weights & Biases" report tab (``report=True``): real local Flyte runs and real elastic workers, W&B offline,
the page read back with a strict HTML parser and its chart values compared with what was logged and with what the
offline files hold."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flyte
import pytest
from flyte._internal.runtime import io
from html_check import read_page
from layout_launches import LayoutLaunch, X
from readback import offline_runs

from flyteplugins_wandb import get_wandb_run, wandb_config, wandb_init
from flyteplugins_wandb.pod._manifest import RunRecord
from flyteplugins_wandb.readback._report import (
    MAX_CHARTS,
    MAX_LINES_PER_CHART,
    MAX_POINTS,
    Line,
    ReportView,
    RunRow,
    downsample,
    render_report,
)
from flyteplugins_wandb.readback._report_read import WriterData, build_view, out_of_reach, read_writers
from flyteplugins_wandb.task._report_task import REFRESH_ENV, _Exchange

ROOT = Path(__file__).parent.parent
env = flyte.TaskEnvironment(name="test_report")
STEPS = 30


def logged(steps: int = STEPS) -> dict[str, list[float]]:
    """What the report tasks log, per metric, one value per step (a float, an int-valued float, a falling curve)."""
    return {
        "train/loss": [1.0 / (s + 1) for s in range(steps)],
        "acc": [0.5 + 0.01 * s for s in range(steps)],
        "epoch": [float(s // 10) for s in range(steps)],
    }


def log_all(steps: int) -> str:
    run = get_wandb_run()
    assert run is not None
    values = logged(steps)
    for s in range(steps):
        run.log({k: v[s] for k, v in values.items()} | {"note": f"step {s}"})
    return str(flyte.ctx().output_path)


@wandb_init(project="report-project", report=True)
@env.task
def reporting_task(steps: int) -> str:
    return log_all(steps)


@wandb_init(project="report-project")
@env.task
def plain_task(steps: int) -> str:
    return log_all(steps)


@wandb_init(project="report-project", report=True)
@env.task
async def failing_reporting_task(steps: int) -> str:
    log_all(steps)
    raise RuntimeError("the body failed: sentinel-report")


@wandb_init(project="report-project", report=True)
@env.task
def long_reporting_task(steps: int) -> dict[str, str]:
    """Log, then wait (bounded) until the tab has been refreshed while the body still runs; return that page and
    where the report is."""
    log_all(steps)
    report = Path(io.report_path(flyte.ctx().output_path))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if report.exists() and "refreshed while the task runs" in (page := report.read_text(encoding="utf-8")):
            return {"during": page, "report": str(report)}
        time.sleep(0.1)
    return {"during": "", "report": str(report)}


@pytest.fixture(autouse=True)
def local_flyte() -> Iterator[None]:
    _teardown_wandb()
    flyte.init()
    yield
    _teardown_wandb()


def _teardown_wandb() -> None:
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


def report_of(output_path: str) -> str:
    """The report Flyte keeps for the action whose outputs live at ``output_path``."""
    return Path(io.report_path(output_path)).read_text(encoding="utf-8")


# --- the page, from plain values ---


def test_downsampling_keeps_at_most_the_limit_the_extremes_and_always_the_last_point() -> None:
    steps = list(range(10_000))
    values = [math.sin(s / 300) + (5.0 if s == 4321 else 0.0) - (7.0 if s == 777 else 0.0) for s in steps]
    kept = downsample(steps, values, MAX_POINTS)
    assert len(kept) <= MAX_POINTS
    assert kept == sorted(set(kept)), "in order, no point twice"
    assert kept[-1] == len(values) - 1, "the last point is always kept"
    assert 4321 in kept and 777 in kept, "a spike survives downsampling"


def test_a_line_within_the_limit_is_drawn_with_every_point() -> None:
    zigzag = [float(s % 3) for s in range(MAX_POINTS)]
    assert downsample(range(MAX_POINTS), zigzag, MAX_POINTS) == list(range(MAX_POINTS))


def test_names_are_escaped_and_the_page_is_balanced_html_without_scripts() -> None:
    view = ReportView(
        rows=[RunRow("r<1>", "g&h", "rank 0", "offline", "finished", {"x<y": 1.5}, "/d/offline-run-1")],
        charts={"<script>alert(1)</script>": [Line("rank <0>", [0, 1], [1.0, float("nan")])]},
    )
    page = render_report(view)
    reader = read_page(page)
    assert reader.errors == []
    assert "<script" not in page
    assert "&lt;script&gt;" in page and "r&lt;1&gt;" in page and "x&lt;y = 1.5" in page
    assert "1 non-finite values not drawn" in page
    (chart,) = reader.charts
    assert chart.lines == {"rank <0>": ([0.0], [1.0])}


def test_charts_and_lines_per_chart_are_bounded_and_what_is_left_out_is_said() -> None:
    many_lines = [Line(f"rank {r}", [0, 1], [r, r + 1.0]) for r in range(MAX_LINES_PER_CHART + 4)]
    charts = {f"m{i:03d}": [Line("rank 0", [0], [1.0])] for i in range(MAX_CHARTS + 6)}
    page = render_report(ReportView(rows=[], charts={"aaa": many_lines, **charts}))
    reader = read_page(page)
    assert len(reader.charts) == MAX_CHARTS
    assert len(reader.charts[0].lines) == MAX_LINES_PER_CHART
    assert "4 more lines not drawn" in page and "7 more metrics not charted" in page


def test_a_writer_whose_files_lie_on_another_host_is_listed_and_says_why() -> None:
    def record(rank: int, directory: str) -> RunRecord:
        return RunRecord("run", None, f"rank-{rank}", rank == 0, "shared", "global", "offline", rank, rank % 2,
                         rank // 2, 0, 0, "p", None, directory)  # fmt: skip

    records = [record(0, "/nowhere/here-0"), record(2, "/nowhere/there-2")]
    data = read_writers(records)
    assert all(d.missing for d in data.values())
    reasons = out_of_reach(records, data, {"/nowhere/there-2": "node-b"}, "node-a")
    assert "written on host node-b" in reasons["/nowhere/there-2"] and "node-a" in reasons["/nowhere/there-2"]
    page = render_report(build_view(records, data, unreachable=reasons))
    assert "written on host node-b" in page, "the tab says so instead of hiding the writer"
    assert page.count("<tr>") == 3, "a header and both writers"


def test_build_view_labels_lines_by_run_when_a_task_has_several_runs() -> None:
    def record(run_id: str, rank: int) -> RunRecord:
        return RunRecord(run_id, "g", None, None, "new", "global", "offline", rank, rank, 0, 0, 0, "p", None,
                         f"/d/{run_id}")  # fmt: skip

    data = {f"/d/{r}": WriterData("finished", {"loss": ([0], [1.0])}) for r in ("a", "b")}
    view = build_view([record("b", 1), record("a", 0)], data)
    assert [line.label for line in view.charts["loss"]] == ["a", "b"]


def test_rank_0_names_the_ranks_that_did_not_hand_over_their_runs_in_time() -> None:
    from datetime import timedelta

    from torch.distributed import PrefixStore, TCPStore

    store = TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=30))
    exchange = _Exchange(PrefixStore("test", store))
    mine = RunRecord("run", None, "rank-1", False, "shared", "global", "offline", 1, 1, 0, 0, 0, "p", None, "/d/1")
    exchange.publish(1, [mine])
    gathered, missing = exchange.gather(world_size=4, timeout=0.5)
    assert [(rank, records) for rank, records, _host in gathered] == [(1, [mine])]
    assert missing == [2, 3]


# --- the decorator ---


def test_report_true_marks_the_task_so_that_flyte_offers_its_report() -> None:
    assert reporting_task.report is True
    assert plain_task.report is False, "without report=True the task is left as it was"


def test_a_report_that_is_not_a_bool_is_refused_where_it_is_written() -> None:
    with pytest.raises(TypeError, match="report must be a bool, got str 'yes'"):
        wandb_init(report="yes")  # type: ignore[call-overload]


# --- real local Flyte runs ---


def test_a_local_flyte_run_with_report_true_writes_the_tab_with_the_logged_values(wandb_env: Path) -> None:
    output_path = flyte.run(reporting_task, steps=STEPS).outputs()[0]
    page = report_of(output_path)
    reader = read_page(page)
    assert reader.errors == [], "the page parses as balanced HTML"

    (run,) = offline_runs(wandb_env)
    nav = [a for tag, a in reader.tags if tag == "li"]
    assert len(nav) == 1 and "Weights &amp; Biases" in page, "one tab, the plugin's"
    assert run.run_id in page and "finished" in page
    assert f"wandb sync {run.path.parent}" in page, "the offline run's upload command"
    assert "note = step 29" in page, "the last value of a non-scalar metric is in the table"

    charts = {c.metric: c for c in reader.charts}
    assert sorted(charts) == sorted(logged()), "one chart per scalar metric, none for strings"
    for metric, values in logged().items():
        ((label, (steps, drawn)),) = charts[metric].lines.items()
        assert label == run.run_id
        assert drawn == values, f"{metric}: the chart holds the logged values"
        assert drawn == run.metric(metric), f"{metric}: ... which are what the offline file holds"
        assert steps == [row["_step"] for row in run.history if metric in row]
    assert not any(tag == "script" and a.get("src") for tag, a in reader.tags), "no script from anywhere"


def test_without_report_no_tab_is_written() -> None:
    output_path = flyte.run(plain_task, steps=3).outputs()[0]
    assert not Path(io.report_path(output_path)).exists()


def test_a_long_task_sees_its_tab_refreshed_while_it_runs_then_written_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REFRESH_ENV, "0.5")
    seen = flyte.run(long_reporting_task, steps=STEPS).outputs()[0]
    assert seen["during"], "no refresh within 120 s"
    assert read_page(seen["during"]).errors == []
    assert seen["during"].count("<tr>") == 2, "the refreshed tab lists the run being written"
    final = Path(seen["report"]).read_text(encoding="utf-8")
    assert "written at the end of the task" in final and "refreshed while" not in final, "the end replaces it"
    charts = {c.metric: c for c in read_page(final).charts}
    assert next(iter(charts["train/loss"].lines.values()))[1] == logged()["train/loss"]


def test_wandb_config_report_true_in_the_run_context_turns_the_tab_on() -> None:
    output_path = flyte.with_runcontext(custom_context=wandb_config(report=True)).run(plain_task, steps=3).outputs()[0]
    page = report_of(output_path)
    assert "Weights &amp; Biases" in page and "train/loss" in page


def test_a_failing_task_still_writes_its_tab_with_the_run_failed() -> None:
    name = f"report-fails-{uuid.uuid4().hex[:8]}"
    with pytest.raises(Exception, match="sentinel-report"):
        flyte.with_runcontext(name=name).run(failing_reporting_task, steps=3)
    # A failed local run has no outputs to say where it kept its files: Flyte keeps them under the run's name.
    (path,) = Path(tempfile.gettempdir(), "flyte", "metadata", name).rglob("report.html")
    page = path.read_text(encoding="utf-8")
    assert "sentinel" not in page and ">failed<" in page and "train/loss" in page


# --- a 2 x 2 elastic run ---


@pytest.mark.elastic
@pytest.mark.parametrize("layout_launch", ["2x2-shared-global"], indirect=True)  # report=True, 4 writers, 2 nodes
def test_a_2x2_shared_run_has_one_tab_with_four_labelled_lines_per_metric(layout_launch: LayoutLaunch) -> None:
    import elastic_tasks as tasks

    report = layout_launch.result.report
    assert report is not None, "rank 0 wrote the report"
    reader = read_page(report)
    assert reader.errors == []
    assert sum(1 for tag, _ in reader.tags if tag == "li") == 1, "one tab, written once"
    # What elastic_tasks.log_rank logs on each rank, per metric, in order.
    rows = range(tasks.ROWS)
    logged = {
        "x": lambda rank: [X],
        "rank": lambda rank: [rank],
        "row": lambda rank: list(rows),
        "module_loss": lambda rank: [1.0 / (i + 1) for i in rows],
        "module_rank": lambda rank: [rank] * tasks.ROWS,
    }
    charts = {c.metric: c for c in reader.charts}
    assert sorted(charts) == sorted(logged)
    files = {f.metric("rank")[0]: f for f in layout_launch.files}
    for metric, values in logged.items():
        lines = charts[metric].lines
        assert len(lines) == 4, f"{metric}: {sorted(lines)}"
        for rank in range(4):
            label = next(label for label in lines if label.startswith(f"rank {rank}"))
            # Each line on its writer's own steps, as that writer's offline file has them.
            steps = [float(row["_step"]) for row in files[rank].history if metric in row]
            assert lines[label] == (steps, values(rank)), f"{metric}, rank {rank}"
    assert report.count("<tr>") == 5, "a header and the four writers of the one run"


# --- the screenshot script ---


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_screenshot_script_opens_the_report_in_a_headless_browser(tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "report_screenshot.py"), "--out", str(shot)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    data: Any = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
