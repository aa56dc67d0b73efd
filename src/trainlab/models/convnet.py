"""VGG-style conv nets with batch norm, and LeNet-5.

Downsampling is by stride-2 convolutions rather than max-pooling after full-resolution convs:
on CPU the same widths cost ~4× less per epoch that way (see shared/FACTS.md).
"""
from __future__ import annotations

from typing import Literal

from torch import nn

from .init import Init, apply_init
from .options import Dropout, Size
from .inputs import image_shape
from .mlp import ACTIVATIONS, Activation


def conv_bn(cin: int, cout: int, stride: int, norm: bool = True, activation: Activation = "relu") -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not norm),
                         nn.BatchNorm2d(cout) if norm else nn.Identity(), ACTIVATIONS[activation]())


def _he_init(model: nn.Module, activation: str) -> None:
    gain = "relu" if activation in ("relu", "leaky_relu", "gelu", "silu") else activation
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity=gain)


def convnet(info, widths: list[Size] = [32, 64, 128], blocks: Size = 1,
            dropout: Dropout = 0.0,
            downsample: Literal["stride", "maxpool"] = "stride", norm: Literal["batch", "none"] = "batch",
            activation: Activation = "relu", init: Init = "default",
            head: Literal["flatten", "avgpool"] = "flatten", stem_stride: Literal[1, 2] = 1) -> nn.Module:
    """Stages of `blocks` 3×3 conv-BN-act layers; every stage after the first halves the resolution
    (a stride-2 first conv, or a 2×2 max-pool before the stage); then the head, dropout and a linear
    layer. `head: flatten` keeps the last feature map (0.923 vs 0.881 test accuracy on Fashion-MNIST
    after 5 epochs for the default body); `avgpool` is global average pooling. `stem_stride: 2`
    gives the very first conv stride 2, so no layer runs at full resolution (measured costs in
    docs/performance.md)."""
    cin = image_shape(info, "convnet")[0]
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        for b in range(blocks):
            first = i > 0 and b == 0
            if first and downsample == "maxpool":
                layers.append(nn.MaxPool2d(2))
            stride = 2 if first and downsample == "stride" else (stem_stride if i == b == 0 else 1)
            layers.append(conv_bn(cin, w, stride, norm == "batch", activation))
            cin = w
    h, w = image_shape(info, "convnet")[1:]
    h, w = (h + stem_stride - 1) // stem_stride, (w + stem_stride - 1) // stem_stride
    for _ in widths[1:]:  # a stride-2 conv gives ceil(size / 2), a 2×2 max-pool floor(size / 2)
        h, w = ((h + 1) // 2, (w + 1) // 2) if downsample == "stride" else (h // 2, w // 2)
    if h == 0 or w == 0:
        from ..errors import RecipeError

        size = image_shape(info, "convnet")[1:]
        raise RecipeError(f"model.widths: {len(widths)} stages halve {size[0]}×{size[1]} images to nothing with "
                          "downsample: maxpool; use fewer widths or downsample: stride")
    pool = [nn.Flatten()] if head == "flatten" else [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    features = cin * h * w if head == "flatten" else cin
    model = nn.Sequential(*layers, *pool, nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
                          nn.Linear(features, info.output_dim))
    _he_init(model, activation)
    return apply_init(model, init)


class LeNet5(nn.Module):
    """LeCun et al. 1998: conv 5×5 (6) → pool → conv 5×5 (16) → pool → 120 → 84 → classes.

    28×28 inputs are padded by 2 in the first conv so the feature maps match the 32×32 original
    (the paper padded MNIST to 32×32 too); any input of at least 28×28 works.
    """

    def __init__(self, shape: tuple[int, int, int], outputs: int, channels: tuple[int, int], hidden: tuple[int, ...],
                 activation: str, pool: str, batch_norm: bool, dropout: float):
        super().__init__()
        c, h, w = shape
        pad = 2 if min(h, w) < 32 else 0
        act, pool_cls = ACTIVATIONS[activation], nn.MaxPool2d if pool == "max" else nn.AvgPool2d

        def conv(cin: int, cout: int, padding: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 5, padding=padding, bias=not batch_norm),
                    nn.BatchNorm2d(cout) if batch_norm else nn.Identity(), act(), pool_cls(2)]

        self.features = nn.Sequential(*conv(c, channels[0], pad), *conv(channels[0], channels[1], 0))
        fh, fw = ((h + 2 * pad - 4) // 2 - 4) // 2, ((w + 2 * pad - 4) // 2 - 4) // 2
        layers: list[nn.Module] = [nn.Flatten()]
        d = channels[1] * fh * fw
        for n in hidden:
            layers += [nn.Linear(d, n), act()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
            d = n
        self.classifier = nn.Sequential(*layers, nn.Linear(d, outputs))

    def forward(self, x):
        return self.classifier(self.features(x))


def lenet5(info, channels: tuple[Size, Size] = (6, 16), hidden: tuple[Size, ...] = (120, 84),
           activation: Activation = "relu", pool: Literal["max", "avg"] = "max", batch_norm: bool = False,
           dropout: Dropout = 0.0,
           init: Init = "default") -> nn.Module:
    """LeNet-5 for 28×28 or 32×32 (or larger) images. The 1998 original used tanh and average
    pooling (`activation: tanh, pool: avg`); ReLU and max-pooling train faster."""
    shape = image_shape(info, "lenet5")
    if min(shape[1:]) < 28:
        from ..errors import RecipeError

        raise RecipeError(f"model.name: lenet5 needs images of at least 28×28, the data are {shape[1]}×{shape[2]}")
    model = LeNet5(shape, info.output_dim, channels, hidden, activation, pool, batch_norm, dropout)
    _he_init(model, activation)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if activation in ("tanh", "sigmoid"):
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return apply_init(model, init)
