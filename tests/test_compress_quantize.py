"""compress.quantize: int8 children of tiny Fashion-MNIST runs. The linear schemes store int8 data
and scales as plain tensors (about 4x smaller than fp32), `load_run` rebuilds the very model that was
quantized, and the child works with evaluate / summary / report / export; int8_static writes a QDQ
ONNX graph that ONNX Runtime runs in agreement with fp32; bad input is a one-line RecipeError with
nothing written."""
from __future__ import annotations

import json

import onnx
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import trainlab
from trainlab.api import evaluate, load_run
from trainlab.cli import main
from trainlab.compress.quantize import check_scheme, quantize_run, raw_split
from trainlab.deploy.export import onnx_session
from trainlab.errors import RecipeError, RunDirError
from trainlab.models.quantized import quantize_linear
from trainlab.recipe import read_yaml
from trainlab.train.checkpoint import verify_checkpoint

DATA = {"source": "fashion_mnist", "subset": 1000, "val_fraction": 0.1,
        "preprocess": [{"normalize": "standard"}], "batch_size": 128}
OUTPUT = {"plots": False, "report": False}


def _train(root, model, optim):
    recipe = {"name": model["name"], "seed": 0, "data": DATA, "model": model, "optim": optim,
              "train": {"epochs": 1}, "output": {"root": str(root), **OUTPUT}}
    return trainlab.train(recipe, progress=False)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("mlp"), {"name": "mlp", "widths": [64]}, {"name": "adamw", "lr": 3e-3})


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("cnn"), {"name": "convnet", "widths": [8, 16], "stem_stride": 2},
                  {"name": "sgd", "lr": 0.05, "momentum": 0.9})


def _children(root):
    return sorted(p.name for p in root.iterdir() if p.is_dir())


@pytest.mark.parametrize("scheme", ["int8_dynamic", "int8_weight_only"])
def test_linear_int8_child_is_small_and_reloads_the_quantized_model(mlp_run, scheme, tmp_path):
    child = quantize_run(mlp_run.path, scheme, out=tmp_path / "child")
    weights = child.path / "checkpoints" / "best" / "model.safetensors"
    assert verify_checkpoint(child.path / "checkpoints" / "best") is None  # the manifest's SHA-256 match
    stored = load_file(str(weights))
    # 784-64-10: each Linear's weight as int8 data plus one scale and zero point per output row
    for layer, (rows, cols) in {"1": (64, 784), "3": (10, 64)}.items():
        assert stored[f"{layer}.weight.qdata"].dtype == torch.int8
        assert tuple(stored[f"{layer}.weight.qdata"].shape) == (rows, cols)
        assert tuple(stored[f"{layer}.weight.scale"].shape) == (rows, 1)
        assert stored[f"{layer}.bias"].dtype == torch.float32
        assert f"{layer}.weight" not in stored
    fp32 = load_file(str(mlp_run.path / "checkpoints" / "best" / "model.safetensors"))
    payload = lambda ts: sum(t.numel() * t.element_size() for t in ts.values())  # noqa: E731
    weights_fp32 = (64 * 784 + 10 * 64) * 4
    weights_int8 = (64 * 784 + 10 * 64) + (64 + 10) * (4 + 1)  # int8 data, fp32 scale, int8 zero point
    assert payload(fp32) - payload(stored) == weights_fp32 - weights_int8
    assert (mlp_run.path / "checkpoints" / "best" / "model.safetensors").stat().st_size / weights.stat().st_size >= 3.5

    # load_run of the child rebuilds the model quantized in memory, to the bit
    parent = load_run(mlp_run.path, device="cpu")
    x = raw_split(parent, "test")[0][:300] / 255.0
    want = quantize_linear(load_run(mlp_run.path, device="cpu").model, scheme)(parent.prepare(x))
    loaded = load_run(child.path, device="cpu")
    assert type(loaded.model[1].weight).__name__ == "Int8Tensor"
    with torch.no_grad():
        assert torch.equal(loaded.model(loaded.prepare(x)), want.detach())
    assert abs(child.metrics["accuracy"] - mlp_run.metrics["accuracy"]) <= 0.02
    compress = read_yaml(child.path / "recipe.yaml")["compress"]
    assert compress["method"] == "quantize" and compress["scheme"] == scheme
    assert compress["parent"] == str(mlp_run.path)


def test_quantized_child_works_with_evaluate_summary_report(mlp_run, tmp_path, capsys):
    child = quantize_run(mlp_run.path, "int8_dynamic", out=tmp_path / "child")
    assert evaluate(child.path)["accuracy"] == pytest.approx(child.metrics["accuracy"])
    assert main(["summary", str(child.path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["params_total"] == 64 * 784 + 64 + 10 * 64 + 10  # the logical shapes of the int8 weights
    assert [layer["params"] for layer in summary["layers"] if layer["type"] == "Linear"] == [64 * 785, 10 * 65]
    assert main(["report", str(child.path)]) == 0
    assert (child.path / "report.html").is_file()


def test_int8_static_onnx_agrees_with_fp32(cnn_run, tmp_path):
    child = quantize_run(cnn_run.path, "int8_static", out=tmp_path / "child", calibration=64)
    int8 = child.path / "export" / "best.int8.onnx"
    graph = onnx.load(str(int8))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    figures = json.loads((child.path / "eval" / "int8_onnx.json").read_text())
    assert figures["samples"] == 10000 and figures["calibration"] == 64
    assert figures["agreement"] >= 0.95
    assert abs(figures["int8_accuracy"] - figures["fp32_accuracy"]) <= 0.03
    assert figures["fp32_accuracy"] == pytest.approx(cnn_run.metrics["accuracy"], abs=1e-4)
    # ONNX Runtime runs it on raw pixels and it agrees with the run's own model
    loaded = load_run(cnn_run.path, device="cpu")
    x = raw_split(loaded, "test")[0][:256]
    sess = onnx_session(int8)
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0].argmax(1)
    want = loaded.predict(x / 255.0).argmax(1).numpy()
    assert (got == want).mean() >= 0.95
    assert evaluate(child.path)["accuracy"] == pytest.approx(cnn_run.metrics["accuracy"], abs=1e-4)


@pytest.mark.parametrize("scheme, run, says", [
    ("int4_magic", "mlp_run", "compress.scheme: unknown quantization scheme 'int4_magic'"),
    ("int8_static", "mlp_run", "compress.scheme: int8_static quantizes conv nets"),
])
def test_bad_scheme_is_one_line_and_writes_nothing(scheme, run, says, request):
    parent = request.getfixturevalue(run)
    before = _children(parent.path.parent)
    with pytest.raises(RecipeError) as e:
        quantize_run(parent.path, scheme)
    assert str(e.value).startswith(says) and "\n" not in str(e.value)
    assert "int8_dynamic" in str(e.value)
    assert _children(parent.path.parent) == before


def test_linear_scheme_needs_linear_layers():
    conv_only = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(RecipeError, match=r"^compress.scheme: int8_dynamic quantizes Linear layers"):
        check_scheme(conv_only, "int8_dynamic")
    check_scheme(conv_only, "int8_static")  # fits


def test_parent_without_checkpoint_and_bad_calibration(mlp_run, tmp_path):
    with pytest.raises(RunDirError):
        quantize_run(tmp_path, "int8_dynamic")
    with pytest.raises(RecipeError, match=r"^compress.calibration"):
        quantize_run(mlp_run.path, "int8_static", calibration=0)
