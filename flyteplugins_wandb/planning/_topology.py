"""Where this process sits in a distributed job, read from the launcher's environment variables."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from .. import _keys as keys

__all__ = ["DistributedInfo", "TopologyError", "elastic_node_count", "get_distributed_info"]


class TopologyError(ValueError):
    """The launcher's environment variables are malformed or contradict each other."""


# The keys of the dict that Flyte's public W&B plugin returns, in its order: code written for it reads them.
_KEYS: Final = ("rank", "local_rank", "world_size", "local_world_size", "worker_index", "num_workers")


@dataclass(frozen=True)
class DistributedInfo(Mapping[str, int]):
    """This process's place in a torchrun/Elastic job.

    ``worker_index`` is the node (``GROUP_RANK``); ``num_workers`` is the number of nodes. It is also a read-only
    mapping of ``rank``, ``local_rank``, ``world_size``, ``local_world_size``, ``worker_index`` and
    ``num_workers`` (``info["rank"]``, ``dict(info)``), as the dict of ``flyteplugins-wandb``; ``restart_count``
    is an attribute only.
    """

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    worker_index: int
    num_workers: int
    restart_count: int = 0

    def __post_init__(self) -> None:
        def check(ok: bool, what: str) -> None:
            if not ok:
                raise TopologyError(f"inconsistent distributed topology: {what} ({self})")

        ws, lws, nw = self.world_size, self.local_world_size, self.num_workers
        check(ws >= 1, f"WORLD_SIZE must be >= 1, got {ws}")
        check(0 <= self.rank < ws, f"RANK must be in [0, WORLD_SIZE={ws}), got {self.rank}")
        check(1 <= lws <= ws, f"LOCAL_WORLD_SIZE must be in [1, WORLD_SIZE={ws}], got {lws}")
        check(0 <= self.local_rank < lws, f"LOCAL_RANK must be in [0, LOCAL_WORLD_SIZE={lws}), got {self.local_rank}")
        # Launchers number ranks node by node, so a rank is never below its local rank.
        check(self.local_rank <= self.rank, f"RANK ({self.rank}) cannot be below LOCAL_RANK ({self.local_rank})")
        check(1 <= nw <= ws, f"the number of workers (GROUP_WORLD_SIZE) must be in [1, WORLD_SIZE={ws}], got {nw}")
        check(0 <= self.worker_index < nw, f"GROUP_RANK must be in [0, {nw}), got {self.worker_index}")
        check(self.restart_count >= 0, f"TORCHELASTIC_RESTART_COUNT must be >= 0, got {self.restart_count}")

    def __getitem__(self, key: str) -> int:
        if key not in _KEYS:
            raise KeyError(f"{key!r} is not a key of the distributed info; keys: {', '.join(_KEYS)}")
        return int(getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)

    @property
    def is_multi_node(self) -> bool:
        return self.num_workers > 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DistributedInfo | None:
        """Read RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK (and GROUP_WORLD_SIZE,
        TORCHELASTIC_RESTART_COUNT) from ``environ``.

        Returns None when RANK and WORLD_SIZE are both absent (not distributed). A half-set or malformed
        environment raises :class:`TopologyError` naming the variable and its value, since guessing would
        give two processes the same run id.
        """
        if keys.RANK not in environ and keys.WORLD_SIZE not in environ:
            return None

        def read(name: str, default: int | None = None) -> int:
            raw = environ.get(name)
            if raw is None:
                if default is None:
                    raise TopologyError(f"{name} is not set, but RANK or WORLD_SIZE is: a launcher sets both")
                return default
            try:
                return int(raw.strip())
            except ValueError:
                raise TopologyError(f"{name} must be an integer, got {raw!r}") from None

        rank = read(keys.RANK)
        world_size = read(keys.WORLD_SIZE)
        # Plain `torch.distributed.launch`-style environments may omit the node variables: one node then.
        local_rank = read(keys.LOCAL_RANK, rank)
        local_world_size = read(keys.LOCAL_WORLD_SIZE, world_size)
        worker_index = read(keys.GROUP_RANK, 0)
        if keys.GROUP_WORLD_SIZE in environ:
            num_workers = read(keys.GROUP_WORLD_SIZE)
        else:
            if local_world_size < 1 or world_size % local_world_size:
                raise TopologyError(
                    f"WORLD_SIZE ({world_size}) is not a multiple of LOCAL_WORLD_SIZE ({local_world_size}) "
                    "and GROUP_WORLD_SIZE is not set"
                )
            num_workers = world_size // local_world_size
        return cls(
            rank=rank,
            local_rank=local_rank,
            world_size=world_size,
            local_world_size=local_world_size,
            worker_index=worker_index,
            num_workers=num_workers,
            restart_count=read(keys.TORCHELASTIC_RESTART_COUNT, 0),
        )


def get_distributed_info() -> DistributedInfo | None:
    """This process's distributed topology from ``os.environ``, or None outside distributed training."""
    return DistributedInfo.from_env(os.environ)


def elastic_node_count(plugin_config: object) -> int | None:
    """The node count of an Elastic-style plugin config (``nnodes`` = ``N`` or ``"min:max"``: the maximum), or
    None for a config that is not one (duck-typed, so flyteplugins-pytorch need not be imported)."""
    nnodes = getattr(plugin_config, "nnodes", None)
    if nnodes is None or not hasattr(plugin_config, "nproc_per_node"):
        return None
    try:
        return int(str(nnodes).rpartition(":")[2])
    except ValueError:
        raise ValueError(f"cannot read the node count from nnodes={nnodes!r}; expected N or 'min:max'") from None
