"""On two xdist workers, a launch that several tests share through a module- or session-scoped fixture still runs
once: tests/conftest.py keeps the tests that read it on one worker (see its docstring)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SUITE_CONFTEST = Path(__file__).resolve().parent / "conftest.py"

# The suite's scheduling hook alone (not its fixtures), and a session-scoped launch that two modules ask for.
CONFTEST = """
import importlib.util
import os
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("suite_conftest", SUITE_CONFTEST)
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)
pytest_collection_modifyitems = _suite.pytest_collection_modifyitems


def launch(what: str) -> str:
    with Path(os.environ["LAUNCH_LOG"]).open("a") as f:
        f.write(what + "\\n")
    return what


@pytest.fixture(scope="session")
def layout(request: pytest.FixtureRequest) -> str:
    return launch("layout-" + request.param)
"""

SHARED = """
import pytest
from conftest import launch


@pytest.fixture(scope="module")
def module_launch() -> str:
    return launch("module")


@pytest.mark.parametrize("n", range(6))
def test_reads_the_module_launch(module_launch: str, n: int) -> None:
    assert module_launch == "module"


@pytest.mark.parametrize("n", range(6))
def test_independent(n: int) -> None:
    assert n >= 0


@pytest.mark.parametrize("layout", ["a", "b"], indirect=True)
@pytest.mark.parametrize("n", range(3))
def test_reads_a_layout(layout: str, n: int) -> None:
    assert layout.startswith("layout-")
"""

OTHER = """
import pytest


@pytest.mark.parametrize("layout", ["a"], indirect=True)
def test_reads_layout_a_from_another_module(layout: str) -> None:
    assert layout == "layout-a"
"""


def test_a_shared_launch_runs_once_when_its_tests_run_on_two_workers(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST.replace("SUITE_CONFTEST", repr(str(SUITE_CONFTEST))))
    (tmp_path / "test_shared.py").write_text(SHARED)
    (tmp_path / "test_other.py").write_text(OTHER)
    log = tmp_path / "launches.log"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup"],
        cwd=tmp_path,
        env={**os.environ, "LAUNCH_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "19 passed" in done.stdout
    launches = sorted(log.read_text().split())
    assert launches == ["layout-a", "layout-b", "module"], "each shared launch ran once, on one worker"
