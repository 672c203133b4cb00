"""Weights & Biases tracking for Flyte 2 tasks, including multi-node ``Elastic`` (torchrun) training.

The public names, each imported from its part the first time it is read (see ``_lazy``): a process that imports
the plugin and opens no run pays next to nothing, and never imports wandb.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from .planning import DistributedInfo as DistributedInfo
    from .planning import LayoutError as LayoutError
    from .planning import ParentRun as ParentRun
    from .planning import RankScope as RankScope
    from .planning import RunMode as RunMode
    from .planning import RunPlan as RunPlan
    from .planning import SharedWriter as SharedWriter
    from .planning import TopologyError as TopologyError
    from .planning import WandbConfig as WandbConfig
    from .planning import WandbContext as WandbContext
    from .planning import get_distributed_info as get_distributed_info
    from .planning import plan as plan
    from .planning import wandb_config as wandb_config
    from .readback import WandbApiAuthError as WandbApiAuthError
    from .readback import WandbApiError as WandbApiError
    from .readback import WandbApiUnreachable as WandbApiUnreachable
    from .readback import WandbRunNotFound as WandbRunNotFound
    from .readback import download_wandb_run_dir as download_wandb_run_dir
    from .readback import download_wandb_run_logs as download_wandb_run_logs
    from .run import ApiKeyRefusedError as ApiKeyRefusedError
    from .run import MissingApiKeyError as MissingApiKeyError
    from .run import get_wandb_context as get_wandb_context
    from .run import get_wandb_run as get_wandb_run
    from .run import get_wandb_run_dir as get_wandb_run_dir
    from .run import is_leader as is_leader
    from .run import is_primary as is_primary
    from .run import log_artifact as log_artifact
    from .run import log_reduced as log_reduced
    from .sweeps import AgentPolicy as AgentPolicy
    from .sweeps import SweepConfig as SweepConfig
    from .sweeps import SweepContext as SweepContext
    from .sweeps import SweepResult as SweepResult
    from .sweeps import SweepServerAuthError as SweepServerAuthError
    from .sweeps import SweepServerError as SweepServerError
    from .sweeps import SweepServerUnreachable as SweepServerUnreachable
    from .sweeps import Trial as Trial
    from .sweeps import WandbSweep as WandbSweep
    from .sweeps import download_wandb_sweep_dirs as download_wandb_sweep_dirs
    from .sweeps import download_wandb_sweep_logs as download_wandb_sweep_logs
    from .sweeps import get_wandb_sweep_context as get_wandb_sweep_context
    from .sweeps import get_wandb_sweep_id as get_wandb_sweep_id
    from .sweeps import run_sweep as run_sweep
    from .sweeps import sweep_should_stop as sweep_should_stop
    from .sweeps import wandb_sweep as wandb_sweep
    from .sweeps import wandb_sweep_config as wandb_sweep_config
    from .task import Wandb as Wandb
    from .task import wandb_init as wandb_init

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
