"""No function of the package is longer than 60 lines: a longer one does several things, and should be split into
functions named for them.

A function's length is counted as the structure check of the issue counts it: from its ``def`` line to its last
line, blank lines and comments included, its docstring not (what a user must know may take the room it needs).
Nested functions count within their enclosing function, and on their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "flyteplugins_wandb"
LIMIT = 60


def function_lengths(source: str) -> dict[str, int]:
    """``qualified name@line`` -> length of every function and method in ``source``, as counted above."""
    lengths = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            assert first.end_lineno is not None
            length -= first.end_lineno - first.lineno + 1
        lengths[f"{node.name}@{node.lineno}"] = length
    return lengths


def test_no_function_of_the_package_is_longer_than_60_lines() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 30, "the package's modules were found"
    too_long = {
        f"{path.relative_to(PACKAGE.parent)}:{name}": length
        for path in modules
        for name, length in function_lengths(path.read_text(encoding="utf-8")).items()
        if length > LIMIT
    }
    assert too_long == {}, f"functions over {LIMIT} lines (split them): {too_long}"


def test_a_function_is_measured_from_def_to_its_last_line_without_its_docstring() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(4))
    source = f'def f() -> None:\n    """Doc,\n    two lines."""\n{body}\n    # why\n    return None\n'
    assert function_lengths(source) == {"f@1": 1 + 4 + 1 + 1 + 1}
    assert function_lengths(f"async def g():\n{body}") == {"g@1": 5}
