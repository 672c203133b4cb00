"""Every example runs with one command and produces the W&B runs its docstring promises.

Each local example runs as a subprocess, as a user would start it (``python examples/<name>.py``), offline in a
temporary WANDB_DIR; its run files are read back with ``wandb leet inspect``. The cluster example is only imported.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from readback import OfflineRun, offline_runs

from flyteplugins_wandb.local._summary import UPLOAD_COMMAND

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROJECT = "flyteplugins-wandb-examples"
STEPS = 40  # the examples' default number of training steps

# The base of every run id, {run_name}-{action_name}: run_elastic_locally names runs local-<8 hex> with action a0;
# flyte.run on this machine names them <uuid>-<action>.
LOCAL_ELASTIC_BASE = r"local-[0-9a-f]{8}-a0"
FLYTE_LOCAL_BASE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9a-z]+"


@dataclass(frozen=True)
class Promise:
    """What an example's docstring says it produces: one (run id, group) per offline run file, by template."""

    script: str
    base: str
    files: tuple[tuple[str, str], ...]
    metrics: tuple[str, ...] = ("train/loss",)
    writer_key: str | None = None
    """A summary key that each file must hold a different value of (0, 1, ...): every writer's data survived."""


PROMISES = [
    pytest.param(
        Promise("quick_start.py", LOCAL_ELASTIC_BASE, (("{base}", ""),)),
        marks=pytest.mark.elastic,
        id="quick_start-auto-1x2-one-run-from-rank-0",
    ),
    pytest.param(
        Promise("layout_shared.py", LOCAL_ELASTIC_BASE, (("{base}", ""), ("{base}", "")), writer_key="rank"),
        marks=pytest.mark.elastic,
        id="layout_shared-both-ranks-write-one-run",
    ),
    pytest.param(
        Promise(
            "layout_new.py",
            LOCAL_ELASTIC_BASE,
            (("{base}-rank-0", "{base}"), ("{base}-rank-1", "{base}")),
            writer_key="rank",
        ),
        marks=pytest.mark.elastic,
        id="layout_new-one-run-per-rank-in-one-group",
    ),
    pytest.param(
        Promise(
            "layout_worker_scope.py",
            LOCAL_ELASTIC_BASE,
            (("{base}-worker-0", ""), ("{base}-worker-1", "")),
            writer_key="node",
        ),
        marks=pytest.mark.elastic,
        id="layout_worker_scope-one-run-per-node-on-2x2",
    ),
    pytest.param(
        Promise("lightning_elastic.py", LOCAL_ELASTIC_BASE, (("{base}", ""),)),
        marks=pytest.mark.elastic,
        id="lightning_elastic-wandblogger-logs-into-rank-0-run",
    ),
    pytest.param(
        Promise("nested_tasks.py", FLYTE_LOCAL_BASE, (("{base}", ""),), metrics=("train/loss", "eval/loss")),
        id="nested_tasks-child-logs-into-parent-run",
    ),
]


@dataclass(frozen=True)
class Launched:
    promise: Promise
    stdout: str
    runs: list[OfflineRun]


