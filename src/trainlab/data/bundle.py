"""The small types data sources produce and the rest of trainlab consumes."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

# multilabel: any number of labels per sample; targets are a 0/1 float matrix (N, labels), `num_classes`
# and `class_names` count and name the labels, `class_counts` holds each label's positives per split
Task = Literal["classification", "regression", "multilabel"]


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

    def to_json(self) -> dict[str, Any]:
        """Everything a model needs to be built and used without the data (data/info.json in a run):
        `to_dict()` plus `extra` (vocabulary size and tokenizer settings, feature columns and their
        categories), less the vocabulary's tokens, which data/vocab.json holds."""
        extra = {k: v for k, v in self.extra.items() if k != "vocab"}
        return {**self.to_dict(), "extra": extra}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DataInfo:
        """The inverse of `to_json` (and of `to_dict`, whose `extra` is empty)."""
        return cls(task=d["task"], input_shape=tuple(d["input_shape"]), num_classes=d.get("num_classes"),
                   output_dim=int(d["output_dim"]), kind=d["kind"], class_names=d.get("class_names"),
                   class_counts=dict(d.get("class_counts") or {}), sizes=dict(d.get("sizes") or {}),
                   stats=dict(d.get("stats") or {}), extra=dict(d.get("extra") or {}),
                   notes=list(d.get("notes") or []))

    def example_batch(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` made-up inputs and targets of the right shapes and kinds (token ids below the
        vocabulary size, class indices below the number of classes): enough to run the model
        without its data, e.g. to count its FLOPs."""
        g = torch.Generator().manual_seed(seed)
        if self.kind == "tokens":
            x = torch.randint(0, int(self.extra.get("vocab_size") or 2), (n, *self.input_shape), generator=g)
        else:
            x = torch.randn(n, *self.input_shape, generator=g)
        if self.task == "classification":
            shape = (n, *self.input_shape) if self.extra.get("sequence_targets") else (n,)
            y = torch.randint(0, int(self.num_classes or 2), shape, generator=g)
        elif self.task == "multilabel":
            y = torch.randint(0, 2, (n, int(self.num_classes or self.output_dim)), generator=g).float()
        else:
            y = torch.randn(n, self.output_dim, generator=g)
        return x, y


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
