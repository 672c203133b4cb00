"""Living beside Flyte's public W&B plugin: the distribution that ships the same ``flyteplugins.wandb`` path."""

from __future__ import annotations

import importlib.metadata
import warnings
from typing import Final

__all__ = ["OTHER_DISTRIBUTION", "warn_if_other_distribution"]

OTHER_DISTRIBUTION: Final = "flyteplugins-wandb"


def warn_if_other_distribution() -> bool:
    """Warn (once per process: called when the package is first imported) when ``flyteplugins-wandb`` is installed
    too. Both write ``flyteplugins/wandb/``, so whichever was installed last answers that import path, and
    uninstalling one breaks the other. Returns whether it warned."""
    try:
        version = importlib.metadata.version(OTHER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return False
    warnings.warn(
        f"{OTHER_DISTRIBUTION} {version} is installed beside flyteplugins-wandb-distributed: both provide "
        f"`flyteplugins.wandb`, so that import gives whichever was installed last. Uninstall one "
        f"(`pip uninstall {OTHER_DISTRIBUTION}`), then reinstall the one you keep.",
        RuntimeWarning,
        stacklevel=3,
    )
    return True
