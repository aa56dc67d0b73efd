"""Transforms fitted on the training split only, saved with the run so evaluation repeats them.

A transform is an entry of `PREPROCESS`: its factory takes the recipe's options and returns an
object with `fit(x) -> self` (statistics from the training split), `__call__(x)`, `stats()` (JSON
for data/preprocess.json) and `state_dict()` / `load_state_dict()`, whose tensors are saved in the
run's data/preprocess.safetensors as `<step index>.<key>` (e.g. `0.shift`, `0.scale`).
"""
from __future__ import annotations

from typing import Any, Literal

import torch

from ..errors import RecipeError
from ..registry import Registry


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
        # the method comes from the recipe; a run's saved file holds only the tensors
        self.method, self.shift, self.scale = state.get("method", self.method), state["shift"], state["scale"]


def normalize(method: Literal["standard", "minmax"] = "standard") -> Normalize:
    """`{normalize: standard}` (the default) or `{normalize: minmax}`."""
    return Normalize(method)


PREPROCESS = Registry("preprocess transform", "preprocess")
PREPROCESS.add("normalize", normalize, "standard (x - mean) / std or min-max scaling with statistics of the "
               "training split; per channel for images, per feature otherwise")


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


def parse_entries(items: list[Any], registry, where: str) -> list[tuple[str, dict[str, Any], str]]:
    """A list of registry steps (`data.preprocess`, `data.augment`): (registry name, options, recipe
    path) per step, names and options checked. `{name: value}` gives the entry's first option, a
    mapping gives options by name. Raises RecipeError."""
    out = []
    for i, (name, arg) in enumerate(parse_steps(items, where)):
        at = f"{where}.{i}"
        entry = registry.get(str(name), at)
        if arg is None:
            opts = {}
        elif isinstance(arg, dict):
            opts = arg
        else:
            first = registry.option_names(entry.name)
            if not first:
                raise RecipeError(f"{at}: {entry.name} takes no options, got {arg!r}")
            opts = {first[0]: arg}
        registry.validate(entry.name, opts, at)
        out.append((entry.name, opts, at))
    return out


def parse_preprocess(items: list[Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(registry name, options, recipe path) per `data.preprocess` step. Raises RecipeError."""
    return parse_entries(items, PREPROCESS, "data.preprocess")


def build_preprocess(items: list[Any]) -> list[Any]:
    """The recipe's `data.preprocess` steps, unfitted, in order. Raises RecipeError."""
    return [PREPROCESS.build(name, opts, where) for name, opts, where in parse_preprocess(items)]
