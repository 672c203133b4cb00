"""What the plugin costs a process that opens no run, in fresh interpreters: ``import flyteplugins_wandb`` over
``import flyte``, and the path a worker without a run takes (import ``wandb_init``, decorate a task, call its body on
rank 1 of 2 under ``auto``) over the same task undecorated. Measured for this tree and for the tree before the
package was split into parts (``BEFORE``), each side alternately, so load on the machine hits both alike."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

from _common import Row

BEFORE = "104c6b5"
"""The last commit before the parts and the lazy ``__init__`` files (its root imported every part eagerly)."""

ROOT = Path(__file__).resolve().parent.parent

# Each probe times itself from before ``import flyte`` to its end, and reports its peak resident memory; the
# interpreter's own start-up is the same on both sides and left out. ``{plugin}`` toggles the plugin's part.
_IMPORT_PROBE = textwrap.dedent(
    """
    import json, sys, time
    start = time.perf_counter()
    import flyte
    if {plugin}:
        import flyteplugins_wandb
    elapsed = time.perf_counter() - start
    """
)

_NO_RUN_PROBE = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ.update(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", LOCAL_WORLD_SIZE="2", GROUP_RANK="0",
                      GROUP_WORLD_SIZE="1", WANDB_MODE="offline")
    start = time.perf_counter()
    import flyte, flyte.report
    from flyte._context import internal_ctx
    from flyte.models import ActionID, RawDataPath, TaskContext
    env = flyte.TaskEnvironment(name="bench-import")
    def body(x: int) -> int:
        return x + 1
    task = env.task(body)
    if {plugin}:
        from flyteplugins_wandb import wandb_init
        task = wandb_init(task)
    tctx = TaskContext(
        action=ActionID(name="a0", run_name="r0", project="p", domain="d", org="o"), version="v",
        raw_data_path=RawDataPath(path={tmp!r}), output_path={tmp!r}, run_base_dir={tmp!r},
        report=flyte.report.Report(name="a0"), mode="remote", custom_context={{}},
    )
    with internal_ctx().replace_task_context(tctx):
        task.func(1)
    elapsed = time.perf_counter() - start
    """
)

# Peak RSS from VmHWM: getrusage's ru_maxrss survives exec on Linux, so a probe started from a large process (this
# one, with torch and wandb imported) would report its parent's peak.
_REPORT = textwrap.dedent(
    """
    def peak_kib():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    plugin = sys.modules.get("flyteplugins_wandb")
    print(json.dumps({
        "ms": elapsed * 1e3,
        "rss_mib": peak_kib() / 1024,
        "wandb": "wandb" in sys.modules,
        "from": plugin.__file__ if plugin else None,
        "modules": sorted(m for m in sys.modules if m.startswith("flyteplugins_wandb")),
    }))
    """
)


@contextmanager
def tree_at(commit: str) -> Iterator[Path | None]:
    """The package as it was at ``commit``, unpacked into a temporary directory (removed afterwards); None where
    this checkout cannot show it (not a git checkout, or a shallow clone without that commit)."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "flyteplugins_wandb"],
        capture_output=True,
        check=False,
    )
    if out.returncode != 0:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        with tarfile.open(fileobj=BytesIO(out.stdout)) as archive:
            archive.extractall(tmp, filter="data")
        yield Path(tmp)


def _probe(code: str, tree: Path) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter that imports the plugin from ``tree``, and return what it reported."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code + _REPORT], capture_output=True, text=True, env=env, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    where = result["from"]
    if where is not None and not str(where).startswith(str(tree)):
        raise RuntimeError(f"the probe imported the plugin from {where}, not from the tree under test {tree}")
    return result


def _pairs(template: str, tree: Path, repeat: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """``repeat`` samples of the probe without and with the plugin, taken in alternating order."""
    with tempfile.TemporaryDirectory(prefix="bench-import-ctx-") as tmp:
        codes = {flag: template.format(plugin=flag, tmp=tmp) for flag in (False, True)}
        samples: dict[bool, list[dict[str, object]]] = {False: [], True: []}
        for i in range(repeat):
            for flag in (False, True) if i % 2 == 0 else (True, False):
                samples[flag].append(_probe(codes[flag], tree))
    return samples[False], samples[True]


def _rows(what: str, label: str, base: list[dict[str, object]], mine: list[dict[str, object]]) -> list[Row]:
    def med(samples: list[dict[str, object]], key: str) -> float:
        return statistics.median(float(s[key]) for s in samples)  # type: ignore[arg-type]

    ms, base_ms = med(mine, "ms"), med(base, "ms")
    mib, base_mib = med(mine, "rss_mib"), med(base, "rss_mib")
    modules = len(mine[0]["modules"])  # type: ignore[arg-type]
    wandb = "wandb imported" if any(s["wandb"] for s in mine) else "wandb not imported"
    return [
        Row(f"{what}, {label}: wall", ms, base_ms, "ms", f"{ms - base_ms:+.1f} ms (target < 5 ms); {wandb}"),
        Row(
            f"{what}, {label}: peak RSS",
            mib,
            base_mib,
            "MiB",
            f"{mib - base_mib:+.2f} MiB (target < 1 MiB); {modules} plugin modules loaded",
        ),
    ]


def main(quick: bool) -> list[Row]:
    repeat = 1 if quick else 9
    probes = (
        ("import flyteplugins_wandb vs import flyte", _IMPORT_PROBE),
        ("rank without a run (auto, rank 1) vs the undecorated task", _NO_RUN_PROBE),
    )
    rows: list[Row] = []
    with tree_at(BEFORE) as before:
        trees = [("this tree", ROOT)] + ([(f"before ({BEFORE})", before)] if before else [])
        for what, template in probes:
            for label, tree in trees:
                rows += _rows(what, label, *_pairs(template, tree, repeat))
    if before is None:
        rows.append(Row(f"commit {BEFORE} not in this checkout: no before figures", 0, 0, "-"))
    return rows


if __name__ == "__main__":
    from _common import table

    print(table("import", main("--quick" in sys.argv)))
