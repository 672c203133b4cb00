"""Code written for Flyte's public W&B plugin (``flyteplugins-wandb``, imported as ``flyteplugins.wandb``) runs here
with only the import line changed: the names and shapes its users call, exercised as their scripts do, through real
local Flyte runs and real elastic workers, read back from the offline files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import flyteplugins_wandb

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, *, path: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*(path or []), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


# --- the import path ------------------------------------------------------------------------------------------------


def test_both_import_paths_give_the_same_objects() -> None:
    import flyteplugins.wandb as public

    assert public.__all__ == flyteplugins_wandb.__all__
    for name in flyteplugins_wandb.__all__:
        assert getattr(public, name) is getattr(flyteplugins_wandb, name), name


def test_flyteplugins_pytorch_still_imports_beside_the_alias() -> None:
    out = _python("import flyteplugins.wandb, flyteplugins.pytorch.task as t; print(t.Elastic.__name__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Elastic"


def test_the_alias_ships_no_namespace_init() -> None:
    # An __init__.py there would make `flyteplugins` a regular package and hide flyteplugins.pytorch.
    assert not (ROOT / "flyteplugins" / "__init__.py").exists()


def test_importing_warns_once_when_flyteplugins_wandb_is_installed_too(tmp_path: Path) -> None:
    other = tmp_path / "flyteplugins_wandb-2.12.1.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: flyteplugins-wandb\nVersion: 2.12.1\n")
    code = "import warnings; warnings.simplefilter('always'); import flyteplugins.wandb, flyteplugins_wandb"
    out = _python(code, path=[str(tmp_path)])
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("flyteplugins-wandb 2.12.1 is installed beside") == 1, out.stderr


def test_importing_does_not_warn_without_the_other_distribution() -> None:
    out = _python("import warnings; warnings.simplefilter('error'); import flyteplugins.wandb")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


# --- get_distributed_info() as a dict ----------------------------------------------------------------------------


def test_distributed_info_reads_as_the_dict_users_index() -> None:
    info = flyteplugins_wandb.DistributedInfo.from_env(
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1"}
    )
    assert info is not None
    assert dict(info) == {
        "rank": 3,
        "local_rank": 1,
        "world_size": 4,
        "local_world_size": 2,
        "worker_index": 1,
        "num_workers": 2,
    }
    assert (info["rank"], info.rank, info.get("nope")) == (3, 3, None)


def test_an_unknown_key_of_the_distributed_info_names_the_keys() -> None:
    info = flyteplugins_wandb.DistributedInfo(0, 0, 1, 1, 0, 1)
    with pytest.raises(KeyError, match="'global_rank' is not a key of the distributed info; keys: rank, local_rank"):
        info["global_rank"]
