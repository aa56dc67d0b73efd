"""Batched training-time augmentation on the training device, from `data.augment`.

Each entry of the AUGMENTS registry builds one op `(x, y, generator) -> (x, y)` that transforms a
whole batch with tensor ops (kornia's warps for rotations and affine maps; plain tensor ops for
crops, flips, noise, erasing, mixup and cutmix). Every random draw comes from one seeded
torch.Generator on the device, so no op syncs the device and a resumed run draws the same
numbers (`Augment.state_dict`). Validation, test and prediction never see these ops.
"""
from __future__ import annotations

import math
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field

from ..errors import RecipeError
from ..registry import Registry
from .preprocess import parse_entries

AUGMENTS = Registry("augmentation", "augments", context=("num_classes",))
Prob = Annotated[float, Field(ge=0, le=1)]
NonNeg = Annotated[float, Field(ge=0)]
Pos = Annotated[float, Field(gt=0)]
Pair = Annotated[list[float], Field(min_length=2, max_length=2)]


def _rand(n: int, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample choice between two batches."""
    return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)


class Op:
    images = True   # needs (N, C, H, W) float images
    soft = False    # turns class indices into class probabilities (needs classification)
    # what "black" is after the recipe's normalization, per channel (1, C, 1, 1): crops, warps and
    # erasing fill with it, so a border looks like the zero pixels of the raw image; set by build_augment
    fill: torch.Tensor | float = 0.0

    def __call__(self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class RandomCrop(Op):
    def __init__(self, padding: int):
        self.padding = padding

    def __call__(self, x, y, g):
        # zero-pad, then take an H×W window at a random offset per sample: one gather for the batch
        b, _, h, w = x.shape
        p = self.padding
        xp = F.pad(x - self.fill, (p, p, p, p)) + self.fill
        oy = torch.randint(0, 2 * p + 1, (b,), generator=g, device=x.device)
        ox = torch.randint(0, 2 * p + 1, (b,), generator=g, device=x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]
        out = xp.permute(0, 2, 3, 1)[torch.arange(b, device=x.device)[:, None, None], rows, cols]
        return out.permute(0, 3, 1, 2), y


class HFlip(Op):
    def __init__(self, p: float):
        self.p = p

    def __call__(self, x, y, g):
        from kornia.geometry.transform import hflip

        return _where(_rand(len(x), g, x.device) < self.p, hflip(x), x), y


class Affine(Op):
    """Rotation by U(-degrees, degrees), scaling by U(scale) and translation by U(±translate) of the
    image size, about the centre (kornia's get_affine_matrix2d and warp_affine; zeros outside)."""

    def __init__(self, degrees: float, translate: float, scale: tuple[float, float], p: float):
        self.degrees, self.translate, self.scale, self.p = degrees, translate, scale, p

    def __call__(self, x, y, g):
        from kornia.geometry.transform import get_affine_matrix2d, warp_affine

        b, _, h, w = x.shape
        dev = x.device
        angle = (_rand(b, g, dev) * 2 - 1) * self.degrees
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * _rand(b, g, dev)
        shift = (torch.rand(b, 2, generator=g, device=dev) * 2 - 1) * self.translate * torch.tensor(
            [w, h], device=dev, dtype=x.dtype)
        centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=dev, dtype=x.dtype).expand(b, 2)
        m = get_affine_matrix2d(shift, centre, s[:, None].expand(b, 2), angle)
        out = warp_affine(x - self.fill, m[:, :2], (h, w), align_corners=True) + self.fill
        if self.p < 1:
            out = _where(_rand(b, g, dev) < self.p, out, x)
        return out, y


class Noise(Op):
    images = False

    def __init__(self, std: float):
        self.std = std

    def __call__(self, x, y, g):
        return x + self.std * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype), y


