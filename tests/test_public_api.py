"""The public surface: what is exported, what importing costs, and that it matches the installed wandb."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import wandb

import flyteplugins_wandb
from flyteplugins_wandb.planning._config import WANDB_INIT_KEYWORDS

ROOT = Path(__file__).resolve().parent.parent


def test_the_public_names_are_exactly_these() -> None:
    assert flyteplugins_wandb.__all__ == [
        "AgentPolicy",
        "ApiKeyRefusedError",
        "DistributedInfo",
        "LayoutError",
        "MissingApiKeyError",
        "ParentRun",
        "RankScope",
        "RunMode",
        "RunPlan",
        "SharedWriter",
        "SweepConfig",
        "SweepContext",
        "SweepResult",
        "SweepServerAuthError",
        "SweepServerError",
        "SweepServerUnreachable",
        "TopologyError",
        "Trial",
        "Wandb",
        "WandbApiAuthError",
        "WandbApiError",
        "WandbApiUnreachable",
        "WandbConfig",
        "WandbContext",
        "WandbRunNotFound",
        "WandbSweep",
        "download_wandb_run_dir",
        "download_wandb_run_logs",
        "download_wandb_sweep_dirs",
        "download_wandb_sweep_logs",
        "get_distributed_info",
        "get_wandb_context",
        "get_wandb_run",
        "get_wandb_run_dir",
        "get_wandb_sweep_context",
        "get_wandb_sweep_id",
        "is_leader",
        "is_primary",
        "log_artifact",
        "log_reduced",
        "plan",
        "run_sweep",
        "sweep_should_stop",
        "wandb_config",
        "wandb_init",
        "wandb_sweep",
        "wandb_sweep_config",
    ]


def test_all_is_sorted() -> None:
    assert flyteplugins_wandb.__all__ == sorted(flyteplugins_wandb.__all__)


def test_every_public_name_exists() -> None:
    missing = [name for name in flyteplugins_wandb.__all__ if not hasattr(flyteplugins_wandb, name)]
    assert missing == []


def test_importing_the_package_imports_neither_wandb_nor_torch() -> None:
    code = (
        "import json, sys; import flyteplugins_wandb; "
        "print(json.dumps(sorted(m for m in ('wandb', 'torch') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []


def test_the_known_wandb_init_keywords_are_those_of_the_installed_wandb() -> None:
    assert set(inspect.signature(wandb.init).parameters) == WANDB_INIT_KEYWORDS


# Strict, but without analysing flyte, wandb and torch (tens of seconds each run): the types under test are the
# package's own. Unused ignores are not reported, since skipping those packages makes some of the package's unused.
MYPY_CONFIG = """\
[mypy]
strict = True
ignore_missing_imports = True
warn_unused_ignores = False

[mypy-flyte.*,flyteplugins.*,wandb.*,torch.*]
follow_imports = skip
"""


WRONG = """\
from collections.abc import Callable
from typing import assert_type
from flyteplugins_wandb import wandb_init
def train(steps: int, /) -> str:
    return str(steps)
assert_type(wandb_init(train), Callable[[str], str])
"""
"""A module whose type check must fail: assert_type catches a wrong callable type."""


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One strict mypy run (seconds) over tests/typing/check_types.py and :data:`WRONG`; their errors, by file."""
    tmp = tmp_path_factory.mktemp("mypy")
    config, wrong = tmp / "mypy.ini", tmp / "wrong.py"
    config.write_text(MYPY_CONFIG)
    wrong.write_text(WRONG)
    checked = ROOT / "tests" / "typing" / "check_types.py"
    # From the repository root, so that the package is found as the source tree.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental", str(checked), str(wrong)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode in (0, 1) and "Found" in result.stdout, result.stdout + result.stderr
    errors: dict[str, list[str]] = {"check_types.py": [], "wrong.py": []}
    for line in result.stdout.splitlines():
        if ": error:" in line:
            errors[Path(line.split(":", 1)[0]).name].append(line)
    return errors


def test_wandb_init_preserves_the_decorated_callables_type_under_mypy_strict(mypy_errors: dict[str, list[str]]) -> None:
    assert mypy_errors["check_types.py"] == []


def test_the_type_check_fails_when_a_type_is_not_preserved(mypy_errors: dict[str, list[str]]) -> None:
    # The check above can fail: the same run finds the wrong type.
    assert len(mypy_errors["wrong.py"]) == 1 and "[assert-type]" in mypy_errors["wrong.py"][0], mypy_errors


