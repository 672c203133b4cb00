"""Weights & Biases tracking for Flyte 2 tasks, including multi-node ``Elastic`` (torchrun) training."""

from ._artifacts import log_artifact
from ._compat import warn_if_other_distribution
from ._config import WandbConfig, WandbContext, wandb_config
from ._current import get_wandb_run, is_leader, is_primary
from ._decorator import wandb_init
from ._downloads import download_wandb_run_dir, download_wandb_run_logs
from ._guards import MissingApiKeyError
from ._in_force import get_wandb_context, get_wandb_run_dir
from ._links import Wandb
from ._options import RankScope, RunMode
from ._plan import LayoutError, ParentRun, RunPlan, SharedWriter, plan
from ._reduce import log_reduced
from ._topology import DistributedInfo, TopologyError, get_distributed_info
from ._wandb_api import WandbApiAuthError, WandbApiError, WandbApiUnreachable, WandbRunNotFound
from .sweeps import (
    AgentPolicy,
    SweepConfig,
    SweepContext,
    SweepResult,
    SweepServerAuthError,
    SweepServerError,
    SweepServerUnreachable,
    Trial,
    WandbSweep,
    download_wandb_sweep_dirs,
    download_wandb_sweep_logs,
    get_wandb_sweep_context,
    get_wandb_sweep_id,
    run_sweep,
    sweep_should_stop,
    wandb_sweep,
    wandb_sweep_config,
)

__all__ = [
    "AgentPolicy",
    "DistributedInfo",
    "LayoutError",
    "MissingApiKeyError",
    "ParentRun",
    "RankScope",
    "RunMode",
    "RunPlan",
    "SharedWriter",
    "SweepConfig",
    "SweepContext",
    "SweepResult",
    "SweepServerAuthError",
    "SweepServerError",
    "SweepServerUnreachable",
    "TopologyError",
    "Trial",
    "Wandb",
    "WandbApiAuthError",
    "WandbApiError",
    "WandbApiUnreachable",
    "WandbConfig",
    "WandbContext",
    "WandbRunNotFound",
    "WandbSweep",
    "download_wandb_run_dir",
    "download_wandb_run_logs",
    "download_wandb_sweep_dirs",
    "download_wandb_sweep_logs",
    "get_distributed_info",
    "get_wandb_context",
    "get_wandb_run",
    "get_wandb_run_dir",
    "get_wandb_sweep_context",
    "get_wandb_sweep_id",
    "is_leader",
    "is_primary",
    "log_artifact",
    "log_reduced",
    "plan",
    "run_sweep",
    "sweep_should_stop",
    "wandb_config",
    "wandb_init",
    "wandb_sweep",
    "wandb_sweep_config",
]

warn_if_other_distribution()
