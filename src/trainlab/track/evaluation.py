"""The one evaluation path: predict a split, compute the full metric set, write eval/ and plots/.

Used by the end of training and by `trainlab evaluate`, so both produce the same numbers.
Files (for split S):
  eval/S.json                  every metric (see metrics.evaluate_outputs) + split, checkpoint, epoch, seconds,
                               and `baseline`: the majority-class or training-mean predictor on the same split
  eval/S_outputs.safetensors   the raw model outputs and targets, float32 / int64, in split order (regression:
                               in the original units, whatever `data.target_scaling` trained on)
  plots/S_confusion_matrix.png, S_roc.png, S_pr.png, S_wrong.png (image data) or S_predictions.png (regression)
"""
from __future__ import annotations

import time
from typing import Any

import torch

from ..metrics import evaluate_outputs, majority_baseline, mean_baseline, predict
from .plots import (eval_figures, eval_plot_name, most_confident_wrong, prediction_figure, save_png,
                    wrong_examples_figure)
from .rundir import RunDir, atomic_write

WRONG_EXAMPLES = 16


def outputs_name(split: str) -> str:
    return f"eval/{split}_outputs.safetensors"


def write_evaluation(rd: RunDir | None, recipe, bundle, model, loss_fn, device, channels_last: bool, split: str,
                     checkpoint: str, epoch: int) -> dict[str, Any]:
    """Evaluate `model` (the weights of `checkpoint`, saved after `epoch`) on `split` of `bundle`;
    write the files above into `rd` (None: write nothing); return the metrics."""
    t0 = time.perf_counter()
    info = bundle.info
    s = bundle.split(split)
    outputs = predict(model, s, recipe.data.eval_batch_size, device, channels_last, recipe.train.precision)
    targets = s.y.cpu()
    scaler = getattr(bundle, "target_scaler", None)
    if scaler is not None:  # the model learned standardized targets: metrics in the original units
        loss = float(loss_fn.cpu()(outputs, targets))  # the training objective, in the scaled units
        outputs, targets = scaler.unscale(outputs), scaler.unscale(targets)
    full = evaluate_outputs(outputs, targets, info.task, loss_fn.cpu(), info.num_classes,
                            info.class_names)
    if scaler is not None:
        full["loss"] = loss
        full["target_scaling"] = scaler.stats()
    metrics = {"split": split, "checkpoint": checkpoint, "epoch": epoch, **full,
               "baseline": baseline(bundle, targets), "seconds": round(time.perf_counter() - t0, 3)}
    if rd is None:
        return metrics
    rd.write_json(f"eval/{split}.json", metrics)
    write_outputs(rd, split, outputs, targets)
    if recipe.output.plots:
        write_eval_plots(rd, split, metrics, outputs, targets, s.x if info.kind == "image" else None)
    return metrics


def baseline(bundle, targets: torch.Tensor) -> dict[str, Any] | None:
    """The trivial predictor fitted on the training split, scored on `targets` (original units):
    the most frequent training class (classification) or the training target mean (regression).
    None where it means nothing (per-token targets)."""
    info = bundle.info
    if info.task == "classification":
        if info.extra.get("sequence_targets") or targets.ndim > 1 and not targets.is_floating_point():
            return None
        counts = info.class_counts.get("train")
        if not counts:
            y = bundle.train.y.cpu()
            counts = torch.bincount(y.argmax(1) if y.ndim == 2 else y, minlength=info.num_classes).tolist()
        return majority_baseline(targets, info.num_classes or len(counts), counts, info.class_names)
    scaler = getattr(bundle, "target_scaler", None)
    y = bundle.train.y.cpu().float()
    mean = scaler.shift if scaler is not None else y.reshape(len(y), -1).mean(dim=0)
    return mean_baseline(targets, mean)


def baseline_line(m: dict[str, Any]) -> str | None:
    """One line for the printed summaries: the baseline beside the model's own numbers."""
    b = m.get("baseline")
    if not b:
        return None
    if b["kind"] == "majority class":
        what, keys = f"always {b['class']!r}, the most frequent training class", ("accuracy", "f1_macro")
    else:
        mean = b["mean"] if isinstance(b["mean"], float) else "per-output means"
        what = f"always the training mean {mean:.4g}" if isinstance(mean, float) else f"always the training {mean}"
        keys = ("mse", "mae", "r2")
    shown = ", ".join(f"{k} {b[k]:.4f} (model {m[k]:.4f})" for k in keys if isinstance(m.get(k), float))
    return f"baseline ({what}): {shown}"


def write_outputs(rd: RunDir, split: str, outputs: torch.Tensor, targets: torch.Tensor) -> None:
    from safetensors.torch import save

    atomic_write(rd.inside(outputs_name(split)),
                 save({"outputs": outputs.contiguous(), "targets": targets.contiguous()}))


def read_outputs(rd: RunDir, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    from safetensors.torch import load_file

    p = rd.path / outputs_name(split)
    if not p.is_file():
        return None
    t = load_file(str(p))
    return t["outputs"], t["targets"]


def write_eval_plots(rd: RunDir, split: str, metrics: dict[str, Any], outputs: torch.Tensor,
                     targets: torch.Tensor, images: torch.Tensor | None) -> list[str]:
    """plots/<split>_*.png for one evaluation; returns the file names written."""
    figs = eval_figures(metrics, split)
    if metrics["task"] == "classification" and images is not None:
        picks = most_confident_wrong(outputs, targets, WRONG_EXAMPLES)
        if picks:
            figs["wrong"] = wrong_examples_figure(images, targets, picks, metrics["class_names"])
    elif metrics["task"] == "regression":
        figs["predictions"] = prediction_figure(outputs, targets, f"predicted vs true ({split})")
    names = []
    for kind, fig in figs.items():
        save_png(fig, rd.plot(eval_plot_name(split, kind)))
        names.append(eval_plot_name(split, kind))
    return names
