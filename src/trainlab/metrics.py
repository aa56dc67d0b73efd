"""Evaluation metrics over a whole split (torchmetrics underneath).

Two entry points share one implementation, so a number means the same thing everywhere:
`compute_metrics` returns the loss plus the scalar metrics a recipe asks for (`train.metrics`,
computed on the validation split once per epoch, never in the step loop), and
`evaluate_outputs` returns the full set for the task: every scalar, a per-class table, the
confusion matrix and the ROC / precision-recall curves (eval/<split>.json).

Every scalar metric is an entry of `METRICS` with its task and direction as metadata; the names a
recipe may use, what validation and evaluation compute and which way a monitor improves all come
from it, so adding a metric is one `METRICS.add(...)`.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from .data import Split, eval_batches
from .precision import autocast
from .registry import Entry, Registry

AVERAGES = ("macro", "micro", "weighted")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")


def _tmf():
    """torchmetrics.functional, imported at the first metric computed rather than with this module: it costs
    ~1-2 s (it imports scipy.signal and matplotlib), which `trainlab list`, a recipe check and a training's
    start-up need not pay."""
    import torchmetrics.functional

    return torchmetrics.functional


# Expected calibration error bins: 15 as in Guo et al. 2017, "On Calibration of Modern Neural Networks".
ECE_BINS = 15
# the few numbers `trainlab train` prints at the end (eval/test.json has them all)
HEADLINE = ("loss", "accuracy", "f1_macro", "auroc", "map", "ece", "mse", "rmse", "mae", "r2")
CURVE_POINTS = 200  # ROC / PR points kept per class in eval JSON (exact points, thinned evenly)


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


# --- the registry ------------------------------------------------------------------------------
@dataclass
class Classified:
    """What a classification metric reads: a split's outputs and class-index targets, with the
    probabilities and predicted classes computed once, when a metric first asks for them."""

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


@dataclass
class Labelled:
    """What a multi-label metric reads: a split's outputs (one logit per label) and its 0/1 target
    matrix, both (N, L); a label is predicted where its sigmoid exceeds MULTILABEL_THRESHOLD (as
    torchmetrics binarizes, and as a one-logit binary model predicts class 1 where its logit is > 0)."""

    outputs: torch.Tensor
    target: torch.Tensor
    num_labels: int

    @cached_property
    def probs(self) -> torch.Tensor:
        return torch.sigmoid(self.outputs.double())

    @cached_property
    def preds(self) -> torch.Tensor:
        return (self.probs > MULTILABEL_THRESHOLD).long()


MULTILABEL_THRESHOLD = 0.5


@dataclass
class Regressed:
    """What a regression metric reads: outputs and float targets of a split, both (N, D)."""

    outputs: torch.Tensor
    target: torch.Tensor


# A metric is a function of `c` (a Classified or a Regressed) returning a float. Its metadata:
#   task               "classification", "regression" or "multilabel": what data it fits
#   also               other tasks it fits too (its function then reads a Labelled as well), e.g. ("multilabel",)
#   higher_is_better   its direction, for monitors, early stopping, tuning and comparisons
#   needs_probs        whether it reads the probabilities (a ranking or calibration) or only the classes
#   default            logged on validation when `train.metrics` is empty
#   multilabel_default the same, for multi-label data
#   sequence           also meaningful per token when a model predicts one class per position
#   check              (family) check(num_classes, **params) -> why it does not fit, or None
#   evaluated          (family) evaluated(num_classes) -> the members `trainlab evaluate` reports
METRICS = Registry("metric", "metrics", context=("c",), required=("task", "higher_is_better", "needs_probs"))


def _accuracy(c: Classified) -> float:
    return float(_tmf().accuracy(c.preds, c.target, task="multiclass", num_classes=c.num_classes, average="micro"))


def _topk_accuracy(c: Classified, k: int) -> float:
    return float(_tmf().classification.multiclass_accuracy(c.probs, c.target, c.num_classes, top_k=k, average="micro"))


def _topk_fits(num_classes: int, k: int) -> str | None:
    return None if 1 <= k < num_classes else f"needs 1 <= k < {num_classes} (the number of classes)"


def _topk_evaluated(num_classes: int) -> list[str]:
    k = 5 if num_classes > 5 else 2 if num_classes > 2 else None
    return [f"top{k}_accuracy"] if k else []


def _prf(kind: str, average: str):
    name = {"precision": "multiclass_precision", "recall": "multiclass_recall", "f1": "multiclass_f1_score"}[kind]

    def metric(c: Classified | Labelled) -> float:
        if isinstance(c, Labelled):
            fn = getattr(_tmf().classification, name.replace("multiclass", "multilabel"))
            return float(fn(c.probs, c.target, c.num_labels, threshold=MULTILABEL_THRESHOLD, average=average))
        fn = getattr(_tmf().classification, name)
        return float(fn(c.preds, c.target, c.num_classes, average=average))
    return metric


def _auroc(c: Classified | Labelled) -> float:
    with _float64_curves():
        if isinstance(c, Labelled):
            return float(_tmf().classification.multilabel_auroc(c.probs, c.target, c.num_labels, average="macro"))
        if c.binary:
            return float(_tmf().classification.binary_auroc(c.probs[:, 1], c.target))
        return float(_tmf().classification.multiclass_auroc(c.probs, c.target, c.num_classes, average="macro"))


def _average_precision(c: Classified | Labelled) -> float:
    with _float64_curves():
        if isinstance(c, Labelled):  # the mean over labels of each one's AP: mAP
            return float(_tmf().classification.multilabel_average_precision(c.probs, c.target, c.num_labels,
                                                                            average="macro"))
        if c.binary:
            return float(_tmf().classification.binary_average_precision(c.probs[:, 1], c.target))
        return float(_tmf().classification.multiclass_average_precision(c.probs, c.target, c.num_classes,
                                                                     average="macro"))


def _ece(c: Classified) -> float:  # top-label ECE, the same definition for two classes as for ten
    return float(_tmf().classification.multiclass_calibration_error(c.probs, c.target, c.num_classes,
                                                                 n_bins=ECE_BINS, norm="l1"))


def _subset_accuracy(c: Labelled) -> float:
    return float(_tmf().classification.multilabel_exact_match(c.probs, c.target, c.num_labels,
                                                              threshold=MULTILABEL_THRESHOLD))


def _hamming(c: Labelled) -> float:
    return float(_tmf().classification.multilabel_hamming_distance(c.probs, c.target, c.num_labels,
                                                                   threshold=MULTILABEL_THRESHOLD, average="micro"))


def _mse(c: Regressed) -> float:
    return float(_tmf().mean_squared_error(c.outputs, c.target))


def _rmse(c: Regressed) -> float:
    return _mse(c) ** 0.5


def _mae(c: Regressed) -> float:
    return float(_tmf().mean_absolute_error(c.outputs, c.target))


def _r2(c: Regressed) -> float:
    o, t = c.outputs, c.target
    return float(_tmf().r2_score(o.squeeze(1), t.squeeze(1)) if o.shape[1] == 1 else _tmf().r2_score(o, t))


_CLS = {"task": "classification", "higher_is_better": True}
# `also`: other tasks an entry fits (its function reads a Labelled too); `multilabel_default`: logged on
# validation of multi-label data when `train.metrics` is empty
_ML = {"also": ("multilabel",)}
_REG = {"task": "regression", "needs_probs": False}
# registration order is the order `trainlab evaluate` reports them in
METRICS.add("accuracy", _accuracy, "share of samples whose predicted class is the true one",
            **_CLS, needs_probs=False, default=True, sequence=True)
METRICS.add_family("top<k>_accuracy", r"top(?P<k>\d+)_accuracy", _topk_accuracy,
                   "share of samples whose true class is among the k most probable (any k, 1 <= k < classes)",
                   **_CLS, needs_probs=True, sequence=True, check=_topk_fits, evaluated=_topk_evaluated)
for _avg in AVERAGES:
    for _kind in ("precision", "recall", "f1"):
        METRICS.add(f"{_kind}_{_avg}", _prf(_kind, _avg), f"{_kind}, {_avg}-averaged over the classes "
                    "(multi-label: over the labels, threshold 0.5)", **_CLS, needs_probs=False, **_ML,
                    multilabel_default=_kind == "f1" and _avg in ("macro", "micro"))
METRICS.add("auroc", _auroc, "area under the ROC curve (binary, or one-vs-rest macro; multi-label: macro over "
            "the labels)", **_CLS, needs_probs=True, **_ML)
METRICS.add("average_precision", _average_precision, "area under the precision-recall curve (binary, or "
            "one-vs-rest macro; multi-label: mAP)", **_CLS, needs_probs=True, **_ML)
METRICS.add("ece", _ece, f"top-label expected calibration error, {ECE_BINS} bins (Guo et al. 2017)",
            task="classification", higher_is_better=False, needs_probs=True)
METRICS.add("map", _average_precision, "multi-label mean average precision: each label's AP, averaged",
            task="multilabel", higher_is_better=True, needs_probs=True, multilabel_default=True)
METRICS.add("subset_accuracy", _subset_accuracy, "multi-label share of samples with every label right (exact match)",
            task="multilabel", higher_is_better=True, needs_probs=False, multilabel_default=True)
METRICS.add("hamming", _hamming, "multi-label Hamming loss: share of wrong label cells",
            task="multilabel", higher_is_better=False, needs_probs=False, multilabel_default=True)
METRICS.add("mse", _mse, "mean squared error", **_REG, higher_is_better=False, default=True)
METRICS.add("rmse", _rmse, "root mean squared error", **_REG, higher_is_better=False, default=True)
METRICS.add("mae", _mae, "mean absolute error", **_REG, higher_is_better=False, default=True)
METRICS.add("r2", _r2, "coefficient of determination (R²)", **_REG, higher_is_better=True, default=True)


# --- names -------------------------------------------------------------------------------------
def fits(entry: Entry, task: str | None) -> bool:
    """Whether metric `entry` is computed for data of `task` (its own task, or one it is `also` for)."""
    return task is None or entry.meta["task"] == task or task in entry.meta.get("also", ())


def _of_task(task: str) -> list[Entry]:
    return [e for e in METRICS.entries(sort=False) if fits(e, task)]


def classification_metrics(num_classes: int) -> list[str]:
    """Every scalar classification metric of the full evaluation, for `num_classes` classes."""
    names: list[str] = []
    for e in _of_task("classification"):
        names += e.meta["evaluated"](num_classes) if e.pattern else [e.name]
    return names


def metric_names(task: str, num_classes: int | None) -> list[str]:
    """The scalar metrics `trainlab evaluate` reports for a task (the loss comes on top)."""
    if task == "classification":
        return classification_metrics(num_classes or 2)
    return [e.name for e in _of_task(task) if not e.pattern]


def default_metrics(task: str) -> list[str]:
    """What validation logs when the recipe leaves `train.metrics` empty."""
    key = "multilabel_default" if task == "multilabel" else "default"
    return [e.name for e in _of_task(task) if e.meta.get(key)]


REGRESSION_METRICS = tuple(metric_names("regression", None))  # the built-in ones


def default_monitor(task: str, has_val: bool) -> str:
    """The metric that picks the best checkpoint when nothing names one: validation accuracy for
    classification, validation loss otherwise, the training loss without a validation split."""
    if not has_val:
        return "train.loss"
    return "val.accuracy" if task == "classification" else "val.loss"


def resolve_monitor(recipe, task: str, has_val: bool) -> str:
    """`train.monitor`; when `auto`, what early stopping watches; else `default_monitor`. The trainer
    (best checkpoint), `tune`'s default objective, `compare` and the runs table all ask this.
    `recipe`: a Recipe or its dict (a run directory's recipe.yaml)."""
    if isinstance(recipe, dict):  # a resolved recipe.yaml names every field; "val.loss" is the schema's default
        monitor = (recipe.get("train") or {}).get("monitor", "auto")
        es = recipe.get("early_stopping")
        es_monitor = (es.get("monitor") or "val.loss") if isinstance(es, dict) else None
    else:
        monitor = recipe.train.monitor
        es_monitor = recipe.early_stopping.monitor if recipe.early_stopping is not None else None
    if monitor != "auto":
        return monitor
    return es_monitor or default_monitor(task, has_val)


def validation_metrics(recipe, task: str) -> list[str]:
    """What validation computes each epoch: `train.metrics` (or the task's default) plus a metric
    that `train.monitor` or `early_stopping.monitor` names, so `val.f1_macro` works unlisted."""
    names = list(recipe.train.metrics) or default_metrics(task)
    es = recipe.early_stopping
    plateau = recipe.schedule.options().get("monitor")  # reduce_on_plateau's, when the recipe names one
    for monitor in (recipe.train.monitor, es.monitor if es is not None else "",
                    plateau if isinstance(plateau, str) else ""):
        name = monitor[4:] if monitor.startswith("val.") else ""
        entry = METRICS.find(name) if name else None
        if entry is not None and fits(entry, task) and name not in names:
            names.append(name)
    return names


def monitor_problem(value: str) -> str | None:
    """Why `value` can never be a logged metric (whatever the data), or None. A monitor is
    `train.loss`, `train.accuracy`, `val.loss`, `val.perplexity` or `val.<metric>`."""
    split, _, name = value.partition(".")
    if split == "train" and name in ("loss", "accuracy"):
        return None
    if split == "val" and (name in ("loss", "perplexity") or METRICS.find(name) is not None):
        return None
    import difflib

    known = ["train.loss", "train.accuracy", "val.loss", "val.perplexity"] + [
        f"val.{e.name}" for e in METRICS.entries() if e.pattern is None]
    close = difflib.get_close_matches(value, known, n=2, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return (f"{value!r} is not a metric trainlab logs{hint}; use train.loss, train.accuracy, val.loss or "
            "val.<metric> (`trainlab list metrics`)")


def check_monitors(monitors: dict[str, str], recipe, task: str, has_val: bool, num_classes: int | None,
                   sequence: bool = False) -> None:
    """Every monitor (recipe key -> value: `train.monitor`, `early_stopping.monitor`,
    `schedule.monitor`) names a metric this run logs each epoch, given its data. Raises RecipeError
    naming the key, the value and the choices, before any epoch runs."""
    from .errors import RecipeError

    names = validation_metrics(recipe, task)
    if sequence:
        names = [n for n in names if (METRICS.find(n) and METRICS.find(n).meta.get("sequence"))] or ["accuracy"]
    logged = ["train.loss"] + (["train.accuracy"] if task == "classification" else [])
    if has_val:
        logged += ["val.loss"] + (["val.perplexity"] if sequence else []) + [f"val.{n}" for n in names]
    for key, value in monitors.items():
        split, _, name = value.partition(".")
        entry = METRICS.find(name) if split == "val" else None
        check = entry.meta.get("check") if entry is not None else None
        reason = check(num_classes, **entry.params) if check and num_classes is not None else None
        if reason:
            raise RecipeError(f"{key}: {value!r} {reason}")
        if value in logged:
            continue
        why = monitor_problem(value)
        if why is None and split == "val" and not has_val:
            why = f"{value!r} needs a validation split, and this run has none (data.val_fraction: 0)"
        elif why is None and name == "accuracy" and task != "classification":
            why = f"{value!r} is a classification metric but this data is {task}"
        elif why is None and split == "val":
            if entry is not None and not fits(entry, task):
                why = f"{value!r} is a {entry.meta['task']} metric but this data is {task}"
            elif name == "perplexity" or sequence:
                why = f"{value!r} is not computed for this data"
        raise RecipeError(f"{key}: {why or repr(value) + ' is not logged'}; this run logs {', '.join(logged)}")


def metric_task(name: str) -> str | None:
    """'classification', 'regression', or None for a name trainlab does not know."""
    entry = METRICS.find(name)
    return entry.meta["task"] if entry is not None else None


def check_metric_names(names: list[str] | None, task: str | None = None, num_classes: int | None = None,
                       where: str = "train.metrics") -> None:
    """Raise RecipeError naming the first unknown metric or one that does not fit the task."""
    from .errors import RecipeError

    for i, name in enumerate(names or []):
        entry = METRICS.get(name, f"{where}[{i}]")
        kind = entry.meta["task"]
        if not fits(entry, task):
            raise RecipeError(f"{where}[{i}]: {name!r} is a {kind} metric but this data is {task}")
        check = entry.meta.get("check")
        why = check(num_classes, **entry.params) if check and num_classes is not None else None
        if why:
            raise RecipeError(f"{where}[{i}]: {name!r} {why}")


# names trainlab does not log but other tools and loose --target spellings use
_HIGHER_ELSEWHERE = ("f1", "precision", "recall", "auc", "top5", "top_k_accuracy")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` (`val.auroc`, `loss`, ...) is better."""
    name = metric.split(".")[-1]
    entry = METRICS.find(name)
    return bool(entry.meta["higher_is_better"]) if entry is not None else name in _HIGHER_ELSEWHERE


@contextmanager
def _float64_curves():
    """torchmetrics divides integer counts into the default dtype (float32) when it builds ROC / PR
    curves; in float64 their areas agree with scikit-learn's to ~1e-15 instead of ~1e-7."""
    _tmf()  # torchmetrics is imported (if it is the first use) under the usual default dtype
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


# --- computing ---------------------------------------------------------------------------------
def _classified(outputs: torch.Tensor, targets: torch.Tensor, num_classes: int | None) -> Classified:
    t = targets.cpu()
    if t.ndim == 2:  # soft / one-hot targets: the class is the argmax
        t = t.argmax(dim=1)
    c = int(num_classes or max(outputs.shape[1], 2))
    return Classified(outputs.cpu(), t.long(), c)


def _regressed(outputs: torch.Tensor, targets: torch.Tensor) -> Regressed:
    return Regressed(outputs.view(len(outputs), -1), targets.view(len(targets), -1).float())


def is_sequence(outputs: torch.Tensor, targets: torch.Tensor) -> bool:
    """(N, T, V) outputs against (N, T) class indices: one prediction per position."""
    return outputs.ndim == 3 and targets.ndim == 2 and not targets.is_floating_point()


def compute_metrics(outputs: torch.Tensor, targets: torch.Tensor, task: str, loss_fn,
                    num_classes: int | None, names: list[str] | None = None) -> dict[str, Any]:
    """Loss, sample count and the scalar metrics `names` (default: `default_metrics(task)`)."""
    targets = targets.cpu()
    out: dict[str, Any] = {"loss": float(loss_fn(outputs, targets)), "samples": int(len(targets))}
    names = list(names) if names else default_metrics(task)
    entries = [METRICS.get(n, "train.metrics") for n in names]
    if is_sequence(outputs, targets):
        # one prediction per position (language modelling): score every token; per-class tables
        # over a vocabulary mean nothing, so only accuracy-like metrics and perplexity
        outputs, targets = outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1)
        out["perplexity"] = math.exp(min(out["loss"], 50.0))
        entries = [e for e in entries if e.meta.get("sequence")] or [METRICS.get("accuracy")]
    c = (_classified(outputs, targets, num_classes) if task == "classification" else
         _labelled(outputs, targets) if task == "multilabel" else _regressed(outputs, targets))
    out.update({e.name: e.factory(c) for e in entries})
    return out


def _labelled(outputs: torch.Tensor, targets: torch.Tensor) -> Labelled:
    return Labelled(outputs.cpu(), targets.cpu().round().long(), int(outputs.shape[1]))


def evaluate_outputs(outputs: torch.Tensor, targets: torch.Tensor, task: str, loss_fn,
                     num_classes: int | None, class_names: list[str] | None = None) -> dict[str, Any]:
    """The full metric set of a split: `compute_metrics` over every scalar of the task, plus for
    classification `per_class`, `confusion_matrix` (rows: true class, columns: predicted) and the
    one-vs-rest `roc` and `pr` curves (one entry for the positive class when binary)."""
    out = compute_metrics(outputs, targets, task, loss_fn, num_classes, metric_names(task, num_classes))
    out["task"] = task
    if task == "multilabel":
        c = _labelled(outputs, targets)
        out["class_names"] = class_names or [str(i) for i in range(c.num_labels)]
        with _float64_curves():
            out["per_label"] = per_label(c, out["class_names"])
        return out
    if task != "classification" or is_sequence(outputs, targets):
        return out
    c = _classified(outputs, targets, num_classes)
    names = class_names or [str(i) for i in range(c.num_classes)]
    out["class_names"] = names
    with _float64_curves():
        out["per_class"] = _per_class(c, names)
        out["roc"], out["pr"] = _curves(c, names, out["per_class"])
    out["confusion_matrix"] = _tmf().classification.multiclass_confusion_matrix(
        c.preds, c.target, c.num_classes).tolist()
    return out


def _per_class(c: Classified, names: list[str]) -> list[dict[str, Any]]:
    n, t = c.num_classes, c.target
    cols = {
        "precision": _tmf().classification.multiclass_precision(c.preds, t, n, average=None),
        "recall": _tmf().classification.multiclass_recall(c.preds, t, n, average=None),
        "f1": _tmf().classification.multiclass_f1_score(c.preds, t, n, average=None),
        "support": torch.bincount(t, minlength=n),
        "auroc": _tmf().classification.multiclass_auroc(c.probs, t, n, average=None),
        "average_precision": _tmf().classification.multiclass_average_precision(c.probs, t, n, average=None),
    }
    rows = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"class": name}
        for k, v in cols.items():
            row[k] = int(v[i]) if k == "support" else float(v[i])
        rows.append(row)
    return rows


def per_label(c: Labelled, names: list[str]) -> list[dict[str, Any]]:
    """One row per label of multi-label data: its support (positives), precision, recall and F1 with
    the label predicted where its sigmoid exceeds MULTILABEL_THRESHOLD, and its average precision (AP;
    their mean is `map`)."""
    cl, n, t = _tmf().classification, c.num_labels, c.target
    kw = {"threshold": MULTILABEL_THRESHOLD, "average": None}
    cols = {
        "support": t.sum(0),
        "precision": cl.multilabel_precision(c.probs, t, n, **kw),
        "recall": cl.multilabel_recall(c.probs, t, n, **kw),
        "f1": cl.multilabel_f1_score(c.probs, t, n, **kw),
        "average_precision": cl.multilabel_average_precision(c.probs, t, n, average=None),
    }
    return [{"label": name, **{k: int(v[i]) if k == "support" else float(v[i]) for k, v in cols.items()}}
            for i, name in enumerate(names)]


def _curves(c: Classified, names: list[str], per_class: list[dict]) -> tuple[list[dict], list[dict]]:
    """Exact ROC and PR curves, thinned to CURVE_POINTS points each for the JSON file."""
    t = c.target
    if c.binary:
        fpr, tpr, _ = _tmf().classification.binary_roc(c.probs[:, 1], t)
        prec, rec, _ = _tmf().classification.binary_precision_recall_curve(c.probs[:, 1], t)
        fprs, tprs, precs, recs, classes = [fpr], [tpr], [prec], [rec], [1]
    else:
        fprs, tprs, _ = _tmf().classification.multiclass_roc(c.probs, t, c.num_classes)
        precs, recs, _ = _tmf().classification.multiclass_precision_recall_curve(c.probs, t, c.num_classes)
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
