"""The ``wandb`` command-line tool beside this interpreter, for reading what wandb wrote locally without importing
wandb (``wandb leet inspect``) and for uploading it (``wandb sync``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["leet_inspect", "wandb_cli"]


def wandb_cli() -> str | None:
    """The CLI of the wandb installed next to this interpreter, not whichever ``wandb`` is first on PATH."""
    beside = Path(sys.executable).with_name("wandb")
    return str(beside) if beside.exists() else shutil.which("wandb")


def leet_inspect(path: str | os.PathLike[str], *flags: str, timeout: float) -> tuple[str | None, str | None]:
    """What ``wandb leet inspect <flags> <path>`` printed, or None and why not (no CLI, a timeout, a failure).
    Never raises: a run that cannot be read must not stop what reads it."""
    cli = wandb_cli()
    if cli is None:
        return None, "the wandb command-line tool was not found"
    try:
        done = subprocess.run(
            [cli, "leet", "inspect", *flags, str(path)], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"wandb leet inspect did not answer within {timeout:.0f}s"
    except OSError as e:
        return None, f"cannot run {cli}: {e}"
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return None, f"wandb leet inspect exited {done.returncode}: {detail[-1] if detail else ''}"
    return done.stdout, None
