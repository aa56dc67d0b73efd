"""fastText-style text classifier (Joulin et al. 2017, "Bag of Tricks for Efficient Text
Classification"): the mean (or sum, or max) of the embeddings of a text's tokens and of its hashed
token n-grams, through one `nn.EmbeddingBag`, then dropout and a linear layer (or one hidden layer).

It reads the token ids the text sources produce: (B, T) rows right-padded with the pad id. The
n-grams are hashed from the ids on the fly, on the device the ids are on, for the whole batch at
once: no per-sample Python. An n-gram that reaches into the padding is dropped from the bag (it
maps to the padding row, which EmbeddingBag leaves out of the reduction). At `level: char` the
tokens are characters, so the n-grams are character n-grams.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import RecipeError
from .init import Init, apply_init
from .inputs import is_tokens, pad_index, vocab_size
from .options import Dropout, NgramOrder, Size

_PRIME = 2_147_483_647   # 2^31 - 1: every partial hash stays below it,
_MULT = 1_000_003        # so hash * _MULT + id fits in int64 with room to spare


def hash_ngrams(x: torch.Tensor, n: int, buckets: int, pad: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Bucket numbers in [0, buckets) of every n-gram of consecutive ids in each row of `x` (B, T),
    shape (B, T - n + 1), and a mask that is False where the n-gram touches a pad id. The hash is
    a polynomial of the ids modulo 2^31 - 1 seeded with `n`: deterministic on every device, and the
    same ids in another order (or as part of an n-gram of another order) hash differently, up to
    collisions modulo `buckets`."""
    t = x.shape[1] - n + 1
    h = torch.full((x.shape[0], max(t, 0)), n, dtype=torch.long, device=x.device)
    keep = torch.ones_like(h, dtype=torch.bool)
    for k in range(n):
        ids = x[:, k:k + t].long()
        h = (h * _MULT + ids) % _PRIME
        if pad is not None:
            keep &= ids != pad
    return h % buckets, keep


class EmbeddingBagClassifier(nn.Module):
    """Token ids (B, T) → bag of word and n-gram embeddings (B, dim) → dropout → [hidden] → logits."""

    def __init__(self, vocab: int, dim: int, ngrams: int, buckets: int, mode: str, dropout: float,
                 hidden: int | None, outputs: int, pad: int | None):
        super().__init__()
        self.vocab, self.ngrams, self.buckets, self.pad = vocab, ngrams, buckets, pad
        # rows: the vocabulary, then the n-gram buckets (shared by every order), then for data
        # without a pad id one row that stands for "nothing" (the bag's padding row)
        self.null = pad if pad is not None else vocab + buckets * (ngrams > 1)
        rows = vocab + buckets * (ngrams > 1) + (pad is None)
        self.bag = nn.EmbeddingBag(rows, dim, mode=mode, padding_idx=self.null)
        self.drop = nn.Dropout(dropout)
        self.head = (nn.Linear(dim, outputs) if hidden is None else
                     nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, outputs)))
        with torch.no_grad():  # fastText's initialization of the input vectors
            self.bag.weight.uniform_(-1.0 / dim, 1.0 / dim)
            self.bag.weight[self.null].zero_()

    def bag_ids(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids → (B, L) rows of the embedding table: the tokens, then each order's n-grams."""
        parts = [x.long()]
        for n in range(2, self.ngrams + 1):
            h, keep = hash_ngrams(x, n, self.buckets, self.pad)
            parts.append(torch.where(keep, h + self.vocab, self.null))
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.bag(self.bag_ids(x))))


def embedding_bag(info, dim: Size = 64, ngrams: NgramOrder = 2, buckets: Size = 65536,
                  mode: Literal["mean", "sum", "max"] = "mean", dropout: Dropout = 0.0, hidden: Size | None = None,
                  init: Init = "default") -> nn.Module:
    """A fastText-style classifier of token data: pooled embeddings of the tokens and of their hashed
    n-grams up to order `ngrams` (`buckets` hash rows, shared by every order); `hidden`: one ReLU
    layer of that width before the output layer."""
    if not is_tokens(info):
        raise RecipeError(f"model.name: embedding_bag needs token data (text_csv, text_jsonl with features: "
                          f"tokens); the data are {info.kind!r}")
    if info.extra.get("sequence_targets"):
        raise RecipeError("model.name: embedding_bag classifies whole texts; this data has a target per token "
                          "(language modelling: use gpt)")
    model = EmbeddingBagClassifier(vocab_size(info, "embedding_bag"), dim, ngrams, buckets, mode, dropout, hidden,
                                   info.output_dim, pad_index(info))
    return apply_init(model, init)
