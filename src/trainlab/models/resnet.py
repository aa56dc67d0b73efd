"""Residual networks (He et al., "Deep Residual Learning for Image Recognition", 2016).

`depth` 6n+2 (20, 32, 44, 56, 110) builds the paper's CIFAR networks (§4.2): a 3×3 stem, three
stages of n basic blocks with 16·k, 32·k, 64·k channels (k = width/16), identity shortcuts
zero-padded where the width doubles (option A). `depth` 18 or 34 builds the ImageNet networks
(four stages, 64..512 channels, projection shortcuts) with a 7×7 stride-2 stem and max-pooling
for large images, or a 3×3 stem for small ones (the usual CIFAR adaptation of ResNet-18).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RecipeError
from .init import Init, apply_init
from .options import Dropout, Size
from .inputs import image_shape


class PadShortcut(nn.Module):
    """Option A: subsample by `stride` and zero-pad the new channels (no parameters)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, self.lo, self.hi = stride, (cout - cin) // 2, cout - cin - (cout - cin) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, self.lo, self.hi))


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN plus the shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride == 1 and cin == cout:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "a":
            self.shortcut = PadShortcut(cin, cout, stride)
        else:  # option B: 1×1 projection
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet(nn.Module):
    def __init__(self, stem: nn.Module, stem_out: int, stages: list[tuple[int, int, int]], shortcut: str,
                 outputs: int, dropout: float):
        super().__init__()
        self.stem = stem
        layers, cin = [], stem_out
        for i, (width, blocks, stride) in enumerate(stages):
            blocks_ = [BasicBlock(cin if b == 0 else width, width, stride if b == 0 else 1, shortcut)
                       for b in range(blocks)]
            layers.append(nn.Sequential(*blocks_))
            cin = width
        self.stages = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(cin, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(self.stages(self.stem(x)))))


def _stem(kind: str, cin: int, cout: int, stride: int) -> nn.Module:
    if kind == "imagenet":
        return nn.Sequential(nn.Conv2d(cin, cout, 7, 2, 3, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def resnet(info, depth: int = 20, width: Size | None = None, stem: Literal["auto", "cifar", "imagenet"] = "auto",
           stem_stride: int = 1, shortcut: Literal["auto", "a", "b"] = "auto", dropout: Dropout = 0.0,
           zero_init_residual: bool = True, init: Init = "default") -> nn.Module:
    """A ResNet for the data's image shape.

    depth: 6n+2 (8, 14, 20, 32, 44, 56, 110) for the CIFAR family, 18 or 34 for the ImageNet family.
    width: channels of the first stage (default 16 for CIFAR depths, 64 for 18/34); the others
    double it at each stage. stem: `auto` uses the 7×7 stride-2 stem with max-pooling for images of
    64 pixels and more, a 3×3 conv otherwise; `stem_stride` 2 makes the 3×3 stem halve the
    resolution (4× fewer FLOPs in every later layer). shortcut: `a` zero-pads (the paper's CIFAR
    choice), `b` projects with a 1×1 conv; `auto` is `a` for CIFAR depths and `b` for 18/34.
    zero_init_residual starts each block's last BN at zero, so every block begins as the identity
    (Goyal et al. 2017).
    """
    c, h, w = image_shape(info, "resnet")
    if depth in (18, 34):
        base = width or 64
        per_stage = [2, 2, 2, 2] if depth == 18 else [3, 4, 6, 3]
        stages = [(base * 2 ** i, n, 1 if i == 0 else 2) for i, n in enumerate(per_stage)]
        short = "b" if shortcut == "auto" else shortcut
    elif depth >= 8 and (depth - 2) % 6 == 0:
        base, n = width or 16, (depth - 2) // 6
        stages = [(base * 2 ** i, n, 1 if i == 0 else 2) for i in range(3)]
        short = "a" if shortcut == "auto" else shortcut
    else:
        raise RecipeError(f"model.depth: {depth} is not a ResNet depth; use 6n+2 (8, 14, 20, 32, 44, 56, 110) "
                          "for CIFAR-style networks or 18 / 34")
    if stem_stride not in (1, 2):
        raise RecipeError(f"model.stem_stride: expected 1 or 2, got {stem_stride}")
    kind = stem if stem != "auto" else ("imagenet" if depth in (18, 34) and min(h, w) >= 64 else "cifar")
    model = ResNet(_stem(kind, c, base, stem_stride), base, stages, short, info.output_dim, dropout)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
    return apply_init(model, init)
