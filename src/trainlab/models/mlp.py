"""Linear models and multi-layer perceptrons."""
from __future__ import annotations

import math
from typing import Literal

from torch import nn

from .init import Init, apply_init
from .options import Dropout, Size

Activation = Literal["relu", "gelu", "tanh", "sigmoid", "leaky_relu", "silu"]
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
               "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU}


def _in_features(info) -> int:
    return math.prod(info.input_shape)


def linear(info, bias: bool = True, dropout: Dropout = 0.0, init: Init = "default") -> nn.Module:
    """One linear layer from the flattened input to the outputs (logits or regression targets);
    `dropout` drops input features."""
    # without dropout the layer stays at index 1 ("1.weight"), as tools reading a linear fit expect
    layers = [nn.Flatten(), *([nn.Dropout(dropout)] if dropout > 0 else []),
              nn.Linear(_in_features(info), info.output_dim, bias=bias)]
    return apply_init(nn.Sequential(*layers), init)


def mlp(info, widths: list[Size] = [256], activation: Activation = "relu", dropout: Dropout = 0.0,
        norm: Literal["none", "batch", "layer"] = "none", init: Init = "default") -> nn.Module:
    """Flatten → [Linear → norm → activation → dropout] per width → Linear head.

    Initialization: Kaiming (He) for ReLU-family activations, Xavier (Glorot) for tanh/sigmoid.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    d = _in_features(info)
    for w in widths:
        layers.append(nn.Linear(d, w))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(w))
        elif norm == "layer":
            layers.append(nn.LayerNorm(w))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = w
    head = nn.Linear(d, info.output_dim)
    model = nn.Sequential(*layers, head)
    for m in model.modules():
        if isinstance(m, nn.Linear) and m is not head:
            if activation in ("tanh", "sigmoid"):
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return apply_init(model, init)