class Erase(Op):
    """Random erasing / cutout (Zhong et al. 2017; DeVries & Taylor 2017): with probability p, a box of
    U(scale) of the image area and aspect ratio log-U(ratio) is set to `value` (default: black)."""

    def __init__(self, p: float, scale: tuple[float, float], ratio: tuple[float, float], value: float | None):
        self.p, self.scale, self.ratio, self.value = p, scale, ratio, value

    def __call__(self, x, y, g):
        b, _, h, w = x.shape
        dev = x.device
        area = self.scale[0] + (self.scale[1] - self.scale[0]) * _rand(b, g, dev)
        lr = math.log(self.ratio[0]), math.log(self.ratio[1])
        r = torch.exp(lr[0] + (lr[1] - lr[0]) * _rand(b, g, dev))
        bh = (torch.sqrt(area * r) * h).clamp(max=h)
        bw = (torch.sqrt(area / r) * w).clamp(max=w)
        top = _rand(b, g, dev) * (h - bh)
        left = _rand(b, g, dev) * (w - bw)
        ys = torch.arange(h, device=dev)[None, :]
        xs = torch.arange(w, device=dev)[None, :]
        in_rows = (ys >= top[:, None]) & (ys < (top + bh)[:, None])
        in_cols = (xs >= left[:, None]) & (xs < (left + bw)[:, None])
        box = (in_rows[:, :, None] & in_cols[:, None, :]) & (_rand(b, g, dev) < self.p)[:, None, None]
        value = self.fill if self.value is None else self.value
        return torch.where(box[:, None], torch.as_tensor(value, dtype=x.dtype, device=x.device), x), y


def _beta(alpha: float, g: torch.Generator, device) -> torch.Tensor:
    """One Beta(alpha, alpha) draw as a 0-d device tensor: G1 / (G1 + G2) with G ~ Gamma(alpha)."""
    gam = torch._standard_gamma(torch.full((2,), alpha, device=device), generator=g)
    return gam[0] / gam.sum()


def _soft(y: torch.Tensor, num_classes: int, dtype) -> torch.Tensor:
    return y if y.is_floating_point() else F.one_hot(y, num_classes).to(dtype)


class Mixup(Op):
    """mixup (Zhang et al. 2018): x = λ·x + (1-λ)·x[perm], targets mixed alike, λ ~ Beta(α, α)."""

    images = False
    soft = True

    def __init__(self, alpha: float, num_classes: int | None):
        self.alpha, self.num_classes = alpha, num_classes

    def __call__(self, x, y, g):
        lam = _beta(self.alpha, g, x.device)
        perm = torch.randperm(len(x), generator=g, device=x.device)
        ys = _soft(y, self.num_classes, x.dtype)
        return lam * x + (1 - lam) * x[perm], lam * ys + (1 - lam) * ys[perm]


class CutMix(Op):
    """CutMix (Yun et al. 2019): a box of area 1-λ, λ ~ Beta(α, α), is pasted from another image of
    the batch; the targets are mixed by the pasted area."""

    soft = True

    def __init__(self, alpha: float, num_classes: int | None):
        self.alpha, self.num_classes = alpha, num_classes

    def __call__(self, x, y, g):
        b, _, h, w = x.shape
        dev = x.device
        lam = _beta(self.alpha, g, dev)
        perm = torch.randperm(b, generator=g, device=dev)
        side = torch.sqrt(1 - lam)
        cy, cx = _rand(1, g, dev) * h, _rand(1, g, dev) * w
        top, bottom = (cy - side * h / 2).clamp(0, h).round(), (cy + side * h / 2).clamp(0, h).round()
        left, right = (cx - side * w / 2).clamp(0, w).round(), (cx + side * w / 2).clamp(0, w).round()
        ys, xs = torch.arange(h, device=dev), torch.arange(w, device=dev)
        box = ((ys >= top) & (ys < bottom))[:, None] & ((xs >= left) & (xs < right))[None, :]
        kept = 1 - (bottom - top) * (right - left) / (h * w)  # the share of the image left as it was
        t = _soft(y, self.num_classes, x.dtype)
        return torch.where(box, x[perm], x), kept * t + (1 - kept) * t[perm]


def random_crop(padding: Annotated[int, Field(ge=1)] = 4) -> Op:
    """Zero-pad by `padding` pixels and crop back to the original size at a random offset."""
    return RandomCrop(padding)


def hflip(p: Prob = 0.5) -> Op:
    """Mirror left-right with probability p."""
    return HFlip(p)


def rotate(degrees: NonNeg = 10.0, p: Prob = 1.0) -> Op:
    """Rotate by an angle drawn from U(-degrees, degrees), with probability p (kornia warp)."""
    return Affine(degrees, 0.0, (1.0, 1.0), p)


def affine(degrees: NonNeg = 0.0, translate: Annotated[float, Field(ge=0, le=1)] = 0.1,
           scale: Pair = [0.9, 1.1], p: Prob = 1.0) -> Op:  # noqa: B006
    """Rotate by U(±degrees), shift by U(±translate) of the size, scale by U(scale); with probability p."""
    if not 0 < scale[0] <= scale[1]:
        raise RecipeError(f"data.augment: affine scale must be [low, high] with 0 < low <= high, got {scale}")
    return Affine(degrees, translate, (float(scale[0]), float(scale[1])), p)


