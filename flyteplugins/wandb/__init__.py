"""``flyteplugins.wandb``: the import path of Flyte's public W&B plugin (``flyteplugins-wandb``), so that code
written for it runs with only the installed package changed. Every name is the very object that
``flyteplugins_wandb`` exports.

``flyteplugins`` is a namespace shared with Flyte's other plugins (``flyteplugins.pytorch``...): this package ships
no ``flyteplugins/__init__.py``. It cannot be installed beside ``flyteplugins-wandb``, which ships this same path;
importing warns when that distribution is found too.
"""

from flyteplugins_wandb import *  # noqa: F403
from flyteplugins_wandb import __all__ as __all__
