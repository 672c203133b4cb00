"""Hyperparameter sweeps as Flyte tasks: a W&B sweep server's agents online, a local engine offline.

- ``_config``: the validated sweep configuration and its run-context codec;
- ``_trials``: trials and results, shared by the engine and the agents;
- ``_engine``: the offline engine (grid, random, bayes via optuna, hyperband), with a JSON state file;
- ``_server``: the bounded client of W&B's sweep API; ``_agent``: agents that run server trials as Flyte tasks;
- ``_run``: ``run_sweep`` and what a trial reads of its sweep; ``_decorator``: ``@wandb_sweep``; ``_link``: its link.
"""

from ._agent import AgentPolicy
from ._config import SweepConfig, SweepContext, wandb_sweep_config
from ._decorator import wandb_sweep
from ._downloads import download_wandb_sweep_dirs, download_wandb_sweep_logs
from ._link import WandbSweep
from ._run import get_wandb_sweep_context, get_wandb_sweep_id, run_sweep, sweep_should_stop
from ._server import SweepServerAuthError, SweepServerError, SweepServerUnreachable
from ._trials import SweepResult, Trial, TrialStatus

__all__ = [
    "AgentPolicy",
    "SweepConfig",
    "SweepContext",
    "SweepResult",
    "SweepServerAuthError",
    "SweepServerError",
    "SweepServerUnreachable",
    "Trial",
    "TrialStatus",
    "WandbSweep",
    "download_wandb_sweep_dirs",
    "download_wandb_sweep_logs",
    "get_wandb_sweep_context",
    "get_wandb_sweep_id",
    "run_sweep",
    "sweep_should_stop",
    "wandb_sweep",
    "wandb_sweep_config",
]
