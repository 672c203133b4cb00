"""A rank without a run imports only what deciding that takes: not wandb, nor the pod's service and saving of run
files, the report tab's reading and rendering, the sweeps, or Flyte's extension machinery (told by module names,
in a fresh interpreter; the time it costs is in benchmarks/bench_import.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Rank 1 of 2 under the default layout (auto, global): the body runs, no run is opened.
_NO_RUN_RANK = textwrap.dedent(
    """
    import json, os, sys, tempfile
    os.environ.update(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", LOCAL_WORLD_SIZE="2", GROUP_RANK="0",
                      GROUP_WORLD_SIZE="1", WANDB_MODE="offline")
    import flyte, flyte.report
    from flyte._context import internal_ctx
    from flyte.models import ActionID, RawDataPath, TaskContext
    from flyteplugins_wandb import get_wandb_run, wandb_init

    env = flyte.TaskEnvironment(name="no-run")

    @wandb_init
    @env.task
    def body(x: int) -> int:
        assert get_wandb_run() is None
        return x + 1

    root = tempfile.mkdtemp()
    tctx = TaskContext(
        action=ActionID(name="a0", run_name="r0", project="p", domain="d", org="o"), version="v",
        raw_data_path=RawDataPath(path=root), output_path=root, run_base_dir=root,
        report=flyte.report.Report(name="a0"), mode="remote", custom_context={},
    )
    with internal_ctx().replace_task_context(tctx):
        assert body.func(1) == 2
    print(json.dumps(sorted(sys.modules)))
    """
)

NOT_NEEDED = (
    "wandb",
    "flyte.extend",
    "flyteplugins_wandb.pod._node_service",
    "flyteplugins_wandb.pod._run_files",
    "flyteplugins_wandb.readback._report",
    "flyteplugins_wandb.readback._report_read",
    "flyteplugins_wandb.readback._wandb_cli",
    "flyteplugins_wandb.run._agent_trials",
    "flyteplugins_wandb.sweeps",
)


def test_a_rank_without_a_run_imports_none_of_what_only_runs_pods_reports_and_sweeps_need() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _NO_RUN_RANK], capture_output=True, text=True, check=False, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    modules = set(json.loads(out.stdout.splitlines()[-1]))
    assert "flyteplugins_wandb.task._decorator" in modules, "the probe must really take the decorated path"
    assert sorted(m for m in modules if m in NOT_NEEDED or m.startswith(tuple(f"{n}." for n in NOT_NEEDED))) == []


def test_python_importtime_reports_every_module_of_the_plugin_that_the_rank_loads() -> None:
    # The lazy exports import through the import statement's machinery, which is what -X importtime reports on.
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _NO_RUN_RANK],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = {m for m in json.loads(out.stdout.splitlines()[-1]) if m.startswith("flyteplugins_wandb")}
    reported = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "flyteplugins_wandb.planning._plan" in loaded
    assert sorted(loaded - reported) == []
