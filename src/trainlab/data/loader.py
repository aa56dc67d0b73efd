"""The in-memory fast path: batches are slices of whole tensors under a seeded permutation.

No Dataset, no per-sample collate: one gather per batch. The position (epoch, batch) is part of
the state, so a resumed run sees exactly the batches it would have seen.
"""
from __future__ import annotations

from typing import Iterator

import torch

from .bundle import Split


class TensorLoader:
    def __init__(self, split: Split, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        self.split, self.batch_size, self.shuffle, self.seed, self.drop_last = (
            split, batch_size, shuffle, seed, drop_last)
        self.epoch = 0
        self.position = 0  # batches already served in the current epoch

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order of epoch `epoch`: a function of (seed, epoch) only."""
        n = len(self.split)
        if not self.shuffle:
            return torch.arange(n)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(n, generator=g)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = self.permutation(self.epoch).to(self.split.x.device)
        x, y, bs = self.split.x, self.split.y, self.batch_size
        for b in range(self.position, len(self)):
            idx = perm[b * bs:(b + 1) * bs]
            self.position = b + 1
            yield x[idx], y[idx]
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self.seed = int(state["epoch"]), int(state["position"]), int(state["seed"])


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i in range(0, len(split), batch_size):
        yield split.x[i:i + batch_size], split.y[i:i + batch_size]
