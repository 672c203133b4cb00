"""Living beside Flyte's public W&B plugin: the distribution that ships the same ``flyteplugins.wandb`` path."""

from __future__ import annotations

import glob
import os
import sys
import warnings
from collections.abc import Iterable
from typing import Final

__all__ = ["OTHER_DISTRIBUTION", "other_distribution_version", "warn_if_other_distribution"]

OTHER_DISTRIBUTION: Final = "flyteplugins-wandb"


def other_distribution_version(search_path: Iterable[str] | None = None) -> str | None:
    """The installed version of ``flyteplugins-wandb``, or None. Reads the installers' ``.dist-info`` folder names
    on the import path: ``importlib.metadata`` would cost every importing process tens of milliseconds."""
    # Installers normalise the name to `flyteplugins_wandb-<version>.dist-info`; ours is
    # `flyteplugins_wandb_distributed-...`, which this pattern cannot match.
    for entry in sys.path if search_path is None else search_path:
        for found in glob.glob(os.path.join(glob.escape(entry or "."), "flyteplugins_wandb-*.dist-info")):
            return os.path.basename(found)[len("flyteplugins_wandb-") : -len(".dist-info")]
    return None


def warn_if_other_distribution(search_path: Iterable[str] | None = None) -> bool:
    """Warn (once per process: called when ``flyteplugins.wandb`` is first imported) when ``flyteplugins-wandb`` is
    installed too. Both write ``flyteplugins/wandb/``, so whichever was installed last answers that import path,
    and uninstalling one breaks the other. Returns whether it warned."""
    version = other_distribution_version(search_path)
    if version is None:
        return False
    warnings.warn(
        f"{OTHER_DISTRIBUTION} {version} is installed beside flyteplugins-wandb-distributed: both provide "
        f"`flyteplugins.wandb`, so that import gives whichever was installed last. Uninstall one "
        f"(`pip uninstall {OTHER_DISTRIBUTION}`), then reinstall the one you keep.",
        RuntimeWarning,
        stacklevel=3,
    )
    return True
