"""Losses by registry name. Each factory returns a callable (outputs, targets) -> scalar loss.

Classification losses take `class_weights` (`balanced`, or one weight per class) computed from the
training split's class counts (`DataInfo.class_counts`). A loss with the `one_logit` metadata (`bce`)
makes a two-class model end in a single logit (`model_outputs`); its targets stay class indices.
Multi-label data (task `multilabel`) has a 0/1 target matrix, one column per label.

Weights live on the module as plain tensors and are moved to the outputs' device on use (a no-op
after the first step): the trainer moves the loss to the CPU for evaluation and back is free.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from .errors import RecipeError
from .registry import Registry

LOSSES = Registry("loss", "losses", context=("info",))

ClassWeights = Literal["balanced"] | list[Annotated[float, Field(ge=0)]] | None
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0, lt=1)]


def class_weight_tensor(spec: ClassWeights, info, where: str = "loss.class_weights") -> torch.Tensor | None:
    """The weight of each class (classification: shape (C,)) or of each label's negatives and positives
    (multi-label: shape (2, L)) for `spec`: `balanced` = n_samples / (n_classes · count_c) from the
    training split's counts (King & Zeng 2001; scikit-learn's `class_weight="balanced"`), per label with
    n_classes = 2 (its negatives and positives) for multi-label data; a list gives them (multi-label:
    the weight of each label's positives). Raises RecipeError naming `where`."""
    if spec is None or info is None:
        return None
    multilabel = info.task == "multilabel"
    n_cls = int(info.num_classes or 0)
    what = "label" if multilabel else "class"
    if isinstance(spec, list):
        if len(spec) != n_cls:
            raise RecipeError(f"{where}: expected {n_cls} weights (one per {what}), got {len(spec)}")
        w = torch.tensor(spec, dtype=torch.float32)
        return torch.stack([torch.ones(n_cls), w]) if multilabel else w
    counts = info.class_counts.get("train")
    if not counts:
        raise RecipeError(f"{where}: balanced needs the training split's {what} counts, which this data lacks; "
                          f"give one weight per {what}")
    c = torch.tensor(counts, dtype=torch.float64)
    if multilabel:
        n = float(info.sizes.get("train") or 0)
        both = torch.stack([n - c, c]).clamp_min(1)  # negatives and positives of each label
        return (n / (2 * both)).float()
    return (c.sum() / (n_cls * c.clamp_min(1))).float()


def _on(w: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor | None:
    return None if w is None else w.to(device=out.device, dtype=out.dtype)


class _CrossEntropy(nn.Module):
    def __init__(self, label_smoothing: float = 0.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.label_smoothing, self.weight = label_smoothing, weight

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.ndim == 3 and y.ndim == 2:  # per-position logits (B, T, C), targets (B, T): language models
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return F.cross_entropy(out, y, weight=_on(self.weight, out), label_smoothing=self.label_smoothing)


def cross_entropy(info=None, label_smoothing: Share = 0.0, class_weights: ClassWeights = None) -> nn.Module:
    """Softmax cross-entropy on logits; targets are class indices or class probabilities (soft);
    sequence outputs (B, T, C) with targets (B, T) are scored per position. `class_weights`:
    `balanced` or one weight per class (a weighted mean over the batch, as torch's `weight=`)."""
    return _CrossEntropy(label_smoothing, class_weight_tensor(class_weights, info))


def _binary_targets(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Targets shaped as the logits, as floats: class indices (N,) for one logit, soft two-class
    targets (N, 2) from mixup as their class-1 share, a 0/1 matrix (N, L) as it is."""
    if y.ndim == out.ndim - 1:
        y = y.unsqueeze(-1)
    elif y.shape[-1] == 2 and out.shape[-1] == 1:
        y = y[..., 1:]
    return y.to(out.dtype)


def _sample_weights(w: torch.Tensor | None, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """Per-element weights from (2, L) negative/positive weights: w_neg·(1 − y) + w_pos·y."""
    if w is None:
        return None
    w = _on(w, out)
    return w[0] + (w[1] - w[0]) * y


class _BCE(nn.Module):
    def __init__(self, pos_weight: torch.Tensor | None, weight: torch.Tensor | None):
        super().__init__()
        self.pos_weight, self.weight = pos_weight, weight

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = _binary_targets(out, y)
        return F.binary_cross_entropy_with_logits(out, y, weight=_sample_weights(self.weight, out, y),
                                                  pos_weight=_on(self.pos_weight, out))


def _binary_weights(class_weights: ClassWeights, info) -> torch.Tensor | None:
    """(2, L) negative/positive weights for a sigmoid loss: a two-class task's [w0, w1] as (2, 1)."""
    w = class_weight_tensor(class_weights, info)
    if w is not None and w.ndim == 1:
        w = w.view(2, 1)
    return w


def _check_binary(info, name: str) -> None:
    if info is not None and info.task == "classification" and (info.num_classes or 2) != 2:
        raise RecipeError(f"loss.name: {name} scores one logit per label, but this data has {info.num_classes} "
                          "classes; use cross_entropy or focal (softmax) for more than 2 classes")


def bce(info=None, pos_weight: Positive | list[Positive] | None = None,
        class_weights: ClassWeights = None) -> nn.Module:
    """Binary cross-entropy on logits (torch's binary_cross_entropy_with_logits): one logit for two
    classes (targets 0/1), or one per label for multi-label data (a 0/1 target matrix).
    `pos_weight`: the weight of positives (a number, or one per label); `class_weights`: `balanced`
    or one weight per class (two classes: [negatives, positives]; multi-label: each label's positives)."""
    _check_binary(info, "bce")
    if isinstance(pos_weight, list) and info is not None and len(pos_weight) != (info.output_dim or 1) and \
            info.task == "multilabel":
        raise RecipeError(f"loss.pos_weight: expected {info.output_dim} weights (one per label), got {len(pos_weight)}")
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32).reshape(-1)
    return _BCE(pw, _binary_weights(class_weights, info))


class _KLDiv(nn.Module):
    def __init__(self, temperature: float, label_smoothing: float):
        super().__init__()
        self.temperature, self.label_smoothing = temperature, label_smoothing

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = out.shape[-1]
        if not y.is_floating_point():  # class indices: one-hot, optionally smoothed
            y = F.one_hot(y, n).to(out.dtype)
            if self.label_smoothing:
                y = y * (1 - self.label_smoothing) + self.label_smoothing / n
        t = self.temperature
        # ·T² keeps the gradients' scale independent of the temperature (Hinton et al. 2015)
        return F.kl_div(F.log_softmax(out / t, dim=-1), y.to(out.dtype), reduction="batchmean") * (t * t)


def kl_div(temperature: Positive = 1.0, label_smoothing: Share = 0.0) -> nn.Module:
    """KL divergence from the target distribution to softmax(outputs / temperature), times T²
    (knowledge distillation, Hinton et al. 2015): targets are class probabilities (soft, e.g. a
    teacher's); class-index targets become one-hot (smoothed by `label_smoothing`)."""
    return _KLDiv(temperature, label_smoothing)


class _Regression(nn.Module):
    def __init__(self, fn, **kw):
        super().__init__()
        self.fn, self.kw = fn, kw

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(out, y.view_as(out).to(out.dtype), **self.kw)


def mse() -> nn.Module:
    """Mean squared error (regression)."""
    return _Regression(F.mse_loss)


def huber(delta: Positive = 1.0) -> nn.Module:
    """Huber loss: squared below `delta`, linear (slope delta) above; robust to outliers (Huber 1964)."""
    return _Regression(F.huber_loss, delta=delta)


def smooth_l1(beta: NonNegative = 1.0) -> nn.Module:
    """Smooth L1: squared / (2·beta) below `beta`, |error| − beta/2 above (Girshick 2015, Fast R-CNN)."""
    return _Regression(F.smooth_l1_loss, beta=beta)


class _Focal(nn.Module):
    def __init__(self, gamma: float, alpha: float | None, weight: torch.Tensor | None, sigmoid_weight,
                 multilabel: bool):
        super().__init__()
        self.gamma, self.alpha, self.weight, self.sigmoid_weight = gamma, alpha, weight, sigmoid_weight
        self.multilabel = multilabel

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.shape[-1] == 1 or self.multilabel:
            return self._sigmoid(out, y)
        if out.ndim == 3 and y.ndim == 2:
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        logp = F.log_softmax(out, dim=-1)
        t = y.to(out.dtype) if y.is_floating_point() else F.one_hot(y, out.shape[-1]).to(out.dtype)
        per = -(t * (1 - logp.exp()).pow(self.gamma) * logp).sum(-1)  # soft targets: summed over classes
        if self.alpha is not None:
            per = per * self.alpha
        w = _on(self.weight, out)
        if w is None:
            return per.mean()
        sw = t @ w  # each sample's class weight: a weighted mean, as cross_entropy's weight=
        return (per * sw).sum() / sw.sum()

    def _sigmoid(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = _binary_targets(out, y)
        ce = F.binary_cross_entropy_with_logits(out, y, reduction="none")
        p = torch.sigmoid(out)
        p_t = p * y + (1 - p) * (1 - y)
        loss = ce * (1 - p_t).pow(self.gamma)
        if self.alpha is not None:
            loss = loss * (self.alpha * y + (1 - self.alpha) * (1 - y))
        w = _sample_weights(self.sigmoid_weight, out, y)
        return (loss * w).mean() if w is not None else loss.mean()


def focal(info=None, gamma: NonNegative = 2.0, alpha: Annotated[float, Field(ge=0, le=1)] | None = None,
          class_weights: ClassWeights = None) -> nn.Module:
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 − p_t)^gamma, so easy examples count
    less. Softmax over the classes, or sigmoid per logit for a one-logit model and multi-label data
    (RetinaNet's form, with `alpha` the weight of positives and 1 − alpha of negatives; in the
    softmax form `alpha` is a constant factor). gamma 0 is cross-entropy. `class_weights` as for
    cross_entropy (softmax) or bce (sigmoid)."""
    multilabel = info is not None and info.task == "multilabel"
    w = class_weight_tensor(class_weights, info)
    if w is not None and w.ndim == 1:  # one weight per class: the softmax form's (and [w0, w1] for one logit)
        return _Focal(gamma, alpha, w, w.view(2, 1) if len(w) == 2 else None, multilabel)
    return _Focal(gamma, alpha, None, w, multilabel)


# `tasks`: the data a loss is for; a recipe that pairs a loss with other data is refused before training.
# `one_logit`: on two classes the model ends in one logit (model_outputs)
_CLS = ("classification", "multilabel")
LOSSES.add("cross_entropy", cross_entropy, "softmax cross-entropy with optional label smoothing and class weights",
           aliases=("ce",), tasks=("classification",))
LOSSES.add("bce", bce, "binary cross-entropy on logits: one logit for two classes, or multi-label; pos_weight",
           aliases=("binary_cross_entropy",), tasks=_CLS, one_logit=True)
LOSSES.add("focal", focal, "focal loss (Lin et al. 2017): softmax, or sigmoid for one logit / multi-label",
           tasks=_CLS)
LOSSES.add("kl_div", kl_div, "KL divergence to soft targets (distillation) with temperature; hard labels one-hot",
           aliases=("kl",), tasks=("classification",))
LOSSES.add("mse", mse, "mean squared error for regression", aliases=("l2",), tasks=("regression",))
LOSSES.add("huber", huber, "Huber loss for regression: squared below delta, linear above", tasks=("regression",))
LOSSES.add("smooth_l1", smooth_l1, "smooth L1 for regression: squared below beta, L1 above", tasks=("regression",))

AUTO = {"classification": "cross_entropy", "regression": "mse", "multilabel": "bce"}


def loss_name(cfg, task: str) -> str:
    """The canonical registry name `loss.name` resolves to for data of `task` (`auto`: by task)."""
    name = AUTO.get(task, "mse") if cfg.name == "auto" else cfg.name
    return LOSSES.get(name, "loss.name").name


def model_outputs(cfg, info) -> int:
    """How many outputs the model ends in: one logit for a two-class task under a one-logit loss
    (`bce`), else the data's `output_dim`."""
    if info.task == "classification" and info.num_classes == 2 and \
            LOSSES.get(loss_name(cfg, info.task), "loss.name").meta.get("one_logit"):
        return 1
    return info.output_dim


def build_loss(cfg, info) -> nn.Module:
    name = loss_name(cfg, info.task)
    tasks = LOSSES.get(name, "loss.name").meta.get("tasks")
    if tasks and info.task not in tasks:
        fits = [e.name for e in LOSSES.entries() if info.task in e.meta.get("tasks", (info.task,))]
        raise RecipeError(f"loss.name: {name!r} is a loss for {' or '.join(tasks)}, but the data is "
                          f"{info.task}; use auto or one of: {', '.join(fits)}")
    return LOSSES.build(name, cfg.options(), "loss", info=info)
