"""``log_reduced``: metrics from every rank, reduced together in one collective and logged once.

The wire format, one float64 tensor per call (``HEADER`` slots, then ``capacity`` value slots)::

    [count, count', signature, signature', bad, bad', v0, v1, ..., v{capacity-1}]

Each header quantity travels as a pair that the call's own reduce op turns into an "all ranks equal?" test:
``(x, x*x)`` under SUM (equal iff ``world * sum(x*x) == sum(x) ** 2``) and ``(x, -x)`` under MIN/MAX (equal iff
the two results negate each other). The size of the tensor never depends on the call's keys, only on ``capacity``,
which every rank changes in lockstep: a rank with other keys can therefore never send a buffer of another size
(gloo aborts the process on that, NCCL hangs); it is told so, on every rank, by the header. The signature is a
16-bit hash of the op and the sorted key names: two different key sets of the same size go unnoticed with a chance
of 1 in 65,536.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import numbers
import sys
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from ..planning import check_choice, get_distributed_info
from ._current import current_placement, get_wandb_run, is_leader

if TYPE_CHECKING:
    import torch
    from wandb.sdk.wandb_run import Run

__all__ = ["REDUCE_OPS", "STEP_METRIC", "ReduceOpName", "log_reduced"]

logger = logging.getLogger("flyteplugins_wandb")

ReduceOpName = Literal["mean", "sum", "min", "max"]
"""How ``log_reduced`` combines the ranks' values."""

REDUCE_OPS: Final[tuple[str, ...]] = get_args(ReduceOpName)

STEP_METRIC: Final = "trainer/step"
"""The step axis that ``log_reduced(..., step=n)`` logs and defines its metrics against."""

HEADER: Final = 6
INITIAL_CAPACITY: Final = 32
# Signatures stay below 2**16 so that sum(h * h) over up to 2**21 ranks is an exact integer in float64.
_SIGNATURE_SPACE: Final = 1 << 16

# One capacity per process group: processes of a group start equal and change it only on results of the group's
# own collectives, which every member sees identically. A re-created group starts over on every member.
_capacities: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
# Metrics already given a step axis, per run (a resumed attempt is a new Run object and defines them again).
_defined: weakref.WeakKeyDictionary[Run, set[str]] = weakref.WeakKeyDictionary()