def noise(std: Pos = 0.05) -> Op:
    """Add Gaussian noise N(0, std²) to every input value (images or feature vectors)."""
    return Noise(std)


def erase(p: Prob = 0.5, scale: Pair = [0.02, 0.25], ratio: Pair = [0.3, 3.3],  # noqa: B006
          value: float | None = None) -> Op:
    """Random erasing / cutout: with probability p set a box (share U(scale) of the area, aspect
    ratio log-U(ratio)) to `value` (in normalized units; default: black, the raw image's 0)."""
    if not (0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]):
        raise RecipeError(f"data.augment: erase needs 0 < scale low <= high <= 1 and 0 < ratio low <= high, "
                          f"got scale {scale}, ratio {ratio}")
    return Erase(p, (float(scale[0]), float(scale[1])), (float(ratio[0]), float(ratio[1])), value)


def mixup(num_classes: int | None = None, alpha: Pos = 0.2) -> Op:
    """mixup: blend each sample with another of the batch, λ ~ Beta(alpha, alpha); soft targets."""
    return Mixup(alpha, num_classes)


def cutmix(num_classes: int | None = None, alpha: Pos = 1.0) -> Op:
    """CutMix: paste a box from another image of the batch, λ ~ Beta(alpha, alpha); soft targets."""
    return CutMix(alpha, num_classes)


AUGMENTS.add("random_crop", random_crop, "random crop after zero padding (images)", aliases=("crop",))
AUGMENTS.add("hflip", hflip, "horizontal flip with probability p (images)", aliases=("flip",))
AUGMENTS.add("rotate", rotate, "small random rotation (images, kornia)")
AUGMENTS.add("affine", affine, "random rotation, scale and translation (images, kornia)")
AUGMENTS.add("noise", noise, "additive Gaussian noise (any float inputs)", aliases=("gaussian_noise",))
AUGMENTS.add("erase", erase, "random erasing / cutout of a box (images)", aliases=("cutout", "random_erasing"))
AUGMENTS.add("mixup", mixup, "mixup of sample pairs, soft targets (classification)")
AUGMENTS.add("cutmix", cutmix, "CutMix box pasting, soft targets (classification, images)")


def parse_augment(items: list[Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(registry name, options, recipe path) per `data.augment` entry. Raises RecipeError."""
    return parse_entries(items, AUGMENTS, "data.augment")


class Augment:
    """The recipe's augmentations in order, with their own seeded generator on the training device."""

    def __init__(self, ops: list[Op], device: torch.device | str = "cpu", seed: int = 0):
        self.ops = ops
        self.generator = torch.Generator(device=torch.device(device))
        self.generator.manual_seed(seed + 104_729)  # its own stream, apart from data order and init

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.ops:
            return x, y
        channels_last = x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        for op in self.ops:
            x, y = op(x, y, self.generator)
        if channels_last:  # keep the memory format prepare_batch chose for the model
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())


def black(info, device: torch.device | str = "cpu") -> torch.Tensor | float:
    """The normalized value of a raw 0 pixel per channel, (1, C, 1, 1), from the fitted statistics."""
    st = info.stats.get("normalize")
    if not st or len(info.input_shape) != 3 or len(st["shift"]) != info.input_shape[0]:
        return 0.0
    shift, scale = torch.tensor(st["shift"]), torch.tensor(st["scale"])
    return (-shift / scale).view(1, -1, 1, 1).to(device)


def build_augment(items: list[Any], info, device: torch.device | str = "cpu", seed: int = 0) -> Augment:
    """The Augment for `data.augment`, checked against the data. Raises RecipeError naming the entry."""
    ops = []
    fill = black(info, device)
    for name, opts, where in parse_augment(items):
        op = AUGMENTS.build(name, opts, where, num_classes=info.num_classes)
        if info.kind == "tokens":
            raise RecipeError(f"{where}: {name} needs float inputs; token ids cannot be augmented this way")
        if op.images and len(info.input_shape) != 3:
            raise RecipeError(f"{where}: {name} works on images (C, H, W); this data's inputs have shape "
                              f"{tuple(info.input_shape)}")
        if op.soft and info.task != "classification":
            raise RecipeError(f"{where}: {name} mixes class targets; this data is {info.task}")
        op.fill = fill
        ops.append(op)
    return Augment(ops, device, seed)
