"""Evaluation metrics (torchmetrics underneath) over a whole split."""
from __future__ import annotations

import math
from typing import Any

import torch
import torchmetrics.functional as tmf

from .data import Split, eval_batches


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


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def compute_metrics(outputs: torch.Tensor, targets: torch.Tensor, task: str, loss_fn,
                    num_classes: int | None) -> dict[str, Any]:
    """Loss plus accuracy (classification) or MSE / RMSE / MAE / R² (regression)."""
    targets = targets.cpu()
    loss = float(loss_fn(outputs, targets))
    out: dict[str, Any] = {"loss": loss, "samples": int(len(targets))}
    if task == "classification" and outputs.ndim == 3 and targets.ndim == 2:
        # one prediction per position (language modelling): score every token
        outputs, targets = outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1)
        out["perplexity"] = math.exp(min(loss, 50.0))
    if task == "classification":
        preds = outputs.argmax(dim=1)
        out["accuracy"] = float(tmf.accuracy(preds, targets, task="multiclass", num_classes=num_classes,
                                             average="micro"))
    else:
        o, t = outputs.view(len(outputs), -1), targets.view(len(targets), -1).float()
        mse = float(tmf.mean_squared_error(o, t))
        out.update(mse=mse, rmse=mse ** 0.5, mae=float(tmf.mean_absolute_error(o, t)),
                   r2=float(tmf.r2_score(o.squeeze(1), t.squeeze(1)) if o.shape[1] == 1 else tmf.r2_score(o, t)))
    return out


def higher_is_better(metric: str) -> bool:
    name = metric.split(".")[-1]
    return name in ("accuracy", "r2", "f1", "precision", "recall", "auc", "auroc", "top5", "top_k_accuracy")