def log_reduced(
    metrics: Mapping[str, float | int | torch.Tensor],
    *,
    op: ReduceOpName = "mean",
    step: int | None = None,
    per_rank: bool = False,
) -> dict[str, float]:
    """Reduce ``metrics`` over all ranks with ``op`` (mean, sum, min or max) and log the result once.

    Call it on **every** rank of the default ``torch.distributed`` process group, the same number of times and in
    the same order, like any collective. Values are Python numbers or one-element tensors (CPU or GPU, any real
    dtype); they are packed into one float64 tensor and reduced with a single ``all_reduce``, on the device of the
    first GPU (accelerator) tensor when the backend can reduce there, else on CPU, else on the backend's current
    device (NCCL: Python numbers are packed on the current CUDA device). The process where :func:`is_leader` is
    true logs the result to its run; the others log nothing. Every rank gets the reduced values back (floats).

    - ``step``: your global training step. It is logged as ``trainer/step`` and each key is defined (W&B
      ``define_metric``) against it, so charts line up across ranks, layouts and resumed attempts. Restore it from
      your checkpoint on a retry. The plugin never passes ``step=`` to ``run.log``: a resumed run drops rows whose
      W&B step is lower than the last one. Without ``step`` the rows use W&B's own step.
    - ``per_rank=True``: every process that has a run also logs its own, unreduced values as ``rank{r}/<key>``
      (``r`` is the global rank) with its own step axis ``rank{r}/step``, in the same call and with no extra
      communication. Meant for ``run_mode="shared"``, where every rank writes to the one run; in ``auto`` mode only
      rank 0 has a run, so only ``rank0/`` values arrive.
    - Under ``rank_scope="worker"`` each worker's leader logs the global result into its worker's run.

    Errors, raised on every rank so that no rank is left waiting in a collective:

    - Ranks passing different key names, or a different number of keys, in the same call: ``ValueError`` naming
      this rank's keys. Both are carried in the one tensor: its size depends only on a capacity (32 values, grown
      in lockstep on every rank, with one extra ``all_reduce``, the first time a call passes more), never on the
      keys of one rank. Different calls may pass different keys (say training and evaluation metrics).
    - A value that is not a number on some rank: ``TypeError``, naming the key on that rank.
    - Mistakes that are the same on every rank raise before any communication: an unknown ``op`` (ValueError
      naming the choices), non-string keys, the key ``trainer/step``, a key ``step`` with ``per_rank``, or a
      negative ``step``.

    Outside distributed training (no process group initialized) it logs the values as given to this task's run, if
    any, and returns them; ``per_rank`` has no effect there. In a task launched with several ranks (``WORLD_SIZE``
    > 1) whose process group is not initialized yet it raises ``RuntimeError``: logging one rank's values as if
    they were everyone's is the mistake it exists to prevent.
    """
    check_choice("op", op, REDUCE_OPS)
    names = _check_call(metrics, step, per_rank)
    step = None if step is None else int(step)  # numpy and other integers log as plain ints
    values, error = _coerce(metrics, names)
    dist = _initialized_dist()
    if dist is None:
        _refuse_without_process_group()
        if error is not None:
            raise error
        plain = dict(zip(names, _host_floats(values), strict=True))
        _log(get_wandb_run(), plain, None, None, step)
        return {k: plain[k] for k in metrics}

    rank = dist.get_rank()
    reduced, own = _all_reduce(dist, names, values, error, op, rank, keep_own=per_rank)
    run = get_wandb_run()
    if run is not None:
        _log(run, reduced if is_leader() else None, own, rank, step)
    return {k: reduced[k] for k in metrics}


def _check_call(metrics: Mapping[str, object], step: int | None, per_rank: bool) -> list[str]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"log_reduced: metrics must be a mapping of names to values, got {type(metrics).__name__}")
    for key in metrics:
        if not isinstance(key, str):
            raise TypeError(f"log_reduced: metric names must be strings, got {key!r}")
    if STEP_METRIC in metrics:
        raise ValueError(f"log_reduced: {STEP_METRIC!r} is the step axis; pass step=... instead of logging it")
    if per_rank and "step" in metrics:
        raise ValueError("log_reduced: with per_rank=True the key 'step' would clash with the axis 'rank{r}/step'")
    if step is not None and (isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0):
        raise ValueError(f"log_reduced: step must be an integer >= 0 or None, got {step!r}")
    return sorted(metrics)


def _initialized_dist() -> Any:
    """``torch.distributed`` when a default process group exists, else None. Never imports torch: a process that
    has not imported it cannot have a process group."""
    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _refuse_without_process_group() -> None:
    placement = current_placement.get()
    topology = placement.topology if placement is not None else get_distributed_info()
    if topology is not None and topology.world_size > 1:
        raise RuntimeError(
            f"log_reduced: this process is rank {topology.rank} of {topology.world_size}, but torch.distributed "
            "has no process group yet; call torch.distributed.init_process_group(...) before log_reduced, on "
            "every rank"
        )


def _number(key: str, value: object) -> float:
    """A value that is not a tensor as a float, or a TypeError naming ``key``."""
    if isinstance(value, numbers.Real):
        return float(value)
    if not isinstance(value, (str, bytes)) and hasattr(type(value), "__float__"):  # numpy and other array scalars
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    raise TypeError(
        f"log_reduced: metric {key!r} must be a real number or a one-element tensor, got {type(value).__name__}"
    )


