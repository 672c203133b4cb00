"""One launch per layout of the spec tables, shared by every test that asserts a fact about that kind of launch.

An elastic launch costs seconds of two busy cores, so a launch is not repeated to assert a second fact about it: the
session-scoped fixture ``layout_launch`` (tests/conftest.py) runs each layout once per test session, and a test asks
for it by name with ``@pytest.mark.parametrize("layout_launch", ["1x2-new"], indirect=True)``. Everything a test
may look at is read when the launch ends (each rank's facts, the manifest, every offline run file), so a test may
delete the launch's W&B directory without harming the others. Every rank of every layout runs
``elastic_tasks.log_rank``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import elastic_tasks as tasks
from readback import OfflineRun, inspect_run

from flyteplugins_wandb.local import LocalElasticResult, run_elastic_locally

TORCH_DEFAULT_STORE = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "0"}
"""The layouts run with torch's default store (one for the whole job, the agent's), the rest of the suite with one
per restart (tests/conftest.py): the plugin meets both."""
RUN_NAME = "run7"
ACTION = "a3"
X = 41

TASKS: dict[str, Any] = {
    "2x2-auto-global": tasks.auto_global,
    "2x2-auto-worker": tasks.auto_worker,
    "2x2-shared-global": tasks.shared_global,
    "2x2-shared-worker": tasks.shared_worker,
    "2x2-new-global": tasks.new_global,
    "2x2-new-worker": tasks.new_worker,
    "1x2-auto": tasks.single_auto,
    "1x2-shared": tasks.single_shared,
    "1x2-new": tasks.single_new,
}
"""The layouts by name: ``{nodes}x{processes}-{run_mode}[-{rank_scope}]``; the 1-node tasks say
``rank_scope="worker"``, which must change nothing there."""


@dataclass(frozen=True)
class LayoutLaunch:
    """What one launch of a layout left, read back when it ended."""

    result: LocalElasticResult
    facts: dict[int, dict[str, Any]]
    """What each rank saw, by global rank (``elastic_tasks.read_facts``)."""
    files: list[OfflineRun]
    """Every offline run file the launch wrote, as written (shared-mode writers each have their own)."""
    wandb_dir: Path
    """The launch's WANDB_DIR."""

    @property
    def base(self) -> str:
        """``{run_name}-{action_name}``, the stem of every run id of the launch."""
        return f"{self.result.run_name}-{self.result.action_name}"


def read_offline_runs(root: Path) -> list[OfflineRun]:
    """Every offline run file under ``root``, several read at a time."""
    files = sorted(root.rglob("offline-run-*/run-*.wandb"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(inspect_run, files))


@contextmanager
def isolated_wandb_env(root: Path) -> Iterator[Path]:
    """W&B offline with every directory of its own under ``root``, as tests/conftest.py's ``wandb_env`` makes it
    for one test, for a launch that outlives one test; the environment is restored afterwards. Yields WANDB_DIR."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("WANDB_")]:
            del os.environ[key]
        for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
            (root / name.lower()).mkdir(parents=True)
            os.environ[name] = str(root / name.lower())
        os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true")
        yield root / "wandb_dir"
    finally:
        os.environ.clear()
        os.environ.update(saved)


def launch_layout(name: str, root: Path) -> LayoutLaunch:
    """Launch layout ``name`` once (2 processes per node), offline under ``root``, and read back all it left."""
    out_dir = root / "facts"
    out_dir.mkdir(parents=True)
    with isolated_wandb_env(root) as wandb_dir:
        result = run_elastic_locally(
            TASKS[name],
            nproc_per_node=2,
            # A body that fails fails the launch at once: with torch's default store a restart would hang on torch's
            # own bug (README, "A worker that dies") until the test's timeout, leaving the workers behind.
            max_restarts=0,
            run_name=RUN_NAME,
            action_name=ACTION,
            env=TORCH_DEFAULT_STORE,
            out_dir=str(out_dir),
            x=X,
        )
    return LayoutLaunch(result, tasks.read_facts(out_dir), read_offline_runs(wandb_dir), wandb_dir)
