"""Training loaders. The in-memory fast path: batches are slices of whole tensors under a seeded
permutation (no Dataset, no per-sample collate: one gather per batch). Above `data.memory_budget_mb`
(or with `data.loader: stream`) a torch DataLoader with worker processes and pinned memory serves
the very same batches, from the same permutation. Either way the position (epoch, batch) and the
seed that fixes each epoch's permutation are the state, so a resumed run sees exactly the batches
it would have seen.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .bundle import Split


SMALL_TARGETS = 64 << 20  # bytes: targets up to this size are put in the epoch's order once, not gathered per batch


class TensorLoader:
    """`weights` (one per sample, e.g. `balanced_weights`): each epoch draws len(split) samples with
    replacement in proportion to them instead of a permutation (`data.sampler: balanced`)."""

    def __init__(self, split: Split, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, weights: torch.Tensor | None = None):
        self.split, self.batch_size, self.shuffle, self.seed, self.drop_last = (
            split, batch_size, shuffle, seed, drop_last)
        self.weights = weights
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
        if self.weights is not None:  # the same draw as torch's WeightedRandomSampler with this generator
            return torch.multinomial(self.weights, n, replacement=True, generator=g)
        return torch.randperm(n, generator=g)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm = self.permutation(self.epoch).to(self.split.x.device)
        x, y, bs = self.split.x, self.split.y, self.batch_size
        chunks = perm.split(bs)  # views, made once: no slicing per step
        if y.numel() * y.element_size() <= SMALL_TARGETS:
            y = y.index_select(0, perm)  # the epoch's targets in order once: each batch's are then a view
            ys = y.split(bs)
        else:
            ys = None
        for b in range(self.position, len(self)):
            idx = chunks[b]
            self.position = b + 1
            # index_select: ~2x faster than x[idx] on CPU
            yield x.index_select(0, idx), (ys[b] if ys is not None else y.index_select(0, idx))
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        # the permutation of an epoch is a function of (seed, epoch): `permutation(epoch)` rebuilds it
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self.seed = int(state["epoch"]), int(state["position"]), int(state["seed"])


class _Rows(torch.utils.data.Dataset):
    """A split as a map-style dataset that a worker reads a whole batch from at once."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.as_tensor(idx, dtype=torch.long)
        return self.split.x[i], self.split.y[i]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split.x[i], self.split.y[i]


def _whole_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch  # __getitems__ already returns the batch as two tensors: nothing to collate


class StreamingLoader(TensorLoader):
    """The same batches as TensorLoader (same permutation per epoch, same position state), served
    by a torch DataLoader: `workers` processes gather them, pinned for a fast copy to a GPU."""

    def __init__(self, split: Split, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 workers: int = 2, pin_memory: bool = False, weights: torch.Tensor | None = None):
        super().__init__(split, batch_size, shuffle, seed, drop_last, weights)
        self.workers, self.pin_memory = workers, pin_memory

    def permutation(self, epoch: int) -> torch.Tensor:
        if self.weights is None or not self.shuffle:
            return super().permutation(epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        sampler = torch.utils.data.WeightedRandomSampler(self.weights, len(self.split), replacement=True, generator=g)
        return torch.tensor(list(sampler), dtype=torch.long)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        perm, bs = self.permutation(self.epoch), self.batch_size
        batches = [perm[b * bs:(b + 1) * bs].tolist() for b in range(self.position, len(self))]
        dl = torch.utils.data.DataLoader(_Rows(self.split), batch_sampler=batches, num_workers=self.workers,
                                         pin_memory=self.pin_memory, collate_fn=_whole_batch)
        for b, batch in enumerate(dl, start=self.position):
            self.position = b + 1
            yield batch
        self.epoch += 1
        self.position = 0


def split_megabytes(split: Split) -> float:
    return (split.x.numel() * split.x.element_size() + split.y.numel() * split.y.element_size()) / 2**20


def balanced_weights(y: torch.Tensor) -> torch.Tensor:
    """One weight per sample, the inverse of its class's count (float64, on the CPU): drawn with
    replacement in proportion to these, every class is drawn equally often on average."""
    y = y.cpu()
    counts = torch.bincount(y).double()
    return (1.0 / counts.clamp_min(1))[y]


def build_loader(split: Split, cfg: Any, seed: int, device: torch.device | str = "cpu") -> TensorLoader:
    """The training loader a recipe asks for: `data.loader` auto picks the in-memory fast path when
    the split fits in `data.memory_budget_mb` (on the device when `data.on_device`), else streaming.
    `data.sampler: balanced` draws classes equally (RecipeError unless the targets are class indices)."""
    from ..errors import RecipeError

    device = torch.device(device)
    weights = None
    if getattr(cfg, "sampler", "none") == "balanced":
        if split.y.ndim != 1 or split.y.is_floating_point():
            raise RecipeError("data.sampler: balanced draws classes equally and needs one class index per sample; "
                              "this data's targets are not (regression, multi-label or per-token targets)")
        weights = balanced_weights(split.y)
    stream = cfg.loader == "stream" or (cfg.loader == "auto" and split_megabytes(split) > cfg.memory_budget_mb)
    if stream:
        return StreamingLoader(split, cfg.batch_size, shuffle=True, seed=seed, workers=cfg.workers,
                               pin_memory=device.type == "cuda", weights=weights)
    return TensorLoader(split.to(device) if cfg.on_device else split, cfg.batch_size, shuffle=True, seed=seed,
                        weights=weights)


def eval_batches(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i in range(0, len(split), batch_size):
        yield split.x[i:i + batch_size], split.y[i:i + batch_size]
