"""The small types data sources produce and the rest of trainlab consumes."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

Task = Literal["classification", "regression"]


@dataclass
class Split:
    """Inputs and targets of one split, as whole tensors (the in-memory fast path)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class SourceData:
    """What a source returns: its own splits, and what the data means."""

    train: Split
    test: Split | None
    task: Task
    class_names: list[str] | None = None
    kind: Literal["image", "tabular", "tokens", "vector"] = "vector"
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. vocab for text
    # fitted on the carved training split by build_data, applied to every split (e.g. a text
    # vocabulary); it may fill in `class_names` and `extra`
    fit: Callable[[dict[str, Split | None]], dict[str, Split | None]] | None = None
    # what loading changed that the user must hear about (rows dropped, cells imputed); `fit` may add
    notes: list[str] = field(default_factory=list)


@dataclass
class DataInfo:
    """What builders need to know about the data (so users never type an input size)."""

    task: Task
    input_shape: tuple[int, ...]
    num_classes: int | None
    output_dim: int
    kind: str
    class_names: list[str] | None = None
    class_counts: dict[str, list[int]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # rows dropped, cells imputed: told to the user once

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
            "output_dim": self.output_dim, "kind": self.kind, "class_names": self.class_names,
            "class_counts": self.class_counts, "sizes": self.sizes, "stats": self.stats,
            "notes": self.notes,
        }


@dataclass
class DataBundle:
    train: Split
    val: Split | None
    test: Split | None
    info: DataInfo
    split_indices: dict[str, torch.Tensor] = field(default_factory=dict)
    preprocess: dict[str, torch.Tensor] = field(default_factory=dict)  # fitted state of data.preprocess

    def split(self, name: str) -> Split:
        s = getattr(self, name, None)
        if s is None:
            from ..errors import DataError

            raise DataError(f"this data has no {name!r} split")
        return s
