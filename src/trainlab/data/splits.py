"""Deterministic, stratified splits (indices are returned so a run can save them)."""
from __future__ import annotations

import torch


def split_indices(y: torch.Tensor, fraction: float, seed: int, stratify: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Split range(len(y)) into (keep, held_out) with `fraction` held out, per class if `stratify`."""
    n = len(y)
    g = torch.Generator().manual_seed(seed)
    if fraction <= 0:
        return torch.arange(n), torch.arange(0)
    if not stratify:
        perm = torch.randperm(n, generator=g)
        k = round(n * fraction)
        return perm[k:].sort().values, perm[:k].sort().values
    keep, held = [], []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = round(len(idx) * fraction)
        held.append(idx[:k])
        keep.append(idx[k:])
    return torch.cat(keep).sort().values, torch.cat(held).sort().values


def subset_indices(n: int, subset: float, seed: int) -> torch.Tensor:
    """A seeded random subset: `subset` samples (an int) or a share (a float, 1.0 = all). A float
    is always a share: 1.0 once kept a single sample."""
    k = round(n * subset) if isinstance(subset, float) else min(int(subset), n)
    g = torch.Generator().manual_seed(seed + 7919)
    return torch.randperm(n, generator=g)[:k].sort().values
