"""A small GPT (Radford et al. 2019): a causal pre-norm transformer decoder for language modelling,
its output head tied to the token embedding (Press & Wolf 2017). Laid out after nanoGPT."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RecipeError
from .init import Init, apply_init
from .options import Dropout, Ratio, Size
from .inputs import is_tokens, sequence_length, vocab_size
from .transformer import Block, check_heads, init_transformer


class GPT(nn.Module):
    """tokens (B, T) → logits (B, T, vocab): position t sees tokens 0..t only."""

    def __init__(self, vocab: int, block_size: int, dim: int, depth: int, heads: int, mlp_ratio: float,
                 dropout: float):
        super().__init__()
        self.block_size = block_size
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(block_size, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout, causal=True) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.tok.weight  # weight tying: one matrix reads and writes tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.block_size:
            raise ValueError(f"sequence of {t} tokens is longer than the block size {self.block_size}")
        h = self.drop(self.tok(x) + self.pos.weight[:t])
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Append `new_tokens` sampled tokens to the prompts `idx` (B, T0)."""
        for _ in range(new_tokens):
            logits = self(idx[:, -self.block_size:])[:, -1, :] / max(temperature, 1e-6)
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


def gpt(info, dim: Size = 128, depth: Size = 4, heads: Size = 4, mlp_ratio: Ratio = 4.0, dropout: Dropout = 0.1,
        block_size: Size | None = None, init: Init = "default") -> nn.Module:
    """A causal decoder over token windows (`text_corpus`): one next-token prediction per position.
    block_size (the longest context) defaults to the data's window length."""
    if not is_tokens(info):
        raise RecipeError(f"model.name: gpt needs token data (text_corpus); the data are {info.kind!r}")
    check_heads(dim, heads, mlp_ratio)
    length = sequence_length(info)
    block = block_size or length
    if block < length:
        raise RecipeError(f"model.block_size: {block} is shorter than the data's windows of {length} tokens")
    model = GPT(vocab_size(info, "gpt"), block, dim, depth, heads, mlp_ratio, dropout)
    init_transformer(model, depth)
    return apply_init(model, init)
