"""See the "Weights & Biases" report tab as a user does: run a task with ``@wandb_init(report=True)``, then open the
report Flyte kept for it in a real headless browser (Chromium) and save a screenshot.

    python examples/report_screenshot.py                      # a local flyte.run; writes wandb_report.png
    python examples/report_screenshot.py --shared             # a 2 x 2 shared run on real elastic workers
    python examples/report_screenshot.py --html report.html   # screenshot a report you already have

W&B runs offline unless ``WANDB_API_KEY`` is set (the tab reads the runs' local files either way). Chromium comes
from your system (Debian: ``apt-get install -y chromium``); it runs without network features, sandbox or GPU, in a
throw-away profile. The report's HTML is saved next to the screenshot (``.html``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _common
import flyte
from flyteplugins.pytorch.task import Elastic

from flyteplugins_wandb import get_wandb_run, wandb_init

env = flyte.TaskEnvironment(name="report_screenshot")
elastic = flyte.TaskEnvironment(name="report_screenshot_2x2", plugin_config=Elastic(nnodes=2, nproc_per_node=2))


def _train(steps: int) -> None:
    run = get_wandb_run()
    for step, loss in _common.train(_common.make_model(), steps):
        if run is not None:
            run.log({"train/loss": loss, "train/lr": 0.1 * (1 - step / steps)}, step=step)


@wandb_init(project=_common.PROJECT, report=True)
@env.task
def train(steps: int = 200) -> str:
    """Train, and say where Flyte keeps this action's files (its report among them)."""
    _train(steps)
    return str(flyte.ctx().output_path)


@wandb_init(project=_common.PROJECT, run_mode="shared", report=True)
@elastic.task
def train_shared(steps: int = 200) -> None:
    """Every rank writes to one shared run: four labelled lines per metric."""
    with _common.process_group():
        _train(steps)


def report_html(shared: bool, steps: int) -> str:
    """Run the task and return the report page Flyte keeps for it."""
    _common.choose_wandb_mode()
    if shared:
        from flyteplugins_wandb.local import run_elastic_locally

        result = run_elastic_locally(train_shared, custom_context=_common.run_context(), steps=steps)
        if result.report is None:
            raise SystemExit("the task wrote no report")
        return result.report
    flyte.init()
    output_path = flyte.with_runcontext(custom_context=_common.run_context()).run(train, steps=steps).outputs()[0]
    report = Path(output_path) / "report.html"  # where Flyte writes an action's report
    print(f"report: {report}")
    return report.read_text(encoding="utf-8")


def find_chromium(given: str | None) -> str:
    for name in (given, "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    raise SystemExit("Chromium was not found: install it (Debian: apt-get install -y chromium) or pass --chromium")


def screenshot(page: Path, out: Path, chromium: str, width: int, height: int) -> None:
    """Open ``page`` in headless Chromium and save what it shows to ``out`` (PNG)."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            # Flyte's page template asks for a web font: do not let an air-gapped machine wait for it.
            "--virtual-time-budget=5000",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"chromium failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("wandb_report.png"), help="the screenshot (PNG)")
    parser.add_argument("--html", type=Path, help="screenshot this report instead of running a task")
    parser.add_argument("--shared", action="store_true", help="a 2 x 2 shared run on real elastic workers")
    parser.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    parser.add_argument("--chromium", help="the browser to use (default: chromium on PATH)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1200)
    args = parser.parse_args()
    chromium = find_chromium(args.chromium)
    if args.html is not None:
        page = args.html
    else:
        page = args.out.with_suffix(".html")
        page.write_text(report_html(args.shared, args.steps), encoding="utf-8")
        print(f"report page: {page}")
    screenshot(page, args.out, chromium, args.width, args.height)
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
