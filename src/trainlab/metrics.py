"""Evaluation metrics over a whole split (torchmetrics underneath).

Two entry points share one implementation, so a number means the same thing everywhere:
`compute_metrics` returns the loss plus the scalar metrics a recipe asks for (`train.metrics`,
computed on the validation split once per epoch, never in the step loop), and
`evaluate_outputs` returns the full set for the task: every scalar, a per-class table, the
confusion matrix and the ROC / precision-recall curves (eval/<split>.json).
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
import torchmetrics.functional as tmf

from .data import Split, eval_batches
from .precision import autocast

AVERAGES = ("macro", "micro", "weighted")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")
# Expected calibration error bins: 15 as in Guo et al. 2017, "On Calibration of Modern Neural Networks".
ECE_BINS = 15
# the few numbers `trainlab train` prints at the end (eval/test.json has them all)
HEADLINE = ("loss", "accuracy", "f1_macro", "auroc", "ece", "mse", "rmse", "mae", "r2")
CURVE_POINTS = 200  # ROC / PR points kept per class in eval JSON (exact points, thinned evenly)
_TOPK = re.compile(r"top(\d+)_accuracy")
_PRF = re.compile(r"(precision|recall|f1)_(macro|micro|weighted)")


@torch.no_grad()
def predict(model: torch.nn.Module, split: Split, batch_size: int, device: torch.device,
            channels_last: bool = False, precision: str = "fp32") -> torch.Tensor:
    """Model outputs for every sample of `split`, in order, as float32 on the CPU."""
    model.eval()
    outs = []
    for xb, _ in eval_batches(split, batch_size):
        xb = xb.to(device, non_blocking=True)
        if channels_last and xb.ndim == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            outs.append(model(xb).float())
    return torch.cat(outs).cpu()


# --- names -------------------------------------------------------------------------------------
def classification_metrics(num_classes: int) -> list[str]:
    """Every scalar classification metric of the full evaluation, for `num_classes` classes."""
    k = 5 if num_classes > 5 else 2 if num_classes > 2 else None
    names = ["accuracy"] + ([f"top{k}_accuracy"] if k else [])
    names += [f"{m}_{avg}" for avg in AVERAGES for m in ("precision", "recall", "f1")]
    return names + ["auroc", "average_precision", "ece"]


def metric_names(task: str, num_classes: int | None) -> list[str]:
    """The scalar metrics `trainlab evaluate` reports for a task (the loss comes on top)."""
    return classification_metrics(num_classes or 2) if task == "classification" else list(REGRESSION_METRICS)


def default_metrics(task: str) -> list[str]:
    """What validation logs when the recipe leaves `train.metrics` empty."""
    return ["accuracy"] if task == "classification" else list(REGRESSION_METRICS)


def validation_metrics(recipe, task: str) -> list[str]:
    """What validation computes each epoch: `train.metrics` (or the task's default) plus a metric
    that `train.monitor` or `early_stopping.monitor` names, so `val.f1_macro` works unlisted."""
    names = list(recipe.train.metrics) or default_metrics(task)
    es = recipe.early_stopping
    for monitor in (recipe.train.monitor, es.monitor if es is not None else ""):
        name = monitor[4:] if monitor.startswith("val.") else ""
        if metric_task(name) == task and name not in names:
            names.append(name)
    return names


def metric_task(name: str) -> str | None:
    """'classification', 'regression', or None for a name trainlab does not know."""
    if name in REGRESSION_METRICS:
        return "regression"
    if name in ("accuracy", "auroc", "average_precision", "ece") or _TOPK.fullmatch(name) or _PRF.fullmatch(name):
        return "classification"
    return None


def check_metric_names(names: list[str] | None, task: str | None = None, num_classes: int | None = None,
                       where: str = "train.metrics") -> None:
    """Raise RecipeError naming the first unknown metric or one that does not fit the task."""
    from .errors import RecipeError

    for i, name in enumerate(names or []):
        kind = metric_task(name)
        if kind is None:
            known = ", ".join(classification_metrics(10) + list(REGRESSION_METRICS))
            raise RecipeError(f"{where}[{i}]: unknown metric {name!r}; known: {known} (any topK_accuracy)")
        if task is not None and kind != task:
            raise RecipeError(f"{where}[{i}]: {name!r} is a {kind} metric but this data is {task}")
        m = _TOPK.fullmatch(name)
        if m and num_classes is not None and not 1 <= int(m.group(1)) < num_classes:
            raise RecipeError(f"{where}[{i}]: {name!r} needs 1 <= k < {num_classes} (the number of classes)")


def higher_is_better(metric: str) -> bool:
    name = metric.split(".")[-1]
    return (name in ("accuracy", "r2", "f1", "precision", "recall", "auc", "auroc", "average_precision",
                     "top5", "top_k_accuracy") or bool(_TOPK.fullmatch(name) or _PRF.fullmatch(name)))


@contextmanager
def _float64_curves():
    """torchmetrics divides integer counts into the default dtype (float32) when it builds ROC / PR
    curves; in float64 their areas agree with scikit-learn's to ~1e-15 instead of ~1e-7."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# --- computing ---------------------------------------------------------------------------------
@dataclass
class _Classified:
    """Outputs and targets of a classification split, with the views metrics need computed once."""

    outputs: torch.Tensor
    target: torch.Tensor
    num_classes: int

    @cached_property
    def probs(self) -> torch.Tensor:
        # float64 so that curve areas match scikit-learn's to ~1e-12, not float32's ~1e-7
        o = self.outputs.double()
        if o.shape[1] == 1:  # one logit (binary cross-entropy): p(class 1) = sigmoid
            p1 = torch.sigmoid(o[:, 0])
            return torch.stack([1 - p1, p1], dim=1)
        return torch.softmax(o, dim=1)

    @cached_property
    def preds(self) -> torch.Tensor:
        if self.outputs.shape[1] == 1:
            return (self.outputs[:, 0] > 0).long()
        return self.outputs.argmax(dim=1)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2


def _classified(outputs: torch.Tensor, targets: torch.Tensor, num_classes: int | None) -> _Classified:
    t = targets.cpu()
    if t.ndim == 2:  # soft / one-hot targets: the class is the argmax
        t = t.argmax(dim=1)
    c = int(num_classes or max(outputs.shape[1], 2))
    return _Classified(outputs.cpu(), t.long(), c)


def _scalar(name: str, c: _Classified) -> float:
    n, t = c.num_classes, c.target
    if name == "accuracy":
        return float(tmf.accuracy(c.preds, t, task="multiclass", num_classes=n, average="micro"))
    if m := _TOPK.fullmatch(name):
        return float(tmf.classification.multiclass_accuracy(c.probs, t, n, top_k=int(m.group(1)), average="micro"))
    if m := _PRF.fullmatch(name):
        fn = {"precision": tmf.classification.multiclass_precision, "recall": tmf.classification.multiclass_recall,
              "f1": tmf.classification.multiclass_f1_score}[m.group(1)]
        return float(fn(c.preds, t, n, average=m.group(2)))
    if name == "auroc":
        with _float64_curves():
            if c.binary:
                return float(tmf.classification.binary_auroc(c.probs[:, 1], t))
            return float(tmf.classification.multiclass_auroc(c.probs, t, n, average="macro"))
    if name == "average_precision":
        with _float64_curves():
            if c.binary:
                return float(tmf.classification.binary_average_precision(c.probs[:, 1], t))
            return float(tmf.classification.multiclass_average_precision(c.probs, t, n, average="macro"))
    if name == "ece":  # top-label ECE, the same definition for two classes as for ten
        return float(tmf.classification.multiclass_calibration_error(c.probs, t, n, n_bins=ECE_BINS, norm="l1"))
    raise KeyError(name)


def _regression(outputs: torch.Tensor, targets: torch.Tensor, names: list[str]) -> dict[str, float]:
    o, t = outputs.view(len(outputs), -1), targets.view(len(targets), -1).float()
    mse = float(tmf.mean_squared_error(o, t))
    every = {"mse": mse, "rmse": mse ** 0.5, "mae": float(tmf.mean_absolute_error(o, t)),
             "r2": float(tmf.r2_score(o.squeeze(1), t.squeeze(1)) if o.shape[1] == 1 else tmf.r2_score(o, t))}
    return {k: every[k] for k in names}


def is_sequence(outputs: torch.Tensor, targets: torch.Tensor) -> bool:
    """(N, T, V) outputs against (N, T) class indices: one prediction per position."""
    return outputs.ndim == 3 and targets.ndim == 2 and not targets.is_floating_point()


def compute_metrics(outputs: torch.Tensor, targets: torch.Tensor, task: str, loss_fn,
                    num_classes: int | None, names: list[str] | None = None) -> dict[str, Any]:
    """Loss, sample count and the scalar metrics `names` (default: `default_metrics(task)`)."""
    targets = targets.cpu()
    out: dict[str, Any] = {"loss": float(loss_fn(outputs, targets)), "samples": int(len(targets))}
    names = list(names) if names else default_metrics(task)
    if is_sequence(outputs, targets):
        # one prediction per position (language modelling): score every token; per-class tables
        # over a vocabulary mean nothing, so only accuracy and perplexity
        outputs, targets = outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1)
        out["perplexity"] = math.exp(min(out["loss"], 50.0))
        names = [n for n in names if n == "accuracy" or _TOPK.fullmatch(n)] or ["accuracy"]
    if task == "classification":
        c = _classified(outputs, targets, num_classes)
        out.update({name: _scalar(name, c) for name in names})
    else:
        out.update(_regression(outputs, targets, names))
    return out


