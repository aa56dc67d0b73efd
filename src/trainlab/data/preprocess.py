"""Transforms fitted on the training split only, saved with the run so evaluation repeats them."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import RecipeError


class Normalize:
    """Standard (x-mean)/std or min-max scaling; per channel for images, per feature otherwise."""

    def __init__(self, method: str = "standard"):
        if method not in ("standard", "minmax"):
            raise RecipeError(f"data.preprocess.normalize: expected 'standard' or 'minmax', got {method!r}")
        self.method = method
        self.shift: torch.Tensor | None = None
        self.scale: torch.Tensor | None = None

    @staticmethod
    def _dims(x: torch.Tensor) -> tuple[int, ...]:
        # images (N, C, H, W): statistics per channel; anything else: per feature
        return (0, 2, 3) if x.ndim == 4 else (0,)

    def fit(self, x: torch.Tensor) -> Normalize:
        dims = self._dims(x)
        x = x.float()
        if self.method == "standard":
            self.shift = x.mean(dim=dims, keepdim=True)[0:1]
            self.scale = x.std(dim=dims, keepdim=True)[0:1].clamp_min(1e-8)
        else:
            lo = x.amin(dim=dims, keepdim=True)[0:1]
            self.shift, self.scale = lo, (x.amax(dim=dims, keepdim=True)[0:1] - lo).clamp_min(1e-8)
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.shift.to(x.device)) / self.scale.to(x.device)

    def stats(self) -> dict[str, Any]:
        return {"method": self.method, "shift": self.shift.flatten().tolist(), "scale": self.scale.flatten().tolist()}

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.method, "shift": self.shift, "scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.method, self.shift, self.scale = state["method"], state["shift"], state["scale"]


def parse_steps(items: list[Any], where: str = "data.preprocess") -> list[tuple[str, Any]]:
    """`[{normalize: standard}, "normalize"]` -> [("normalize", "standard"), ("normalize", None)]."""
    steps = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            steps.append((item, None))
        elif isinstance(item, dict) and len(item) == 1:
            steps.append(next(iter(item.items())))
        else:
            raise RecipeError(f"{where}.{i}: expected a name or a one-key mapping, got {item!r}")
    return steps


def build_preprocess(items: list[Any]) -> list[Normalize]:
    out = []
    for i, (name, arg) in enumerate(parse_steps(items)):
        if name == "normalize":
            out.append(Normalize(arg or "standard"))
        else:
            raise RecipeError(f"data.preprocess.{i}: unknown transform {name!r}; accepted: normalize")
    return out
