"""Recurrent sequence classifiers: RNN / LSTM / GRU over token embeddings (or feature sequences)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .init import Init, apply_init
from .options import Dropout, Size
from .inputs import FeatureSequence, is_tokens, pad_index, vocab_size

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNClassifier(nn.Module):
    """Embed → (bi)RNN → pool over time → dropout → linear head.

    Token inputs are right-padded with `pad`; the padded steps are packed away so neither
    direction reads them, and `last` pooling takes each direction's state at the true end.
    """

    def __init__(self, embed: nn.Module, in_dim: int, cell: str, hidden: int, layers: int, bidirectional: bool,
                 dropout: float, pool: str, outputs: int, pad: int | None):
        super().__init__()
        self.embed, self.pad, self.pool = embed, pad, pool
        self.drop = nn.Dropout(dropout)
        self.rnn = CELLS[cell](in_dim, hidden, layers, batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if layers > 1 else 0.0)
        self.dirs = 2 if bidirectional else 1
        self.head = nn.Linear(hidden * self.dirs, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.drop(self.embed(x))
        if self.pad is None:
            out, h = self.rnn(e)
            mask = None
        else:
            mask = x != self.pad
            # pack_padded_sequence wants lengths on the CPU: one device sync per batch on GPUs
            lengths = mask.sum(1).clamp_min(1).cpu()
            packed, h = self.rnn(pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False))
            out = pad_packed_sequence(packed, batch_first=True, total_length=x.shape[1])[0] if self.pool != "last" else None
        if self.pool == "last":
            h = h[0] if isinstance(h, tuple) else h  # LSTM: (h_n, c_n)
            feat = h[-self.dirs:].transpose(0, 1).flatten(1)  # last layer, every direction
        elif self.pool == "mean":
            if mask is None:
                feat = out.mean(1)
            else:
                m = mask.unsqueeze(-1).to(out.dtype)
                feat = (out * m).sum(1) / m.sum(1).clamp_min(1)
        else:  # max
            feat = out if mask is None else out.masked_fill(~mask.unsqueeze(-1), float("-inf"))
            feat = feat.amax(1).nan_to_num(0.0, neginf=0.0)
        return self.head(self.drop(feat))


def rnn(info, cell: Literal["rnn", "lstm", "gru"] = "lstm", embed_dim: Size = 128, hidden: Size = 128, layers: Size = 1,
        bidirectional: bool = False, pool: Literal["last", "mean", "max"] = "last", dropout: Dropout = 0.0,
        init: Init = "default") -> nn.Module:
    """A recurrent classifier. Token data (text sources) are embedded (`embed_dim`; vocabulary size
    and padding index come from the data); other data are read as a sequence of feature vectors
    (images row by row). pool: `last` hidden state, or `mean` / `max` over the non-pad steps."""
    if is_tokens(info):
        embed: nn.Module = nn.Embedding(vocab_size(info, "rnn"), embed_dim, padding_idx=pad_index(info))
        in_dim, pad = embed_dim, pad_index(info)
    else:
        embed = FeatureSequence(info.input_shape, None)
        in_dim, pad = embed.out_features, None
    model = RNNClassifier(embed, in_dim, cell, hidden, layers, bidirectional, dropout, pool, info.output_dim, pad)
    _init_recurrent(model.rnn, cell)
    return apply_init(model, init)


@torch.no_grad()
def _init_recurrent(rnn_: nn.RNNBase, cell: str) -> None:
    """Xavier input weights, orthogonal recurrent weights (Saxe et al. 2014), zero biases except
    an LSTM forget gate bias of 1 (Jozefowicz et al. 2015), which lets gradients flow early on."""
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    for name, p in rnn_.named_parameters():
        if name.startswith("weight_ih"):
            for chunk in p.chunk(gates, 0):
                nn.init.xavier_uniform_(chunk)
        elif name.startswith("weight_hh"):
            for chunk in p.chunk(gates, 0):
                nn.init.orthogonal_(chunk)
        elif name.startswith("bias"):
            nn.init.zeros_(p)
            if cell == "lstm" and name.startswith("bias_ih"):
                p[rnn_.hidden_size:2 * rnn_.hidden_size].fill_(1.0)  # gate order i, f, g, o
