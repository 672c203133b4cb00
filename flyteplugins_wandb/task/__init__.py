"""Flyte's surface: ``@wandb_init`` (validation at decoration time, the body's wrappers), the pod's execute
hook around an Elastic launch, the ``Wandb`` links, where W&B pages are (one host rule), and the report tab's life
in a task.

May import ``readback``, ``run``, ``pod``, ``plan`` and ``_keys``.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._decorator import wandb_init as wandb_init
    from ._links import DEFAULT_PROJECT as DEFAULT_PROJECT
    from ._links import ICON as ICON
    from ._links import Wandb as Wandb
    from ._links import link_project as link_project
    from ._links import safe_link as safe_link
    from ._pod import POD_OPTIONS as POD_OPTIONS
    from ._task_wrap import task_and_function as task_and_function
    from ._task_wrap import wrap_body as wrap_body
    from ._web import link_entity as link_entity
    from ._web import web_host as web_host

__all__, __getattr__, __dir__ = lazy_exports(__name__, __file__)
