"""Every name the plugin reads from outside itself: run-context keys and environment variables.

Run-context keys travel between tasks in Flyte's ``custom_context`` (a str -> str mapping); the codecs in
``_config`` and ``sweeps._config`` are the only writers and readers of their entries. Environment variables are
read where they are used, always through an injected mapping, never at import time.
"""

from __future__ import annotations

from typing import Final

# Run context (Flyte's custom_context). The keys are shared with Flyte's public W&B plugin (flyteplugins-wandb), so
# that a parent on one plugin and a child on the other read each other's settings: a field both plugins have travels
# under ``wandb_<field>``; further wandb.init keywords travel together in one JSON object, ``wandb_kwargs``; what only
# this plugin has travels under ``_wandb_<field>``, a prefix the public plugin's codec does not read (it turns every
# ``wandb_*`` key into a field of its own and fails on one it does not know).
CONTEXT_PREFIX: Final = "wandb_"
"""The key of a field both plugins have is this prefix plus the field's name."""
PRIVATE_PREFIX: Final = "_wandb_"
"""The key of a field only this plugin has is this prefix plus the field's name."""
INIT_KWARGS_KEY: Final = CONTEXT_PREFIX + "kwargs"
"""Further wandb.init keywords (JSON object), ``notes``, ``job_type`` and ``dir`` among them."""
PARENT_RUN_KEY: Final = PRIVATE_PREFIX + "run_id"
"""The run of the task that launched this one (the public plugin's key for it too)."""
SWEEP_CONTEXT_PREFIX: Final = "wandb_sweep_"
"""The key of a ``SweepConfig`` field both plugins have is this prefix plus the field's name; W&B's other sweep keys
travel together in ``wandb_sweep_kwargs``."""
SWEEP_KWARGS_KEY: Final = SWEEP_CONTEXT_PREFIX + "kwargs"
SWEEP_ID_KEY: Final = PRIVATE_PREFIX + "sweep_id"
"""The id of the sweep the task belongs to (``get_wandb_sweep_id``; the public plugin's key for it too)."""
SWEEP_STOP_KEY: Final = PRIVATE_PREFIX + "sweep_stop"
"""The hyperband bars a trial runs with and the goal they are read against (JSON), for ``sweep_should_stop``."""
SWEEP_HOME_KEY: Final = PRIVATE_PREFIX + "sweep_home"
"""Where the sweep of a ``@wandb_sweep`` driver lives (JSON); never the API key."""

# W&B's own environment variables that the plugin honours.
WANDB_API_KEY: Final = "WANDB_API_KEY"
WANDB_BASE_URL: Final = "WANDB_BASE_URL"
WANDB_IDENTITY_TOKEN_FILE: Final = "WANDB_IDENTITY_TOKEN_FILE"
WANDB_MODE: Final = "WANDB_MODE"
WANDB_DISABLED: Final = "WANDB_DISABLED"
WANDB_PROJECT: Final = "WANDB_PROJECT"
WANDB_ENTITY: Final = "WANDB_ENTITY"
WANDB_RUN_GROUP: Final = "WANDB_RUN_GROUP"
WANDB_JOB_TYPE: Final = "WANDB_JOB_TYPE"
WANDB_DIR: Final = "WANDB_DIR"
WANDB_CONFIG_DIR: Final = "WANDB_CONFIG_DIR"
WANDB_INIT_TIMEOUT: Final = "WANDB_INIT_TIMEOUT"
NETRC: Final = "NETRC"
WANDB_SWEEP_ID: Final = "WANDB_SWEEP_ID"
"""Set by ``wandb.agent`` while it runs a trial, with WANDB_RUN_ID: the trial's sweep and run."""
WANDB_RUN_ID: Final = "WANDB_RUN_ID"

# The distributed launcher's (torchrun / torch elastic) environment of each worker.
RANK: Final = "RANK"
WORLD_SIZE: Final = "WORLD_SIZE"
LOCAL_RANK: Final = "LOCAL_RANK"
LOCAL_WORLD_SIZE: Final = "LOCAL_WORLD_SIZE"
GROUP_RANK: Final = "GROUP_RANK"
GROUP_WORLD_SIZE: Final = "GROUP_WORLD_SIZE"
TORCHELASTIC_RESTART_COUNT: Final = "TORCHELASTIC_RESTART_COUNT"
TORCHELASTIC_RUN_ID: Final = "TORCHELASTIC_RUN_ID"
TORCHELASTIC_USE_AGENT_STORE: Final = "TORCHELASTIC_USE_AGENT_STORE"
TORCH_DISABLE_SHARE_RDZV_TCP_STORE: Final = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
MASTER_ADDR: Final = "MASTER_ADDR"
MASTER_PORT: Final = "MASTER_PORT"
PET_RDZV_ENDPOINT: Final = "PET_RDZV_ENDPOINT"
CUDA_VISIBLE_DEVICES: Final = "CUDA_VISIBLE_DEVICES"

# Flyte's.
FLYTE_CONSOLE_URL: Final = "FLYTE_CONSOLE_URL"
"""The Flyte console's address, for the link back from a run to its action."""
FLYTE_ENDPOINT_OVERRIDE: Final = "_U_EP_OVERRIDE"
"""The endpoint Flyte's pods are given (``dns:///host``), the console's address where FLYTE_CONSOLE_URL is unset."""

# The plugin's own.
MANIFEST_ENV: Final = "FLYTEPLUGINS_WANDB_MANIFEST"
"""A directory where each process records the run it opened (the local launcher reads it back)."""
POD_LEDGER_ENV: Final = "FLYTEPLUGINS_WANDB_POD_LEDGER"
"""Set by a pod for its workers: a directory where they record their runs too, so that the pod saves exactly its own."""
NODE_SERVICE_ENV: Final = "FLYTEPLUGINS_WANDB_NODE_SERVICE"
"""``0``/``false``/``no``/``off`` in the pod: no node service; each worker starts its own W&B service."""
SERVICE_HANDOVER_ENV: Final = "FLYTEPLUGINS_WANDB_SERVICE_HANDOVER"
"""Set by a pod for its workers: the file where it writes, once they are up, the W&B services it started for them
beside the workers' own start (the variables to set or unset, as JSON)."""
REPORT_REFRESH_ENV: Final = "FLYTEPLUGINS_WANDB_REPORT_REFRESH"
"""Seconds between refreshes of the report tab while a task runs (still bounded by their cost); 0 turns them off."""
SAVE_EVERY_ENV: Final = "FLYTEPLUGINS_WANDB_SAVE_EVERY"
"""Seconds between saves of the run files to Flyte storage while a task runs (default 30); 0 turns them off."""
