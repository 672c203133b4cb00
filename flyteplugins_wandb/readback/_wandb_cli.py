"""The ``wandb`` command-line tool beside this interpreter, for reading what wandb wrote locally without importing
wandb (``wandb leet inspect``) and for uploading it (``wandb sync``)."""

from __future__ import annotations

import importlib.util
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


def _wandb_core() -> str | None:
    """The ``wandb-core`` binary of the installed wandb (found without importing wandb), or None."""
    spec = importlib.util.find_spec("wandb")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        core = Path(folder, "bin", "wandb-core")
        if core.is_file():
            return str(core)
    return None


def _inspect_command(cli: str, path: str | os.PathLike[str], flags: tuple[str, ...]) -> list[str]:
    """``wandb leet inspect <flags> <path>``, or the ``wandb-core`` command that front end runs for a run directory
    or ``.wandb`` file: the same output without the front end's Python start-up (about 0.6 s of CPU a call, paid on
    rank 0 at every refresh of the report tab)."""
    resolved = Path(path).resolve()
    run_files = [resolved] if resolved.suffix == ".wandb" else list(resolved.glob("run-*.wandb"))
    core = _wandb_core()
    if core is None or len(run_files) != 1 or not run_files[0].is_file():
        return [cli, "leet", "inspect", *flags, str(path)]
    # As wandb/cli/leet.py builds it for a local run offline (no telemetry upload).
    wandb_dir = str(run_files[0].parents[1])
    return [core, "leet", "inspect", "--no-observability", *flags, "--run-file", str(run_files[0]), wandb_dir]


def leet_inspect(path: str | os.PathLike[str], *flags: str, timeout: float) -> tuple[str | None, str | None]:
    """What ``wandb leet inspect <flags> <path>`` printed, or None and why not (no CLI, a timeout, a failure).
    Never raises: a run that cannot be read must not stop what reads it."""
    cli = wandb_cli()
    if cli is None:
        return None, "the wandb command-line tool was not found"
    try:
        done = subprocess.run(
            _inspect_command(cli, path, flags), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"wandb leet inspect did not answer within {timeout:.0f}s"
    except OSError as e:
        return None, f"cannot run {cli}: {e}"
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return None, f"wandb leet inspect exited {done.returncode}: {detail[-1] if detail else ''}"
    return done.stdout, None
