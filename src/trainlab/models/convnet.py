"""A VGG-style conv net with batch norm.

Downsampling is by stride-2 convolutions rather than max-pooling after full-resolution convs:
on CPU the same widths cost ~4× less per epoch that way (see shared/FACTS.md).
"""
from __future__ import annotations

from torch import nn


def conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def convnet(info, widths: list[int] = [32, 64, 128], blocks: int = 1, dropout: float = 0.0) -> nn.Module:
    """Stages of `blocks` 3×3 conv-BN-ReLU layers; every stage after the first starts with stride 2;
    then global average pooling, dropout and a linear head."""
    if len(info.input_shape) != 3:
        from ..errors import RecipeError

        raise RecipeError(f"model.name: convnet needs image inputs (C, H, W), the data has shape {info.input_shape}")
    cin = info.input_shape[0]
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        for b in range(blocks):
            layers.append(conv_bn(cin, w, stride=2 if (i > 0 and b == 0) else 1))
            cin = w
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
                          nn.Linear(cin, info.output_dim))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model
