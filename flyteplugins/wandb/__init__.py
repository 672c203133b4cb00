"""``flyteplugins.wandb``: the import path of Flyte's public W&B plugin (``flyteplugins-wandb``), so that code
written for it runs with only the installed package changed. Every name is the very object that
``flyteplugins_wandb`` exports, imported as lazily as there.

``flyteplugins`` is a namespace shared with Flyte's other plugins (``flyteplugins.pytorch``...): this package ships
no ``flyteplugins/__init__.py``. It cannot be installed beside ``flyteplugins-wandb``, which ships this same path;
importing warns when that distribution is found too.
"""

from typing import TYPE_CHECKING, Any

import flyteplugins_wandb as _impl
from flyteplugins_wandb._compat import warn_if_other_distribution

if TYPE_CHECKING:
    from flyteplugins_wandb import *  # noqa: F403

__all__ = list(_impl.__all__)


def __getattr__(name: str) -> Any:
    if name not in _impl.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(_impl, name)


def __dir__() -> list[str]:
    return list(__all__)


warn_if_other_distribution()