@functools.lru_cache(maxsize=256)
def _signature(names: tuple[str, ...], op: str) -> int:
    # The op is hashed too: ranks reducing with different ops would otherwise produce silent garbage.
    text = "\x00".join([op, *names]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") % _SIGNATURE_SPACE


def _pair(x: int, op: str) -> tuple[float, float]:
    return (float(x), float(x * x)) if op in ("mean", "sum") else (float(x), float(-x))


def _all_equal(a: float, b: float, op: str, world: int) -> bool:
    if op in ("mean", "sum"):
        total, squares = round(a), round(b)  # exact integers: see _SIGNATURE_SPACE
        return world * squares == total * total
    return a == -b


def _any_set(a: float, b: float, op: str) -> bool:
    """Whether a 0/1 flag was 1 on some rank."""
    return a > 0 if op in ("mean", "sum") else max(a, -b) > 0


def _coerce(metrics: Mapping[str, object], names: Sequence[str]) -> tuple[list[float | torch.Tensor], TypeError | None]:
    """The values in ``names`` order, and the error of the first value that is not a number (0.0 stands in for it).
    Tensors on an accelerator stay tensors: converting each one to a float would sync the device once per value;
    CPU tensors become floats at once, which costs less than copying them into the packed tensor."""
    loaded: Any = sys.modules.get("torch")  # a tensor implies torch is imported; never import it for a check
    values: list[float | torch.Tensor] = []
    error: TypeError | None = None
    for key in names:
        value = metrics[key]
        try:
            if loaded is not None and isinstance(value, loaded.Tensor):
                if value.numel() != 1 or value.is_complex():
                    raise TypeError(
                        f"log_reduced: metric {key!r} must be a real number or a one-element tensor, got a "
                        f"{value.dtype} tensor of shape {tuple(value.shape)}"
                    )
                values.append(float(value.item()) if value.device.type == "cpu" else value.detach().reshape(()))
            else:
                values.append(_number(key, value))
        except TypeError as e:
            error = error if error is not None else e
            values.append(0.0)
    return values, error


def _host_floats(values: Sequence[float | torch.Tensor]) -> list[float]:
    tensors = [v for v in values if not isinstance(v, float)]
    if not tensors:
        return [v for v in values if isinstance(v, float)]
    import torch

    # One device-to-host copy for all tensors.
    host = iter(torch.stack([t.to(device=tensors[0].device, dtype=torch.float64) for t in tensors]).tolist())
    return [v if isinstance(v, float) else float(next(host)) for v in values]


def _all_reduce(
    dist: Any,
    names: list[str],
    values: list[float | torch.Tensor],
    error: TypeError | None,
    op: str,
    rank: int,
    *,
    keep_own: bool,
) -> tuple[dict[str, float], dict[str, float] | None]:
    """The reduced values by key, and this rank's own values (with ``keep_own``)."""
    import torch

    world = dist.get_world_size()
    device = _pack_device(values, dist.get_backend())
    reduce_op = {"mean": dist.ReduceOp.SUM, "sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN}.get(
        op, dist.ReduceOp.MAX
    )
    group = dist.group.WORLD
    n, signature = len(names), _signature(tuple(names), op)
    capacity = _capacities.get(group, INITIAL_CAPACITY)
    while True:
        header = [*_pair(n, op), *_pair(signature, op), *_pair(int(error is not None), op)]
        fits = n <= capacity
        buffer = _pack(header, values if fits else [], capacity, device)
        mine = buffer[HEADER : HEADER + n].clone() if keep_own and fits else None
        dist.all_reduce(buffer, op=reduce_op)
        # One device-to-host copy for the result and this rank's own values.
        out: list[float] = (buffer if mine is None else torch.cat([buffer, mine])).tolist()
        if not _all_equal(out[0], out[1], op, world):
            raise ValueError(
                f"log_reduced: the ranks passed different numbers of metrics; rank {rank} passed {n}: {names}. "
                "Every rank must pass the same keys in the same call"
            )
        if not _all_equal(out[2], out[3], op, world):
            raise ValueError(
                f"log_reduced: the ranks passed different metric names (or different op=); rank {rank} passed "
                f"{names} with op={op!r}. Every rank must pass the same keys in the same call"
            )
        if _any_set(out[4], out[5], op):
            if error is not None:
                raise error
            raise TypeError(
                "log_reduced: another rank passed a metric that is not a number (its own error names the key); "
                f"nothing was logged. Keys: {names}"
            )
        if fits:
            break
        # Every rank saw the same count, so every rank grows to the same capacity and sends the values again.
        capacity = max(2 * capacity, 1 << (n - 1).bit_length())
        _capacities[group] = capacity
    reduced = out[HEADER : HEADER + n]
    if op == "mean":
        reduced = [v / world for v in reduced]
    own = dict(zip(names, out[HEADER + capacity :], strict=True)) if keep_own else None
    return dict(zip(names, reduced, strict=True)), own


def _pack_device(values: Sequence[float | torch.Tensor], backend: str) -> torch.device:
    """The first (accelerator) tensor's device if the backend reduces there; else CPU if it can; else the backend's
    current device."""
    import torch

    first = next((v.device for v in values if isinstance(v, torch.Tensor)), torch.device("cpu"))
    supported = _backend_devices(backend)
    if supported is None or first.type in supported:
        return first
    if "cpu" in supported:
        return torch.device("cpu")
    kind = supported[0]
    return torch.device(kind, getattr(torch, kind).current_device())


def _backend_devices(backend: str) -> list[str] | None:
    """The device types a backend reduces on (``"cpu:gloo,cuda:nccl"`` names them); None when unknown."""
    if ":" in backend:
        return [part.split(":", 1)[0] for part in backend.split(",")]
    import torch.distributed

    capability: dict[str, list[str]] = getattr(torch.distributed.Backend, "backend_capability", {})
    return capability.get(backend)


def _pack(
    header: list[float], values: Sequence[float | torch.Tensor], capacity: int, device: torch.device
) -> torch.Tensor:
    import torch

    floats = header + [0.0] * capacity
    slots: list[int] = []
    tensors: list[torch.Tensor] = []
    for i, v in enumerate(values):
        if isinstance(v, float):
            floats[HEADER + i] = v
        else:
            slots.append(HEADER + i)
            tensors.append(v.to(dtype=torch.float64))
    buffer: torch.Tensor = torch.tensor(floats, dtype=torch.float64, device=device)
    if tensors:
        if any(t.device != tensors[0].device for t in tensors):
            tensors = [t.to(device) for t in tensors]
        # One copy for all of them (none where they already live on the packing device).
        buffer[torch.tensor(slots, device=device)] = torch.stack(tensors).to(device)
    return buffer


def _log(
    run: Run | None,
    reduced: Mapping[str, float] | None,
    own: Mapping[str, float] | None,
    rank: int | None,
    step: int | None,
) -> None:
    if run is None:
        return
    row: dict[str, float | int] = {}
    axes: dict[str, str | None] = {}  # metric -> its step metric, for define_metric
    if reduced:
        row.update(reduced)
        if step is not None:
            row[STEP_METRIC] = step
            axes[STEP_METRIC] = None
            axes.update(dict.fromkeys(reduced, STEP_METRIC))
    if own and rank is not None:
        prefix = f"rank{rank}/"
        row.update({prefix + k: v for k, v in own.items()})
        if step is not None:
            row[prefix + "step"] = step
            axes[prefix + "step"] = None
            axes.update(dict.fromkeys((prefix + k for k in own), prefix + "step"))
    if not row:
        return
    import wandb

    try:
        defined = _defined.setdefault(run, set())
        for name, axis in axes.items():
            if name not in defined:
                run.define_metric(name, step_metric=axis)
                defined.add(name)
        run.log(row)
    except wandb.errors.Error as e:
        # Training goes on: every rank has already taken part in the collective, only this row is lost.
        logger.warning("log_reduced: could not log %s to run %s (%s: %s)", sorted(row), run.id, type(e).__name__, e)
