"""Quantize a trained run into a child run (`trainlab compress --method quantize`).

- `int8_dynamic` / `int8_weight_only`: torchao's `quantize_` on the Linear layers (int8 weights,
  per-row scales; dynamic also quantizes activations per batch). The child's model.safetensors holds
  the int8 data and scales as plain tensors (models/quantized.py), about 4x smaller than fp32, and
  `load_run` of the child rebuilds the same quantized model. Eager int8 is slower than fp32 on a
  CPU; `torch.compile` makes dynamic int8 faster at large batches (benchmarks/compress_quant.py).
- `int8_static` (conv nets): the deployment path through ONNX Runtime. The run's raw-input ONNX graph
  (trainlab.deploy.export) goes through `onnxruntime.quantization.quantize_static` (QDQ, per-channel
  int8 weights, int8 activations calibrated on `calibration` samples of the training split). The
  child holds the fp32 model (its checkpoint) and the int8 graph as export/<checkpoint>.int8.onnx;
  eval/int8_onnx.json has the int8 graph's test accuracy beside the fp32 graph's.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..api import Run, load_run
from ..errors import RecipeError
from ..models.quantized import LINEAR_SCHEMES, linear_layers, quantize_linear
from .child import child_recipe, record

SCHEMES = (*LINEAR_SCHEMES, "int8_static")
CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def check_scheme(model: nn.Module, scheme: str, where: str = "compress.scheme") -> None:
    """RecipeError naming `where` for an unknown scheme or one the model's layers do not fit."""
    if scheme not in SCHEMES:
        raise RecipeError(f"{where}: unknown quantization scheme {scheme!r} (choose from {', '.join(SCHEMES)})")
    if scheme == "int8_static" and not any(isinstance(m, CONV) for m in model.modules()):
        raise RecipeError(f"{where}: int8_static quantizes conv nets and this model has no conv layers; "
                          "use int8_dynamic (or int8_weight_only)")
    if scheme in LINEAR_SCHEMES and not linear_layers(model):
        raise RecipeError(f"{where}: {scheme} quantizes Linear layers and this model has none; "
                          "use int8_static for a conv net")


def quantize_run(parent_run_dir: str | Path, scheme: str, checkpoint: str = "best", out: str | Path | None = None,
                 calibration: int = 256) -> Run:
    """A child run of `parent_run_dir`'s `checkpoint` quantized with `scheme` (see the module's
    docstring), written to `out` (default beside the parent), evaluated on the test split.

    Raises RecipeError for an unknown scheme, a scheme the model does not fit or a calibration size
    below 1, RunDirError for a parent without that checkpoint; a failure leaves no child behind."""
    if scheme not in SCHEMES:
        raise RecipeError(f"compress.scheme: unknown quantization scheme {scheme!r} (choose from {', '.join(SCHEMES)})")
    if int(calibration) < 1:
        raise RecipeError(f"compress.calibration: expected at least 1 training sample, got {calibration}")
    parent = load_run(parent_run_dir, checkpoint, device="cpu")
    check_scheme(parent.model, scheme)
    if scheme in LINEAR_SCHEMES:
        recipe = child_recipe(parent, "quantize", {"scheme": scheme})
        return record(recipe, quantize_linear(parent.model, scheme), out)
    recipe = child_recipe(parent, "quantize", {"scheme": scheme, "calibration": int(calibration)})
    with tempfile.TemporaryDirectory(prefix="trainlab-quant-") as tmp:  # everything checked before the child exists
        fp32, int8, figures = static_onnx(parent, Path(tmp), int(calibration))
        run = record(recipe, parent.model, out)
        try:
            from ..io import atomic_write

            atomic_write(run.path / "export" / f"{checkpoint}.int8.onnx", int8.read_bytes())
            atomic_write(run.path / "export" / f"{checkpoint}.onnx", fp32.read_bytes())
            atomic_write(run.path / "eval" / "int8_onnx.json", json.dumps(figures, indent=2))
        except BaseException:
            shutil.rmtree(run.path, ignore_errors=True)
            raise
    return run


def raw_split(loaded: Any, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A split of the run's data as its raw-input ONNX graph reads it (pixels 0-255 as floats, rows
    before `data.preprocess`), with its targets; rebuilt from the recipe as deploy.export.raw_sample does."""
    from ..build import seed_everything
    from ..data import build_data, load_preprocess_state

    recipe = loaded.recipe
    seed_everything(recipe.seed)
    cfg = recipe.data.model_copy(update={"preprocess": []})
    data = getattr(build_data(cfg, recipe.seed, load_preprocess_state(loaded.path) or {}), split)
    x = data.x.float()
    if loaded.info.kind == "image":
        x = (x * 255.0).round()
    return x, data.y


class _Calibration:
    """onnxruntime.quantization's CalibrationDataReader protocol over a tensor of raw inputs."""

    def __init__(self, name: str, x: torch.Tensor, batch: int = 64):
        self.batches = iter([{name: x[i:i + batch].numpy()} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.batches, None)


def static_onnx(loaded: Any, folder: Path, calibration: int) -> tuple[Path, Path, dict[str, Any]]:
    """The run's raw-input ONNX graph (fp32) and its static int8 QDQ version (per-channel weights,
    activations calibrated on `calibration` training samples spread over the split) in `folder`,
    and their test accuracies: (fp32 path, int8 path, figures)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..deploy.export import export, onnx_session

    fp32 = export(loaded, "onnx", folder / "fp32.onnx").path
    pre, int8 = folder / "fp32.pre.onnx", folder / "int8.onnx"
    quant_pre_process(str(fp32), str(pre))
    x_train, _ = raw_split(loaded, "train")
    idx = torch.linspace(0, len(x_train) - 1, min(calibration, len(x_train))).round().long().unique()
    name = onnx_session(fp32).get_inputs()[0].name
    quantize_static(str(pre), str(int8), _Calibration(name, x_train[idx]), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    x_test, y_test = raw_split(loaded, "test")
    preds = {k: onnx_argmax(p, name, x_test) for k, p in (("fp32", fp32), ("int8", int8))}
    y = y_test.numpy()
    figures = {"samples": len(y), "calibration": len(idx),
               "fp32_accuracy": float((preds["fp32"] == y).mean()), "int8_accuracy": float((preds["int8"] == y).mean()),
               "agreement": float((preds["fp32"] == preds["int8"]).mean()),
               "fp32_bytes": fp32.stat().st_size, "int8_bytes": int8.stat().st_size}
    return fp32, int8, figures


def onnx_argmax(path: Path, name: str, x: torch.Tensor, batch: int = 1024):
    """The predicted class of every row of `x` by the ONNX graph at `path` (its first output)."""
    import numpy as np

    from ..deploy.export import onnx_session

    sess = onnx_session(path)
    return np.concatenate([sess.run(None, {name: x[i:i + batch].numpy()})[0].argmax(1)
                           for i in range(0, len(x), batch)])


def method(parent, options: dict, run_dir=None, progress: bool = True) -> Run:
    """`trainlab compress RUN --method quantize --scheme S [--calibration N]` (compress.METHODS)."""
    if not options.get("scheme"):
        raise RecipeError(f"--scheme: give one of {', '.join(SCHEMES)} for --method quantize")
    return quantize_run(parent.path, options["scheme"], parent.checkpoint, run_dir,
                        int(options.get("calibration") or 256))
