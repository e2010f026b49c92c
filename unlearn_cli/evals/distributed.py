"""Evaluation under several processes: each rank scores whole batches of its own, results are gathered.

Work is first cut into batches *globally* (the same batches whatever the number of processes) and batch j
goes to rank j mod world size. Every sequence is therefore computed in exactly the batch, with exactly the
padding, it would have in one process, so two processes give the same numbers as one, not merely close ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from unlearn_cli.distributed import rank_and_world

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class World:
    """This process's rank among `size` evaluating processes."""

    rank: int = 0
    size: int = 1

    @classmethod
    def current(cls) -> World:
        return cls(*rank_and_world())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, jobs: Sequence[T]) -> list[T]:
        """This rank's jobs: jobs[j] for every j = rank mod size."""
        return list(jobs[self.rank :: self.size])

    def gather(self, part: dict[Any, Any]) -> dict[Any, Any]:
        """Every rank's dict merged, on every rank (no copy with one process)."""
        if self.size == 1:
            return part
        import torch.distributed as dist

        parts: list[Any] = [None] * self.size
        dist.all_gather_object(parts, part)
        merged: dict[Any, Any] = {}
        for piece in parts:
            merged.update(piece)
        return merged

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def run_shared(self, jobs: Sequence[T], work: Callable[[T], dict[Any, R]]) -> dict[Any, R]:
        """Run `work` on this rank's share of `jobs` and return all ranks' merged results."""
        done: dict[Any, R] = {}
        for job in self.share(jobs):
            done.update(work(job))
        return self.gather(done)