def evaluate_outputs(outputs: torch.Tensor, targets: torch.Tensor, task: str, loss_fn,
                     num_classes: int | None, class_names: list[str] | None = None) -> dict[str, Any]:
    """The full metric set of a split: `compute_metrics` over every scalar of the task, plus for
    classification `per_class`, `confusion_matrix` (rows: true class, columns: predicted) and the
    one-vs-rest `roc` and `pr` curves (one entry for the positive class when binary)."""
    out = compute_metrics(outputs, targets, task, loss_fn, num_classes, metric_names(task, num_classes))
    out["task"] = task
    if task != "classification" or is_sequence(outputs, targets):
        return out
    c = _classified(outputs, targets, num_classes)
    names = class_names or [str(i) for i in range(c.num_classes)]
    out["class_names"] = names
    with _float64_curves():
        out["per_class"] = _per_class(c, names)
        out["roc"], out["pr"] = _curves(c, names, out["per_class"])
    out["confusion_matrix"] = tmf.classification.multiclass_confusion_matrix(
        c.preds, c.target, c.num_classes).tolist()
    return out


def _per_class(c: _Classified, names: list[str]) -> list[dict[str, Any]]:
    n, t = c.num_classes, c.target
    cols = {
        "precision": tmf.classification.multiclass_precision(c.preds, t, n, average=None),
        "recall": tmf.classification.multiclass_recall(c.preds, t, n, average=None),
        "f1": tmf.classification.multiclass_f1_score(c.preds, t, n, average=None),
        "support": torch.bincount(t, minlength=n),
        "auroc": tmf.classification.multiclass_auroc(c.probs, t, n, average=None),
        "average_precision": tmf.classification.multiclass_average_precision(c.probs, t, n, average=None),
    }
    rows = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"class": name}
        for k, v in cols.items():
            row[k] = int(v[i]) if k == "support" else float(v[i])
        rows.append(row)
    return rows


