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


class TargetScaler:
    """Regression targets standardized per output, (y - mean) / std, with the training split's
    statistics (`data.target_scaling: standard`): the model learns targets of unit scale whatever
    their units, and `unscale` maps its outputs back to the original units for every prediction
    and metric. Saved in the run's data/preprocess.safetensors as `target.shift` / `target.scale`."""

    PREFIX = "target."

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor):
        self.shift, self.scale = shift.float().reshape(1, -1), scale.float().reshape(1, -1)

    @classmethod
    def fit(cls, y: torch.Tensor) -> TargetScaler:
        y = y.float().reshape(len(y), -1)
        scale = y.std(dim=0) if len(y) > 1 else torch.ones(y.shape[1])
        return cls(y.mean(dim=0), scale.nan_to_num(1.0).clamp_min(1e-8))

    def _shaped(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = t.to(y.device)
        return t.reshape(-1) if y.ndim == 1 else t.reshape(1, *([1] * (y.ndim - 2)), -1)

    def apply(self, y: torch.Tensor) -> torch.Tensor:
        """Original units -> the model's (standardized) units."""
        return (y.float() - self._shaped(self.shift, y)) / self._shaped(self.scale, y)

    def unscale(self, y: torch.Tensor) -> torch.Tensor:
        """The model's units -> original units (outputs or targets)."""
        return y.float() * self._shaped(self.scale, y) + self._shaped(self.shift, y)

    def stats(self) -> dict[str, Any]:
        return {"method": "standard", "names": [f"target {i}" for i in range(self.shift.numel())] if
                self.shift.numel() > 1 else ["target"], "shift": self.shift.flatten().tolist(),
                "scale": self.scale.flatten().tolist()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{self.PREFIX}shift": self.shift.contiguous(), f"{self.PREFIX}scale": self.scale.contiguous()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor] | None) -> TargetScaler | None:
        """The scaler a run saved (data/preprocess.safetensors); None when it saved none (no scaling,
        or a run from before target scaling)."""
        state = state or {}
        keys = (f"{cls.PREFIX}shift", f"{cls.PREFIX}scale")
        return cls(state[keys[0]], state[keys[1]]) if all(k in state for k in keys) else None

    @classmethod
    def from_stats(cls, st: dict[str, Any] | None) -> TargetScaler | None:
        """From data/info.json's `stats.target` (its JSON floats are float32 values, exactly)."""
        if not st or st.get("method") != "standard":
            return None
        return cls(torch.tensor(st["shift"]), torch.tensor(st["scale"]))
