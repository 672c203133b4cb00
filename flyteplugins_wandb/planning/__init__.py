"""The pure core: topology in, frozen plan out. ``DistributedInfo`` from the launcher's environment,
``WandbConfig`` and its exact run-context codec, the precedence of settings (decorator > run context > ``WANDB_*`` >
defaults) into one ``Layout``, and ``plan``: every run-id, group and shared-writer rule, and the link targets.

Imports neither wandb nor flyte, and nothing of the package but ``_keys``: every other part builds on it.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._config import INIT_FIELDS as INIT_FIELDS
    from ._config import RESERVED_INIT_KEYWORDS as RESERVED_INIT_KEYWORDS
    from ._config import TRIAL_FIELDS as TRIAL_FIELDS
    from ._config import USER_FIELDS as USER_FIELDS
    from ._config import WANDB_INIT_KEYWORDS as WANDB_INIT_KEYWORDS
    from ._config import ContextEntries as ContextEntries
    from ._config import WandbConfig as WandbConfig
    from ._config import WandbContext as WandbContext
    from ._config import cleared as cleared
    from ._config import decode_config as decode_config
    from ._config import wandb_config as wandb_config
    from ._options import RankScope as RankScope
    from ._options import RunMode as RunMode
    from ._options import check_choice as check_choice
    from ._options import check_seconds as check_seconds
    from ._plan import LayoutError as LayoutError
    from ._plan import LinkTarget as LinkTarget
    from ._plan import ParentRun as ParentRun
    from ._plan import RunPlan as RunPlan
    from ._plan import SharedWriter as SharedWriter
    from ._plan import base_id as base_id
    from ._plan import link_target as link_target
    from ._plan import plan as plan
    from ._resolve import DEFAULT_HOST as DEFAULT_HOST
    from ._resolve import Resolved as Resolved
    from ._resolve import resolve as resolve
    from ._resolve import resolve_layout as resolve_layout
    from ._topology import DistributedInfo as DistributedInfo
    from ._topology import TopologyError as TopologyError
    from ._topology import elastic_node_count as elastic_node_count
    from ._topology import get_distributed_info as get_distributed_info

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