def _curves(c: _Classified, names: list[str], per_class: list[dict]) -> tuple[list[dict], list[dict]]:
    """Exact ROC and PR curves, thinned to CURVE_POINTS points each for the JSON file."""
    t = c.target
    if c.binary:
        fpr, tpr, _ = tmf.classification.binary_roc(c.probs[:, 1], t)
        prec, rec, _ = tmf.classification.binary_precision_recall_curve(c.probs[:, 1], t)
        fprs, tprs, precs, recs, classes = [fpr], [tpr], [prec], [rec], [1]
    else:
        fprs, tprs, _ = tmf.classification.multiclass_roc(c.probs, t, c.num_classes)
        precs, recs, _ = tmf.classification.multiclass_precision_recall_curve(c.probs, t, c.num_classes)
        classes = list(range(c.num_classes))
    roc, pr = [], []
    for j, k in enumerate(classes):
        roc.append({"class": names[k], "auroc": per_class[k]["auroc"],
                    "fpr": _thin(fprs[j]), "tpr": _thin(tprs[j])})
        pr.append({"class": names[k], "average_precision": per_class[k]["average_precision"],
                   "precision": _thin(precs[j]), "recall": _thin(recs[j])})
    return roc, pr


def _thin(x: torch.Tensor, n: int = CURVE_POINTS) -> list[float]:
    if len(x) <= n:
        return [round(float(v), 6) for v in x]
    idx = torch.linspace(0, len(x) - 1, n).round().long().unique()
    return [round(float(v), 6) for v in x[idx]]
