"""Code written for Flyte's public W&B plugin (``flyteplugins-wandb``, imported as ``flyteplugins.wandb``) runs here
with only the import line changed: the names and shapes its users call, exercised as their scripts do, through real
local Flyte runs and real elastic workers, read back from the offline files."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import flyte
import pytest
from fake_wandb_server import KEY, FakeWandb, StoredRun, serve

import flyteplugins_wandb
from flyteplugins.wandb import (
    download_wandb_run_dir,
    download_wandb_run_logs,
    download_wandb_sweep_dirs,
    download_wandb_sweep_logs,
    get_wandb_run,
    wandb_init,
)
from flyteplugins_wandb._guards import MissingApiKeyError
from flyteplugins_wandb._wandb_api import WandbApiAuthError, WandbApiUnreachable, WandbRunNotFound

ROOT = Path(__file__).resolve().parent.parent
env = flyte.TaskEnvironment(name="compat")


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


# --- the download helpers, against a fake W&B server at the HTTP seam ------------------------------------------------

STORED = StoredRun(
    summary={"loss": 0.25, "_step": 2},
    config={"lr": 0.1},
    history=[{"_step": 0, "loss": 1.0}, {"_step": 1, "loss": 0.5}, {"_step": 2, "loss": 0.25}],
    files={"config.yaml": b"lr:\n  value: 0.1\n", "output.log": b"epoch 0\nepoch 1\n", "media/plot.json": b"{}"},
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWandb]:
    fake = FakeWandb(entity="team")
    fake.stored["team/proj/run-a"] = STORED
    with serve(fake) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        monkeypatch.setenv("WANDB_API_KEY", KEY)
        yield fake


def _read_dir(path: str) -> dict[str, str]:
    root = Path(path)
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_download_wandb_run_dir_writes_the_runs_files_summary_and_history(server: FakeWandb, tmp_path: Path) -> None:
    out = download_wandb_run_dir("run-a", path=str(tmp_path / "a"), entity="team", project="proj")
    files = _read_dir(out)
    assert sorted(files) == ["config.yaml", "media/plot.json", "metrics_history.json", "output.log", "summary.json"]
    assert json.loads(files["summary.json"]) == {"loss": 0.25, "_step": 2}
    assert [row["loss"] for row in json.loads(files["metrics_history.json"])] == [1.0, 0.5, 0.25]
    assert files["output.log"] == "epoch 0\nepoch 1\n"


def test_download_without_history_leaves_the_history_out(server: FakeWandb, tmp_path: Path) -> None:
    out = download_wandb_run_dir("team/proj/run-a", path=str(tmp_path / "a"), include_history=False)
    assert "metrics_history.json" not in _read_dir(out)


def test_a_download_without_an_api_key_says_how_to_give_one(
    server: FakeWandb, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(MissingApiKeyError, match="needs an API key.*WANDB_API_KEY"):
        download_wandb_run_dir("team/proj/run-a", path=str(tmp_path / "a"))
    assert server.auth == []  # nothing was sent without a key


def test_a_refused_api_key_is_named_as_such(server: FakeWandb, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "wrong-key")
    with pytest.raises(WandbApiAuthError, match=r"refused the W&B API key \(HTTP 401\)"):
        download_wandb_run_dir("team/proj/run-a", path=str(tmp_path / "a"))


def test_an_unknown_run_is_named_with_its_project(server: FakeWandb, tmp_path: Path) -> None:
    with pytest.raises(WandbRunNotFound, match="has no run 'run-zz' in project team/proj"):
        download_wandb_run_dir("team/proj/run-zz", path=str(tmp_path / "a"))


def test_a_server_that_never_answers_fails_the_download_within_its_timeout(server: FakeWandb, tmp_path: Path) -> None:
    server.hang = True
    started = time.monotonic()
    with pytest.raises(WandbApiUnreachable, match="within 0.5s"):
        download_wandb_run_dir("team/proj/run-a", path=str(tmp_path / "a"), timeout=0.5)
    assert time.monotonic() - started < 30  # a hang guard: the bound is the 0.5 s timeout


def test_a_sweep_downloads_every_run_and_reports_the_one_that_fails(
    server: FakeWandb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = StoredRun(summary={"loss": 9.0}, files={"bad.bin": b"x"})
    server.stored.update({"team/proj/run-b": broken, "team/proj/run-c": STORED})
    server.sweep_runs["team/proj/swp1"] = ["run-a", "run-b", "run-c"]
    server.broken_files.add("bad.bin")
    with caplog.at_level(logging.WARNING, logger="flyteplugins_wandb"):
        dirs = download_wandb_sweep_dirs("team/proj/swp1", base_path=str(tmp_path / "sweep"))
    assert [Path(d).name for d in dirs] == ["run-a", "run-c"]
    assert json.loads(_read_dir(dirs[1])["summary.json"])["loss"] == 0.25
    assert "run run-b could not be downloaded" in caplog.text and "HTTP 500" in caplog.text


def test_an_unknown_sweep_is_named(server: FakeWandb, tmp_path: Path) -> None:
    with pytest.raises(WandbRunNotFound, match="has no sweep 'nope'"):
        download_wandb_sweep_dirs("team/proj/nope", base_path=str(tmp_path / "sweep"))


@wandb_init(project="proj", entity="team", mode="offline")
@env.task
async def train_then_read_back() -> dict[str, str]:
    run = get_wandb_run()
    assert run is not None
    run.log({"loss": 0.25})
    # The user's code: the current task's run (here the fake server holds a finished copy under its id).
    files = _read_dir(download_wandb_run_dir(path=os.path.join(os.environ["WANDB_DIR"], "back")))
    return {**files, "the run's id": str(run.id)}


def test_the_current_tasks_run_is_downloaded_when_no_run_id_is_given(server: FakeWandb) -> None:
    server.any_run = STORED
    run = flyte.run(train_then_read_back)
    files = run.outputs()[0]
    assert json.loads(files["summary.json"]) == {"loss": 0.25, "_step": 2}
    # The task's own run, in the task's project and entity.
    run_id = files["the run's id"]
    assert server.downloads[0].startswith(f"/files/team/proj/{run_id}/")


@env.task
async def logs_as_flyte_dirs() -> list[str]:
    run_dir = await download_wandb_run_logs("team/proj/run-a")
    sweep_dir = await download_wandb_sweep_logs("team/proj/swp1")
    return [await run_dir.download(), await sweep_dir.download()]


def test_the_log_helpers_return_flyte_dirs_of_the_downloads(server: FakeWandb) -> None:
    server.sweep_runs["team/proj/swp1"] = ["run-a"]
    run_path, sweep_path = flyte.run(logs_as_flyte_dirs).outputs()[0]
    assert json.loads(_read_dir(run_path)["summary.json"])["loss"] == 0.25
    assert "run-a/metrics_history.json" in _read_dir(sweep_path)
