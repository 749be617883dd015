"""Which sample comes next: ``(file index, sample seed)`` pairs for the loaders, sharded by rank
under DDP. Reading a sample from a file is :mod:`moseg.data.samples`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class MixtureSampler(Sampler):
    """Yields ``(file_index, sample_seed)``: a source by weight, then a file uniformly.

    Shards by rank under DDP (every rank gets ``num_samples // world`` items) and changes with
    :meth:`set_epoch`, which Lightning calls."""

    def __init__(self, sizes: list[int], weights: list[float], num_samples: int, seed: int):
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"mixture weights {weights} must be >= 0 with a positive sum")
        self.p = w / w.sum()
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples // _dist()[1]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rank, world = _dist()
        rng = np.random.default_rng([self.seed, self.epoch])
        n = (self.num_samples // world) * world
        src = rng.choice(len(self.p), size=n, p=self.p)
        file = self.offsets[src] + (rng.random(n) * self.sizes[src]).astype(np.int64)
        seeds = rng.integers(0, 2**63 - 1, size=n)
        for i in range(rank, n, world):
            yield int(file[i]), int(seeds[i])


class FixedSampler(Sampler):
    """Validation: every file ``repeats`` times with fixed seeds, sharded by rank."""

    def __init__(self, num_files: int, repeats: int, seed: int):
        self.items = [
            (i, int(np.random.SeedSequence([seed, i, r]).generate_state(1)[0]))
            for r in range(repeats)
            for i in range(num_files)
        ]

    def __len__(self) -> int:
        rank, world = _dist()
        return len(range(rank, len(self.items), world))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rank, world = _dist()
        yield from self.items[rank::world]