def _package_imports() -> dict[str, set[str]]:
    """Each module of the package (dotted, relative to it) and the package modules it imports, from its source."""
    import ast

    root = ROOT / "flyteplugins_wandb"
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__") or "__init__"
        package = parts[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(package[: len(package) - node.level + 1])
                if node.module:
                    found.add(".".join([*base, node.module]))
                else:  # `from .. import _keys`: the submodules named
                    found.update(".".join([*base, alias.name]) for alias in node.names)
        graph[name] = found
    return graph


# The parts, bottom up: each may import only the parts before it (and the root's own modules, `_keys`, `_lazy`).
PARTS = ("planning", "pod", "run", "readback", "task", "sweeps", "local")


def _part(module: str) -> str:
    head = module.split(".")[0]
    return head if head in PARTS else "root"


def test_each_part_imports_only_the_parts_below_it() -> None:
    graph = _package_imports()
    assert {_part(m) for m in graph} == {*PARTS, "root"}, "a part has no modules: update PARTS"
    upward = {
        name: sorted(d for d in deps if _part(d) != "root" and PARTS.index(_part(d)) > PARTS.index(_part(name)))
        for name, deps in graph.items()
        if _part(name) != "root"
    }
    assert {k: v for k, v in upward.items() if v} == {}


def test_the_roots_helper_modules_import_no_part() -> None:
    graph = _package_imports()
    root_modules = {
        name: deps for name, deps in graph.items() if _part(name) == "root" and name not in ("__init__", "sync")
    }
    assert root_modules, "no root modules found"
    leaks = {name: sorted(d for d in deps if _part(d) != "root") for name, deps in root_modules.items()}
    assert {k: v for k, v in leaks.items() if v} == {}


def test_no_module_reaches_into_another_parts_private_modules() -> None:
    graph = _package_imports()
    reaching = {
        name: sorted(d for d in deps if "._" in d and _part(d) != "root" and _part(d) != _part(name))
        for name, deps in graph.items()
    }
    assert {k: v for k, v in reaching.items() if v} == {}


@pytest.mark.parametrize("part", ["", *PARTS])
def test_every_name_a_part_exports_resolves(part: str) -> None:
    module = importlib.import_module("flyteplugins_wandb" + (f".{part}" if part else ""))
    exported = getattr(module, "__all__", None)
    assert exported, f"{module.__name__} exports nothing"
    assert [name for name in exported if getattr(module, name, None) is None] == []


def test_importing_the_package_imports_nothing_beyond_flyte_but_its_lazy_root() -> None:
    code = "import json, sys; {}; print(json.dumps(sorted(sys.modules)))"

    def imported(statement: str) -> set[str]:
        out = subprocess.run(
            [sys.executable, "-c", code.format(statement)], capture_output=True, text=True, check=True, cwd=ROOT
        )
        return set(json.loads(out.stdout.splitlines()[-1]))

    added = imported("import flyte; import flyteplugins_wandb") - imported("import flyte")
    assert added == {"flyteplugins_wandb", "flyteplugins_wandb._lazy"}


def test_the_package_has_no_import_cycles() -> None:
    graph = _package_imports()

    def visit(name: str, path: tuple[str, ...]) -> None:
        for dep in sorted(graph.get(name, ())):
            if dep in path:
                raise AssertionError(f"import cycle: {' -> '.join((*path, dep))}")
            # A package's __init__ is imported whenever one of its modules is: follow both.
            visit(dep, (*path, dep))

    for module in sorted(graph):
        visit(module, (module,))


def test_the_readme_module_map_lists_every_module_of_the_package() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Where things live", 1)[1].split("```", 2)[1]
    listed: set[str] = set()
    folder = ""
    for line in block.splitlines():
        entry = line.strip().split(" ", 1)[0]
        if not entry or entry == "flyteplugins_wandb/":
            continue
        if entry.endswith("/"):
            folder = entry
        else:
            listed.add((folder if line.startswith("    ") else "") + entry)
    actual = {str(p.relative_to(ROOT / "flyteplugins_wandb")) for p in (ROOT / "flyteplugins_wandb").rglob("*.py")}
    actual = {name for name in actual if not name.endswith("/__init__.py")}
    folders = {name.split("/")[0] + "/" for name in actual if "/" in name}
    assert folders == {f"{part}/" for part in PARTS}
    assert all(f"  {folder} " in block for folder in folders)
    assert listed == actual
