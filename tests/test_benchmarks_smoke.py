"""The benchmark suite still runs (tiny sizes); its numbers are read by people, never asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks" / "run.py"


@pytest.mark.elastic
def test_the_benchmark_suite_runs_end_to_end_at_a_tiny_size(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for group in ("## overhead", "## scale", "## elastic", "## report", "## node_service", "## live_copy"):
        assert group in out.stdout
    assert "wandb not imported" in out.stdout  # the no-run rank probe checks it itself


def test_an_unknown_benchmark_group_is_refused_with_the_choices() -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--only", "speed"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown benchmark group(s) ['speed']" in out.stderr and "overhead" in out.stderr
