"""Lazy exports for the package and its parts: a name is imported from its module the first time it is read.

Every rank of a job imports the plugin, most of them only to find that they open no run; an ``__init__`` that
imported its whole part eagerly would put the report tab, the downloads and the sweeps on every rank's start-up.
Each ``__init__`` therefore lists its exports once, as ``from ._module import Name as Name`` under
``if TYPE_CHECKING:`` (what type checkers and readers see), and hands its own file to ``lazy_exports``, which reads
that block and resolves each name on first access (PEP 562), as scientific Python's ``lazy_loader`` does with stubs.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["lazy_exports"]


def _exported(init_file: str) -> dict[str, str]:
    """Each name imported under ``if TYPE_CHECKING:`` in ``init_file``, mapped to its relative module."""
    tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.level and stmt.module:
                    for alias in stmt.names:
                        names[alias.asname or alias.name] = "." * stmt.level + stmt.module
    return names


def _absolute(module: str, package: str) -> str:
    """``module`` (relative, as ``._mod`` or ``..part``) as an absolute name, seen from ``package``."""
    level = len(module) - len(module.lstrip("."))
    base = package.rsplit(".", level - 1)[0] if level > 1 else package
    return f"{base}.{module[level:]}"


def lazy_exports(package: str, init_file: str) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__, __getattr__, __dir__`` for the package ``package`` whose ``__init__`` is ``init_file``."""
    exports = _exported(init_file)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        full = _absolute(module, package)
        # The import statement's own machinery, not importlib.import_module: `python -X importtime` only reports
        # imports made through it, and that report is how a slow start-up is found.
        __import__(full)
        value = getattr(sys.modules[full], name)
        setattr(sys.modules[package], name, value)  # read once: later reads are plain attribute lookups
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return sorted(exports), __getattr__, __dir__
