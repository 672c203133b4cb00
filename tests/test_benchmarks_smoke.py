"""The benchmark suite still runs (tiny sizes); its numbers are read by people, never asserted.

Each group runs on its own (``run.py --quick --only <group>``), so that the groups spread over the test workers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks" / "run.py"


def benchmark_groups() -> tuple[str, ...]:
    """run.py's GROUPS, read from its source: every group it runs is smoke-run here, new ones included."""
    for node in ast.parse(BENCH.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["GROUPS"]:
            return tuple(ast.literal_eval(node.value))
    raise AssertionError(f"no GROUPS in {BENCH}")


def test_every_benchmark_group_is_still_in_the_suite() -> None:
    expected = {"import", "overhead", "scale", "log_reduced", "elastic", "report", "node_service", "live_copy"}
    assert expected <= set(benchmark_groups())


@pytest.mark.elastic
@pytest.mark.parametrize("group", benchmark_groups())
def test_each_benchmark_group_runs_end_to_end_at_a_tiny_size(group: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", group],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"## {group}" in out.stdout
    if group == "overhead":
        assert "wandb not imported" in out.stdout  # the no-run rank probe checks it itself


def test_an_unknown_benchmark_group_is_refused_with_the_choices() -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--only", "speed"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown benchmark group(s) ['speed']" in out.stderr and "overhead" in out.stderr
