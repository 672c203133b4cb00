"""Fixtures shared by every test: an isolated W&B environment (offline, temporary directories) and a clean slate
of process-global state after each test; and how the suite is spread over pytest-xdist's workers.

The suite runs on three xdist workers (``-n 3 --dist loadgroup`` in pyproject's addopts). A test must therefore not
depend on another test having run in the same process, and must look only at what it started itself (its own
temporary directories, its own launch's processes: see ``LAUNCH_MARKER`` in elastic_tasks.py), never at the whole
machine. Tests that share one expensive launch through a module- or session-scoped fixture are kept on one worker
automatically (below), so the launch happens once.

A new elastic test, to stay fast and safe in parallel: mark it ``@pytest.mark.elastic``; if what it asserts is a
fact about a launch of one of the spec-table layouts, read the session's ``layout_launch`` rather than launching
again; if several tests assert facts about one launch of its own, launch it once in a module-scoped fixture (with
``layout_launches.isolated_wandb_env``) and let each test read it; find its own processes by an environment
marker or as descendants, take ports by binding port 0, and write only under its own temporary directories.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from layout_launches import LayoutLaunch

_SHARED_SCOPES = ("class", "module", "package", "session")

# Elastic launches run with a store per restart, as the README tells users whose jobs must survive a dead worker:
# a worker that fails for a reason of this machine's (a loaded CPU) is then restarted by torch as it would be,
# instead of meeting torch's own restart bug with its default store and hanging until the test's timeout (README,
# "A worker that dies"). The spec-table layouts (tests/layout_launches.py) keep torch's default, so the plugin's
# code for both stores runs.
os.environ.setdefault("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")

# Every launch starts fresh interpreters (agents, workers, examples) that import this package and the test tasks:
# with PYTHONDONTWRITEBYTECODE set (some CI images set it) each of them compiles those sources again. The caches
# go to the __pycache__ folders that .gitignore leaves out.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start run_elastic_locally's fork server (where every launch's agents start from) in each test process, before
    any test changes the environment: a test's PYTHONPATH and fault hooks (tests/faults) would otherwise be in the
    server for every later launch of that process. It starts with ``STALE_MARKER`` set, which is gone by any launch
    (test_local_launcher.py checks that the agents get their launch's environment, not the server's)."""
    if getattr(session.config, "workerinput", None) is None and session.config.getoption("numprocesses", None):
        return  # pytest-xdist's controller: it launches nothing
    from multiprocessing import forkserver

    from elastic_tasks import STALE_MARKER

    from flyteplugins_wandb.local._launcher import _agent_processes

    os.environ[STALE_MARKER] = "set when the fork server started"
    try:
        _agent_processes()
        forkserver.ensure_running()
    finally:
        del os.environ[STALE_MARKER]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests of one shared launch on one xdist worker, and start the long tests first.

    Every test that uses a fixture of this project with a scope wider than the test (one launch whose result
    several tests read) gets an ``xdist_group`` mark named after that fixture (and its parameter): with
    ``--dist loadgroup`` the group runs on one worker, so the fixture runs once, not once per worker. Elastic tests
    (real worker processes, seconds to minutes each) go before the others, so that the quick tests fill in at the
    end and neither worker is left alone with a long test while the other is idle.
    """
    for item in items:
        groups = sorted(_shared_fixture_groups(item, config.rootpath))
        if groups:
            item.add_marker(pytest.mark.xdist_group("+".join(groups)))
            if getattr(config.option, "loadgroup", False):
                _name_group_in_node_id(item, "+".join(groups))
    items.sort(key=lambda item: item.get_closest_marker("elastic") is None)  # stable: collection order otherwise


def _name_group_in_node_id(item: pytest.Item, group: str) -> None:
    """Append ``@group`` to the test's id, which is how loadgroup's scheduler sees a group.

    pytest-xdist 3.8 does this for ``xdist_group`` marks by setting ``item._nodeid``, which pytest 9.2 no longer
    reads (``item.nodeid`` comes from ``item._id``): without this, every test would be scheduled alone and each
    worker would run a shared launch again. The group's name must hold no ``]`` (xdist would take it for a
    parameter); a later ``@group`` from a fixed xdist would name the same group.
    """
    if "@" in item.nodeid.rpartition("]")[2] or not hasattr(item, "_id"):
        return  # named already, or a pytest before 9.2, where xdist's own renaming works
    from _pytest.nodeid import coerce_node_id

    item._id = coerce_node_id(f"{item.nodeid}@{group}")


def _shared_fixture_groups(item: pytest.Item, rootpath: Path) -> set[str]:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    callspec = getattr(item, "callspec", None)
    groups = set()
    for name in info.names_closure:
        for fixturedef in info.name2fixturedefs.get(name, ()):
            if fixturedef.scope in _SHARED_SCOPES and _is_project_fixture(fixturedef.func, rootpath):
                groups.add(f"{fixturedef.baseid}:{name}{_param_key(callspec, name)}")
    return groups


def _is_project_fixture(func: Any, rootpath: Path) -> bool:
    """Whether a fixture is this project's, not a plugin's (tmp_path_factory, worker_id...: nothing to share)."""
    code = getattr(func, "__code__", None)
    source = Path(code.co_filename) if code is not None else None
    return source is not None and source.is_relative_to(rootpath) and "site-packages" not in source.parts


def _param_key(callspec: Any, name: str) -> str:
    """The fixture's parameter as part of a group name: a string parameter by value, so that tests of several
    modules asking for the same launch (``layout_launch``) share one group; any other by its index."""
    if callspec is None or name not in callspec.params:
        return ""
    param = callspec.params[name]
    return f"={param}" if isinstance(param, str) else f"={callspec.indices[name]}"


_LAYOUT_LAUNCHES: dict[str, LayoutLaunch] = {}


@pytest.fixture(scope="session")
def layout_launch(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LayoutLaunch:
    """The one launch of a layout of the spec tables in this session (tests/layout_launches.py); ask for it with
    ``@pytest.mark.parametrize("layout_launch", ["1x2-new"], indirect=True)``."""
    from layout_launches import launch_layout  # elastic tasks: imported only where launched

    name: str = request.param
    # pytest sets a parametrized fixture up again when tests of another parameter ran in between: the launch is
    # kept for the process instead, so it runs once per worker whatever the order.
    if name not in _LAYOUT_LAUNCHES:
        _LAYOUT_LAUNCHES[name] = launch_layout(name, tmp_path_factory.mktemp(f"layout-{name}"))
    return _LAYOUT_LAUNCHES[name]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Delete the run files the shared launches saved (``LocalElasticResult.run_files`` are the caller's)."""
    for launch in _LAYOUT_LAUNCHES.values():
        for path in launch.result.run_files:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """W&B offline, writing under this test's tmp_path; WANDB_* from the caller's shell never leaks in.

    Yields the WANDB_DIR. The whole of os.environ is restored afterwards, since Elastic's ``pre()`` and wandb
    itself write into it.
    """
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith("WANDB_") or key in {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK"}:
            monkeypatch.delenv(key)
    wandb_dir = tmp_path / "wandb-dir"
    wandb_dir.mkdir()
    for name, sub in (("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"), ("WANDB_DATA_DIR", "data")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    yield wandb_dir
    _finish_stray_wandb_runs()
    os.environ.clear()
    os.environ.update(saved)


def _finish_stray_wandb_runs() -> None:
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is None:
        return
    if wandb.run is not None:
        wandb.run.finish()
    # wandb's process-wide setup caches WANDB_DIR and friends: tear it down so the next test's tmp dirs apply.
    wandb.teardown()
