"""Pre-norm transformer blocks and an encoder classifier (Vaswani et al. 2017; pre-norm as in
Xiong et al. 2020). Attention runs through torch's fused `F.scaled_dot_product_attention`."""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RecipeError
from .init import Init, apply_init
from .options import Dropout, Ratio, Size
from .inputs import FeatureSequence, is_tokens, pad_index, sequence_length, vocab_size


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, causal: bool):
        super().__init__()
        self.heads, self.dropout, self.causal = heads, dropout, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and mask is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))


class Block(nn.Module):
    """x + attn(LN(x)), then x + MLP(LN(x)): pre-norm keeps deep stacks trainable without warm-up."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float, causal: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout, causal)
        self.ln2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


@torch.no_grad()
def init_transformer(model: nn.Module, depth: int) -> None:
    """GPT-2 initialization: N(0, 0.02) weights, zero biases, and the residual-branch output
    projections scaled by 1/sqrt(2·depth) so the residual stream's variance does not grow with depth."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
    for m in model.modules():
        if isinstance(m, Block):
            nn.init.normal_(m.attn.proj.weight, std=0.02 / math.sqrt(2 * depth))
            nn.init.normal_(m.mlp[2].weight, std=0.02 / math.sqrt(2 * depth))


def check_heads(dim: int, heads: int, mlp_ratio: float = 1.0) -> None:
    """The options' ranges are checked when the recipe loads; this checks how they fit together."""
    if heads < 1 or dim % heads:
        raise RecipeError(f"model.heads: dim {dim} must be divisible by heads {heads}")
    if int(dim * mlp_ratio) < 1:
        raise RecipeError(f"model.mlp_ratio: {mlp_ratio} × dim {dim} leaves the blocks' MLP no units")


class TransformerClassifier(nn.Module):
    """Token (or feature) embeddings + learned positions → pre-norm blocks → LN → pool → head."""

    def __init__(self, embed: nn.Module, length: int, dim: int, depth: int, heads: int, mlp_ratio: float,
                 dropout: float, pool: str, outputs: int, pad: int | None):
        super().__init__()
        self.embed, self.pool, self.pad = embed, pool, pad
        extra = 1 if pool == "cls" else 0
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if extra else None
        self.pos = nn.Embedding(length + extra, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = (x != self.pad) if self.pad is not None else None  # (B, T): True for real tokens
        h = self.embed(x)
        if self.cls is not None:
            h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
            if keep is not None:
                keep = F.pad(keep, (1, 0), value=True)
        h = self.drop(h + self.pos.weight[: h.shape[1]])
        if keep is not None:
            keep[:, 0] = True  # an empty text still has one key to attend to (no NaN rows)
        mask = keep[:, None, None, :] if keep is not None else None  # broadcast over heads and queries
        for block in self.blocks:
            h = block(h, mask)
        h = self.ln(h)
        if self.cls is not None:
            return self.head(h[:, 0])
        if keep is None:
            return self.head(h.mean(1))
        w = keep.unsqueeze(-1).to(h.dtype)
        return self.head((h * w).sum(1) / w.sum(1))


def transformer(info, dim: Size = 128, depth: Size = 2, heads: Size = 4, mlp_ratio: Ratio = 4.0,
                pool: Literal["cls", "mean"] = "mean", dropout: Dropout = 0.1, init: Init = "default") -> nn.Module:
    """A transformer encoder classifier. Token data are embedded (vocabulary, padding index and
    length come from the data; padded positions are masked out of attention and pooling); other
    data are read as a sequence of feature vectors (images row by row) projected to `dim`."""
    check_heads(dim, heads, mlp_ratio)
    if is_tokens(info):
        embed: nn.Module = nn.Embedding(vocab_size(info, "transformer"), dim, padding_idx=pad_index(info))
        pad = pad_index(info)
    else:
        embed, pad = FeatureSequence(info.input_shape, dim), None
    model = TransformerClassifier(embed, sequence_length(info), dim, depth, heads, mlp_ratio, dropout, pool,
                                  info.output_dim, pad)
    init_transformer(model, depth)
    return apply_init(model, init)
