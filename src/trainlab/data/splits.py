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
    per_class = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        per_class.append(idx[torch.randperm(len(idx), generator=g)])
    ks = [round(len(idx) * fraction) for idx in per_class]
    if sum(ks) == 0 and round(n * fraction) >= 1:
        # many small classes: each rounds to 0 held out, though the share asks for some samples;
        # hold out one sample of each of the largest classes instead (an empty split was the old answer)
        largest = sorted(range(len(per_class)), key=lambda i: -len(per_class[i]))[:round(n * fraction)]
        ks = [1 if i in largest and len(per_class[i]) > 1 else 0 for i in range(len(per_class))]
    keep = [idx[k:] for idx, k in zip(per_class, ks)]
    held = [idx[:k] for idx, k in zip(per_class, ks)]
    return torch.cat(keep).sort().values, torch.cat(held).sort().values


def subset_indices(n: int, subset: float, seed: int) -> torch.Tensor:
    """A seeded random subset: `subset` samples (an int) or a share (a float, 1.0 = all). A float
    is always a share: 1.0 once kept a single sample."""
    k = round(n * subset) if isinstance(subset, float) else min(int(subset), n)
    g = torch.Generator().manual_seed(seed + 7919)
    return torch.randperm(n, generator=g)[:k].sort().values
