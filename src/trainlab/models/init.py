"""Weight initialization schemes a recipe can pick with `model.init`.

Every model initializes itself sensibly (`default`): He for ReLU conv/linear stacks, Xavier for
tanh/sigmoid, orthogonal recurrent weights, N(0, 0.02) for transformers. The other schemes
re-initialize the weight matrices of every linear, convolution, recurrent and embedding layer
(biases to zero; normalization layers keep weight 1 and bias 0) so the effect of initialization
can be studied on any architecture.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Init = Literal["default", "kaiming", "xavier", "orthogonal", "normal"]

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _init_matrix(w: torch.Tensor, scheme: str) -> None:
    if scheme == "kaiming":  # He et al. 2015: keeps activation variance through ReLUs
        nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
    elif scheme == "xavier":  # Glorot & Bengio 2010: for tanh / sigmoid / linear units
        nn.init.xavier_uniform_(w)
    elif scheme == "orthogonal":  # Saxe et al. 2014
        nn.init.orthogonal_(w)
    elif scheme == "normal":  # GPT-2 style
        nn.init.normal_(w, std=0.02)


@torch.no_grad()
def apply_init(model: nn.Module, scheme: Init = "default") -> nn.Module:
    """Re-initialize `model` in place with `scheme` (`default` leaves the model's own init)."""
    if scheme == "default":
        return model
    for m in model.modules():
        if isinstance(m, _WEIGHTED):
            _init_matrix(m.weight, scheme)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.RNNBase):
            for name, p in m.named_parameters(recurse=False):
                if name.startswith("weight"):
                    _init_matrix(p, scheme)
                elif name.startswith("bias"):
                    nn.init.zeros_(p)
        elif isinstance(m, nn.Embedding):
            # an embedding row is not fed through a fan-in sum: a small normal suits every scheme
            nn.init.normal_(m.weight, std=0.02)
            if m.padding_idx is not None:
                m.weight[m.padding_idx].zero_()
    return model


def zero_bias(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, _WEIGHTED) and m.bias is not None:
            nn.init.zeros_(m.bias)
