"""Models: each factory builds an nn.Module from its options and the data's info."""
from __future__ import annotations

from ..registry import Registry
from . import convnet, mlp

MODELS = Registry("model", "models", context=("info",))
MODELS.add("linear", mlp.linear, "linear / logistic / softmax regression (one linear layer)")
MODELS.add("mlp", mlp.mlp, "multi-layer perceptron: widths, activation, dropout, batch/layer norm")
MODELS.add("convnet", convnet.convnet, "VGG-style conv net with batch norm and stride-2 downsampling")

__all__ = ["MODELS", "build_model"]


def build_model(cfg, info):
    """Build the recipe's model for data described by `info`."""
    return MODELS.build(cfg.name, cfg.options(), "model", info=info)
