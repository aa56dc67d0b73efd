"""What models need to know about their inputs, read from the data's info (never typed by hand)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import RecipeError


def image_shape(info, model: str) -> tuple[int, int, int]:
    """(C, H, W) of image data; a RecipeError naming the model when the data are not images."""
    if len(info.input_shape) != 3:
        raise RecipeError(f"model.name: {model} needs image inputs (C, H, W), "
                          f"the data have shape {tuple(info.input_shape)}")
    return tuple(int(d) for d in info.input_shape)  # type: ignore[return-value]


def is_tokens(info) -> bool:
    return info.kind == "tokens"


def vocab_size(info, model: str) -> int:
    v = info.extra.get("vocab_size")
    if not v:
        raise RecipeError(f"model.name: {model} needs token data with a vocabulary "
                          f"(text_csv, text_jsonl, text_corpus); the data are {info.kind!r}")
    return int(v)


def pad_index(info) -> int | None:
    p = info.extra.get("pad_index")
    return None if p is None else int(p)


def sequence_length(info) -> int:
    """Tokens per sample (token data) or steps per sample (other data read as a sequence)."""
    if is_tokens(info):
        return int(info.input_shape[0])
    return int(info.input_shape[-2]) if len(info.input_shape) >= 2 else int(info.input_shape[0])


class FeatureSequence(nn.Module):
    """Reads non-token data as a sequence of feature vectors and projects each to `dim`.

    (T, F) stays as is; images (C, H, W) become H steps of C·W features (a row at a time,
    as in the classic row-by-row MNIST RNN); vectors (F,) become F steps of one feature.
    """

    def __init__(self, input_shape: tuple[int, ...], dim: int | None):
        super().__init__()
        self.shape = tuple(input_shape)
        if len(self.shape) == 3:
            self.features = self.shape[0] * self.shape[2]
        elif len(self.shape) == 2:
            self.features = self.shape[1]
        else:
            self.features = 1 if len(self.shape) == 1 else math.prod(self.shape[1:])
        self.proj = nn.Linear(self.features, dim) if dim is not None else nn.Identity()
        self.out_features = dim if dim is not None else self.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # (B, C, H, W) -> (B, H, C·W)
            x = x.permute(0, 2, 1, 3).flatten(2)
        elif x.ndim == 2:  # (B, F) -> (B, F, 1)
            x = x.unsqueeze(-1)
        return self.proj(x.float())
