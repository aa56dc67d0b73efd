"""The one evaluation path: predict a split, compute the full metric set, write eval/ and plots/.

Used by the end of training and by `trainlab evaluate`, so both produce the same numbers.
Files (for split S):
  eval/S.json                  every metric (see metrics.evaluate_outputs) + split, checkpoint, epoch, seconds
  eval/S_outputs.safetensors   the raw model outputs and targets, float32 / int64, in split order
  plots/S_confusion_matrix.png, S_roc.png, S_pr.png, S_wrong.png (image data) or S_predictions.png (regression)
"""
from __future__ import annotations

import time
from typing import Any

import torch

from ..metrics import evaluate_outputs, predict
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
    full = evaluate_outputs(outputs, targets, info.task, loss_fn.cpu(), info.num_classes,
                            info.class_names)
    metrics = {"split": split, "checkpoint": checkpoint, "epoch": epoch, **full,
               "seconds": round(time.perf_counter() - t0, 3)}
    if rd is None:
        return metrics
    rd.write_json(f"eval/{split}.json", metrics)
    write_outputs(rd, split, outputs, targets)
    if recipe.output.plots:
        write_eval_plots(rd, split, metrics, outputs, targets, s.x if info.kind == "image" else None)
    return metrics


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