@pytest.fixture(scope="module")
def launched(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Launched:
    """Run one example once, as a user would (``python examples/<name>.py``), offline in fresh directories; the
    tests of that example share the result."""
    promise: Promise = request.param
    home = tmp_path_factory.mktemp(Path(promise.script).stem)
    stdout = _run_example(home, promise.script)
    return Launched(promise, stdout, offline_runs(home / "wandb_dir"))


def _run_example(home: Path, script: str, *args: str) -> str:
    """``python examples/<script> args`` as a user would run it, offline with every W&B directory under ``home``
    (runs in ``home/wandb_dir``); its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "FLYTEPLUGINS_WANDB_MANIFEST"}
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        (home / name.lower()).mkdir(exist_ok=True)
        env[name] = str(home / name.lower())
    env.update(WANDB_MODE="offline", WANDB_DISABLE_GIT="true")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _base_of(runs: list[OfflineRun], base_pattern: str) -> str:
    bases = {m.group(0) for r in runs if (m := re.match(base_pattern, r.run_id))}
    assert len(bases) == 1, f"expected one id base matching {base_pattern!r}, got ids {[r.run_id for r in runs]}"
    return bases.pop()


@pytest.mark.parametrize("launched", PROMISES, indirect=True)
def test_example_produces_the_runs_it_promises(launched: Launched) -> None:
    promise, runs = launched.promise, launched.runs
    assert runs, f"{promise.script} wrote no offline run\n{launched.stdout}"
    base = _base_of(runs, promise.base)
    expected = sorted((run_id.format(base=base), group.format(base=base)) for run_id, group in promise.files)
    assert sorted((r.run_id, r.group) for r in runs) == expected
    if promise.writer_key is not None:
        assert sorted(r.summary.get(promise.writer_key) for r in runs) == list(range(len(runs)))


@pytest.mark.parametrize("launched", PROMISES, indirect=True)
def test_example_runs_finish_with_a_falling_loss(launched: Launched) -> None:
    for run in launched.runs:
        assert (run.state, run.exit_code, run.project) == ("finished", 0, PROJECT), run.path
        for key in launched.promise.metrics:
            assert run.metric(key), f"{run.run_id} ({run.path}) logged no {key}"
        losses = run.metric("train/loss")
        assert len(losses) == STEPS
        assert losses[-1] < losses[0] / 10, f"{run.run_id} did not learn: {losses[0]} -> {losses[-1]}"


@pytest.mark.parametrize("launched", PROMISES, indirect=True)
def test_example_summary_lists_its_runs_and_one_command_that_uploads_them(launched: Launched) -> None:
    runs, stdout = launched.runs, launched.stdout
    assert "W&B runs:" in stdout, stdout
    table = stdout[stdout.index("W&B runs:") :]
    assert f"W&B runs: {len({r.run_id for r in runs})} (offline" in table
    rows = [line for line in table.splitlines() if line.strip().startswith(tuple(r.run_id for r in runs))]
    assert len(rows) == len(runs), table
    assert all(" finished " in row and "train/loss=" in row for row in rows), table
    uploads = [line.strip() for line in stdout.splitlines() if "sync" in line]
    assert len(uploads) == 1 and uploads[0].startswith(UPLOAD_COMMAND + " "), stdout
    assert sorted(shlex.split(uploads[0])[3:]) == sorted(str(run.path.parent) for run in runs), uploads[0]


def test_every_example_runs_only_under_a_main_guard() -> None:
    for path in sorted(EXAMPLES.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        guards = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "__name__ == '__main__'"]
        assert len(guards) == 1, f'{path.name} needs one `if __name__ == "__main__":` block (workers re-import it)'
        assert ast.get_docstring(tree), f"{path.name} needs a docstring saying how to run it and what it produces"


def test_cluster_example_imports_without_submitting(tmp_path: Path) -> None:
    # A fresh interpreter: importing the example must neither contact a cluster nor need one.
    probe = """
import json, runpy, sys
from flyte._initialize import is_initialized
module = runpy.run_path(sys.argv[1], run_name="cluster_example")
task, env, image = module["train"], module["env"], module["image"]
secret = env.secrets if not isinstance(env.secrets, (list, tuple)) else env.secrets[0]
print(json.dumps({
    "dockerfile": str(image.dockerfile),
    "nnodes": task.plugin_config.nnodes,
    "nproc_per_node": task.plugin_config.nproc_per_node,
    "gpu": str(env.resources.gpu),
    "secret": [secret.key, secret.as_env_var],
    "links": [link.name for link in task.links],
    "flyte_initialised": is_initialized(),
}))
"""
    env = {k: v for k, v in os.environ.items() if k != "FLYTE_IMAGE_REGISTRY"}
    done = subprocess.run(
        [sys.executable, "-c", probe, str(EXAMPLES / "cluster.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["dockerfile"] == str(ROOT / "Dockerfile")
    assert Path(facts["dockerfile"]).is_file()
    assert (facts["nnodes"], facts["nproc_per_node"]) == (2, 4)
    assert "A100" in facts["gpu"]
    assert facts["secret"] == ["wandb_api_key", "WANDB_API_KEY"]
    assert facts["links"] == ["Weights & Biases"], "global scope: one link to the one run"
    assert facts["flyte_initialised"] is False


def test_sweep_example_runs_its_trials_offline_and_resumes_without_rerunning_any(tmp_path: Path) -> None:
    def sweep(count: int) -> str:
        return _run_example(tmp_path, "sweep.py", "--method", "grid", "--count", str(count))

    first, second = sweep(4), sweep(6)
    assert "Unsupported Type" not in first, "a task typed with Any makes Flyte fall back to a pickle"
    sweep_id = re.search(r"^sweep (\S+-sweep) \(offline;", first, re.M)
    assert sweep_id, first
    assert f"sweep {sweep_id.group(1)} (offline;" in second, "the resumed sweep must keep its first id"
    assert len(re.findall(r"^  trial ", second, re.M)) == 6
    runs = offline_runs(tmp_path / "wandb_dir")
    assert sorted(r.config["sweep_trial"] for r in runs) == list(range(6)), "a resumed sweep ran a trial again"
    for run in runs:
        assert run.group == sweep_id.group(1) and run.config["sweep_id"] == sweep_id.group(1)
        assert run.metric("val/loss") and (run.state, run.exit_code) == ("finished", 0)
    best = min(runs, key=lambda r: r.metric("val/loss")[-1])
    assert f"best: {{'params': {{'lr': {best.config['lr']}, 'layers': {best.config['layers']}}}" in second
