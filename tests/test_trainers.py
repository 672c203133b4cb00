"""The trainers people use log into the layout's runs through their own W&B loggers: PyTorch Lightning's
``WandbLogger``, Hugging Face's ``Trainer(report_to="wandb")``, Accelerate's ``Accelerator(log_with="wandb")``
(whose ``end_training()`` finishes the run itself). Real training on CPU with tiny models, W&B offline, read back
from the files W&B wrote; each trainer once in a plain task and once in a 1 x 2 Elastic task (gloo).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flyte
import pytest
import trainer_tasks as tasks
from readback import OfflineRun, inspect_run, offline_runs

from flyteplugins_wandb.local import LocalElasticResult, run_elastic_locally

# Each trainer's loss as it logs it, and a config entry it writes, if any.
METRICS = {"lightning": "lightning_loss", "hugging_face": "train/loss", "accelerate": "accelerate_loss"}
CONFIG = {"lightning": None, "hugging_face": ("num_hidden_layers", 1), "accelerate": ("accelerate_lr", 0.1)}
RUN_NAME = "r9"
ACTION = "a1"
B = f"{RUN_NAME}-{ACTION}"
PAGES = f"https://wandb.ai/{tasks.ENTITY}/{tasks.PROJECT}"


def _link(task: Any, run_name: str, action_name: str) -> str:
    (link,) = task.links
    return str(link.get_link(run_name, "p", "d", {}, "", action_name, ""))


def _check_trainer_run(written: OfflineRun, trainer: str) -> None:
    assert len(written.metric(METRICS[trainer])) == tasks.STEPS, f"{trainer}: a loss per step in the task's run"
    if CONFIG[trainer] is not None:
        key, value = CONFIG[trainer]
        assert written.config[key] == value, f"{trainer}: its config is in the task's run"
    assert (written.project, written.entity) == (tasks.PROJECT, tasks.ENTITY), "the task's project, not the trainer's"
    assert written.state == "finished"


@pytest.mark.filterwarnings("ignore::UserWarning")  # the trainers' own advice (Lightning: "reusing the wandb run")
@pytest.mark.parametrize("trainer", sorted(tasks.TRAINERS))
def test_a_trainer_in_a_plain_task_logs_into_the_tasks_run_and_makes_no_other(
    trainer: str, wandb_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a run the trainer opened itself would land in its directory ("."): here too
    where = json.loads(flyte.run(tasks.plain_trainer, trainer=trainer, out_dir=str(tmp_path)).outputs()[0])

    (written,) = offline_runs(tmp_path)  # WANDB_DIR is under tmp_path
    assert _link(tasks.plain_trainer, where["run_name"], where["action_name"]).endswith(f"/runs/{written.run_id}")
    _check_trainer_run(written, trainer)


@dataclass(frozen=True)
class Launch:
    trainer: str
    result: LocalElasticResult
    files: list[OfflineRun]


# Lightning's Elastic launch is examples/lightning_elastic.py's, checked by tests/test_examples.py (one run, rank
# 0's, and no run of the trainer's own); launching it here too would only repeat that.
@pytest.fixture(scope="module", params=sorted(set(tasks.TRAINERS) - {"lightning"}))
def launched(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Launch:
    """One 1 x 2 launch per trainer (``auto``: rank 0 has the run), read back once for the tests below."""
    root = tmp_path_factory.mktemp(f"trainer-{request.param}")
    env = {"WANDB_DIR": str(root / "wandb"), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env["WANDB_DISABLE_GIT"] = "true"
    for name in ("wandb", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        (root / name).mkdir()
        if name != "wandb":
            env[name] = str(root / name)
    result = run_elastic_locally(
        tasks.elastic_trainer,
        nproc_per_node=2,
        run_name=RUN_NAME,
        action_name=ACTION,
        env=env,
        trainer=request.param,
        out_dir=str(root),
    )
    files = sorted((root / "wandb").rglob("offline-run-*/run-*.wandb"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        return Launch(request.param, result, list(pool.map(inspect_run, files)))


@pytest.mark.elastic
def test_a_trainer_in_an_elastic_task_logs_into_the_layouts_run_and_makes_no_other(launched: Launch) -> None:
    assert [f.run_id for f in launched.files] == [B], "one run, the layout's, and no run of the trainer's own"
    assert [rec.rank for rec in launched.result.runs] == [0]
    _check_trainer_run(launched.files[0], launched.trainer)


@pytest.mark.elastic
def test_the_links_and_report_of_a_trainers_elastic_task_show_its_run(launched: Launch) -> None:
    assert [url for _, url in launched.result.links] == [f"{PAGES}/runs/{B}"]
    assert launched.result.report is not None and B in launched.result.report, "the report tab shows the run"
    assert METRICS[launched.trainer] in launched.result.report, "with the trainer's metric"
    assert launched.result.run_files, "the offline run files were saved"
