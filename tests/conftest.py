"""Fixtures shared by every test: an isolated W&B environment (offline, temporary directories) and a clean slate
of process-global state after each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """W&B offline, writing under this test's tmp_path; WANDB_* from the caller's shell never leaks in.

    Yields the WANDB_DIR. The whole of os.environ is restored afterwards, since Elastic's ``pre()`` and wandb
    itself write into it.
    """
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("WANDB_") or key in {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK"}:
            monkeypatch.delenv(key)
    wandb_dir = tmp_path / "wandb-dir"
    wandb_dir.mkdir()
    for name, sub in (("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"), ("WANDB_DATA_DIR", "data")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    yield wandb_dir
    _finish_stray_wandb_runs()
    os.environ.clear()
    os.environ.update(saved)


def _finish_stray_wandb_runs() -> None:
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is None:
        return
    if wandb.run is not None:
        wandb.run.finish()
    # wandb's process-wide setup caches WANDB_DIR and friends: tear it down so the next test's tmp dirs apply.
    wandb.teardown()
