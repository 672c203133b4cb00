"""Where this process sits in a distributed job, read from the launcher's environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DistributedInfo", "TopologyError", "get_distributed_info"]


class TopologyError(ValueError):
    """The launcher's environment variables are malformed or contradict each other."""


@dataclass(frozen=True)
class DistributedInfo:
    """This process's place in a torchrun/Elastic job.

    ``worker_index`` is the node (``GROUP_RANK``); ``num_workers`` is the number of nodes.
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

        check(self.world_size >= 1, "WORLD_SIZE must be >= 1")
        check(0 <= self.rank < self.world_size, f"RANK must be in [0, {self.world_size})")
        check(1 <= self.local_world_size <= self.world_size, "LOCAL_WORLD_SIZE must be in [1, WORLD_SIZE]")
        check(0 <= self.local_rank < self.local_world_size, f"LOCAL_RANK must be in [0, {self.local_world_size})")
        check(self.num_workers >= 1, "the number of workers must be >= 1")
        check(0 <= self.worker_index < self.num_workers, f"GROUP_RANK must be in [0, {self.num_workers})")
        check(self.restart_count >= 0, "TORCHELASTIC_RESTART_COUNT must be >= 0")

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
        if "RANK" not in environ and "WORLD_SIZE" not in environ:
            return None

        def read(name: str, default: int | None = None) -> int:
            raw = environ.get(name)
            if raw is None:
                if default is None:
                    raise TopologyError(f"{name} is not set, but RANK/WORLD_SIZE are: a launcher sets all of them")
                return default
            try:
                return int(raw.strip())
            except ValueError:
                raise TopologyError(f"{name} must be an integer, got {raw!r}") from None

        rank = read("RANK")
        world_size = read("WORLD_SIZE")
        # Plain `torch.distributed.launch`-style environments may omit the node variables: one node then.
        local_rank = read("LOCAL_RANK", rank)
        local_world_size = read("LOCAL_WORLD_SIZE", world_size)
        worker_index = read("GROUP_RANK", 0)
        if "GROUP_WORLD_SIZE" in environ:
            num_workers = read("GROUP_WORLD_SIZE")
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
            restart_count=read("TORCHELASTIC_RESTART_COUNT", 0),
        )


def get_distributed_info() -> DistributedInfo | None:
    """This process's distributed topology from ``os.environ``, or None outside distributed training."""
    return DistributedInfo.from_env(os.environ)
