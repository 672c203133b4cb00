"""One process's run life: open (bounded, retried), expose (``get_wandb_run``), log (``log_reduced``,
``log_artifact``), finish; the writers' order in a shared run; the settings in force; ``wandb.agent`` trials.

May import ``pod``, ``plan`` and ``_keys``; wandb only when a run is really opened.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._agent_trials import plain_function_scope as plain_function_scope
    from ._agent_trials import task_settings_for_agents as task_settings_for_agents
    from ._artifacts import log_artifact as log_artifact
    from ._coordination import elastic_store as elastic_store
    from ._current import get_wandb_run as get_wandb_run
    from ._current import is_leader as is_leader
    from ._current import is_primary as is_primary
    from ._guards import DEFAULT_BASE_URL as DEFAULT_BASE_URL
    from ._guards import ApiKeyRefusedError as ApiKeyRefusedError
    from ._guards import MissingApiKeyError as MissingApiKeyError
    from ._guards import Timeout as Timeout
    from ._guards import api_key as api_key
    from ._guards import bounded as bounded
    from ._guards import require_api_key as require_api_key
    from ._guards import wandb_base_url as wandb_base_url
    from ._in_force import get_wandb_context as get_wandb_context
    from ._in_force import get_wandb_run_dir as get_wandb_run_dir
    from ._init_args import PER_PROCESS_SETTINGS as PER_PROCESS_SETTINGS
    from ._lifecycle import InitOptions as InitOptions
    from ._lifecycle import track as track
    from ._reduce import log_reduced as log_reduced

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
