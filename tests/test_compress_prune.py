"""Pruning (`trainlab compress --method prune`): exact sparsity, the compact weight file, structured
surgery against analytic counts and against the original model with the removed units zeroed,
the comparison's counts, and bad input (exit 2, one line, no child directory)."""
from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save

import trainlab
from trainlab.api import evaluate, load_run, record, report
from trainlab.cli import main
from trainlab.compress.prune import prune_run, prune_unstructured, prunable, schedule
from trainlab.train.checkpoint import (SPARSE_META, decode_sparse, encode_sparse, load_model_weights,
                                       verify_checkpoint, weights_bytes)

DATA = {"source": "fashion_mnist", "subset": 1000, "val_fraction": 0.1, "preprocess": [{"normalize": "standard"}]}


def _recipe(root: Path, name: str, model: dict) -> dict:
    return {"name": name, "output": {"root": str(root)}, "data": DATA, "model": model,
            "train": {"epochs": 1}, "optim": {"name": "adamw", "lr": 3e-3}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    mlp = trainlab.train(_recipe(root, "mlp", {"name": "mlp", "widths": [48, 24]}), progress=False).path
    cnn = trainlab.train(_recipe(root, "cnn", {"name": "convnet", "widths": [8, 16]}), progress=False).path
    return {"root": root, "mlp": mlp, "cnn": cnn}


def _children(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def _data_bytes(path: Path) -> int:
    """A safetensors file's size less its 8-byte length and JSON header."""
    with open(path, "rb") as f:
        return path.stat().st_size - 8 - int.from_bytes(f.read(8), "little")


# --- the sparse encoding ---------------------------------------------------------------------------
def test_sparse_encoding_round_trip_and_old_files_load(tmp_path):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(40, 50, generator=g)
    w[torch.rand(40, 50, generator=g) < 0.7] = 0
    dense = {"w": w, "b": torch.randn(50, generator=g), "small": torch.zeros(10), "n": torch.tensor(3)}
    encoded, meta = encode_sparse(dense)
    assert set(encoded) == {"w::mask", "w::values", "b", "small", "n"}  # only the large mostly-zero one
    assert encoded["w::mask"].numel() == math.ceil(2000 / 8) and encoded["w::values"].numel() == int((w != 0).sum())
    assert json.loads(meta[SPARSE_META]) == {"w": [40, 50]}
    back = decode_sparse(dict(encoded), meta)
    assert set(back) == set(dense) and all(torch.equal(back[k], dense[k]) for k in dense)
    # a file written before the encoding (plain safetensors, no metadata) loads as it always did
    model = torch.nn.Linear(50, 40)
    old = tmp_path / "old.safetensors"
    old.write_bytes(save({"weight": w, "bias": torch.ones(40)}))
    load_model_weights(model, old)
    assert torch.equal(model.weight, w) and torch.equal(model.bias, torch.ones(40))
    new = tmp_path / "new.safetensors"
    new.write_bytes(weights_bytes({"weight": w, "bias": torch.ones(40)}))
    model2 = torch.nn.Linear(50, 40)
    load_model_weights(model2, new)
    assert torch.equal(model2.weight, w)
    assert _data_bytes(new) == math.ceil(2000 / 8) + 4 * int((w != 0).sum()) + 4 * 40


def test_cubic_schedule():
    assert schedule(0.8, 1) == [0.8]
    s = schedule(0.8, 3)
    assert s[-1] == pytest.approx(0.8) and s[0] == pytest.approx(0.8 * (1 - (2 / 3) ** 3))
    assert all(a < b for a, b in zip(s, s[1:]))


# --- unstructured ----------------------------------------------------------------------------------
def test_global_80_percent_exact_compact_and_identical_after_load(runs):
    parent = load_run(runs["mlp"])
    child = prune_run(parent, {"sparsity": 0.8, "epochs": 0}, progress=False).path
    want = prune_unstructured(copy.deepcopy(parent.model), 0.8)
    loaded = load_run(child)
    n = sum(m.weight.numel() for m, _ in prunable(loaded.model))
    assert sum(int((m.weight == 0).sum()) for m, _ in prunable(loaded.model)) == round(0.8 * n)
    got, ref, orig = loaded.model.state_dict(), want.state_dict(), parent.model.state_dict()
    assert set(got) == set(ref) == set(orig)
    for k in got:
        assert torch.equal(got[k], ref[k]), k
        if k.endswith("bias"):  # biases untouched
            assert torch.equal(got[k], orig[k]), k
    # the file: each large weight as a bitmask (1 bit per entry) + its non-zero values, the rest dense
    path = child / "checkpoints" / "best" / "model.safetensors"
    expect = 0
    for k, v in want.state_dict().items():
        if v.numel() >= 1024 and (v == 0).float().mean() >= 0.5:
            expect += math.ceil(v.numel() / 8) + 4 * int((v != 0).sum())
        else:
            expect += v.numel() * v.element_size()
    assert _data_bytes(path) == expect
    dense = _data_bytes(runs["mlp"] / "checkpoints" / "best" / "model.safetensors")
    assert _data_bytes(path) / dense < 0.2 + 1 / 32 + 0.01  # 20% values + 1/32 mask, the biases dense
    assert verify_checkpoint(child / "checkpoints" / "best") is None  # manifest sha256 of the encoded file
    assert loaded.recipe.compress["method"] == "prune" and loaded.recipe.compress["parent"] == str(runs["mlp"])


def test_iterative_fine_tuned_keeps_the_mask_and_resumes(runs):
    from trainlab.recipe import load_recipe
    from trainlab.track.rundir import RunDir
    from trainlab.train import Trainer

    parent = load_run(runs["mlp"])
    child = prune_run(parent, {"sparsity": 0.8, "steps": 2, "epochs": 1, "scope": "layer"}, progress=False).path
    for which in ("best", "last"):
        model = load_run(child, which).model
        for m, _ in prunable(model):  # per layer: 80% of each layer's weights
            assert int((m.weight == 0).sum()) == round(0.8 * m.weight.numel())
    with safe_open(str(child / "checkpoints" / "last" / "model.safetensors"), "pt") as f:
        assert "1.weight::mask" in f.keys()
    # resume's path: the trainer reads the encoded checkpoint back into the plain recipe model
    rd = RunDir.open(child)
    trainer = Trainer(load_recipe(rd.recipe_path), run_dir=rd, progress=False)
    trainer.load_checkpoint(child / "checkpoints" / "last")
    want = load_run(child, "last").model.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in trainer.model.state_dict().items())


# --- structured ------------------------------------------------------------------------------------
def test_structured_mlp_cut_equals_zeroed_units(runs):
    parent = load_run(runs["mlp"])
    child = prune_run(parent, {"structured": True, "amount": 0.5, "norm": "l2", "epochs": 0}, progress=False).path
    small = load_run(child)
    assert small.recipe.model.widths == [24, 12]
    params = (784 * 24 + 24) + (24 * 12 + 12) + (12 * 10 + 10)
    assert sum(p.numel() for p in small.model.parameters()) == params
    from trainlab.summary import summarize

    s = summarize(run_dir=child)
    assert s["params_total"] == params and s["flops_forward_per_sample"] == 2 * (784 * 24 + 24 * 12 + 12 * 10)
    # the original with the removed units' rows and biases zeroed computes the same outputs
    zeroed = copy.deepcopy(parent.model)
    l1, l2 = zeroed[1], zeroed[3]
    with torch.no_grad():
        for layer in (l1, l2):
            norms = layer.weight.pow(2).sum(1)
            drop = torch.topk(norms, layer.weight.shape[0] // 2, largest=False).indices
            layer.weight[drop] = 0
            layer.bias[drop] = 0
    x, _ = parent.info.example_batch(32)
    assert torch.allclose(zeroed(x), small.model(x), atol=1e-5)


def test_structured_convnet_counts_and_zeroed_channels(runs, tmp_path):
    parent = load_run(runs["cnn"])
    out = tmp_path / "cnn-cut"
    assert main(["compress", str(runs["cnn"]), "--method", "prune", "--structured", "--amount", "0.5",
                 "--epochs", "0", "--out", str(out), "--compare", "--latency-runs", "0"]) == 0
    small = load_run(out)
    assert small.recipe.model.widths == [4, 8]
    params = (1 * 4 * 9 + 2 * 4) + (4 * 8 * 9 + 2 * 8) + (8 * 14 * 14 * 10 + 10)
    assert sum(p.numel() for p in small.model.parameters()) == params
    zeroed = copy.deepcopy(parent.model).eval()
    with torch.no_grad():
        for block in (zeroed[0], zeroed[1]):
            conv, bn = block[0], block[1]
            drop = torch.topk(conv.weight.abs().flatten(1).sum(1), conv.weight.shape[0] // 2, largest=False).indices
            conv.weight[drop] = 0
            bn.weight[drop] = 0
            bn.bias[drop] = 0
    x, _ = parent.info.example_batch(16)
    assert torch.allclose(zeroed(x), small.model(x), atol=1e-4)
    # evaluate, report and the comparison work on the child
    m = evaluate(out, "test")
    assert 0 <= m["accuracy"] <= 1 and (out / "eval" / "test.json").is_file()
    assert Path(report(out)).is_file()
    rows = json.loads((out / "compare" / "compare.json").read_text())["rows"]
    assert [r["run"] for r in rows] == [str(runs["cnn"]), str(out)]
    assert rows[1]["params"] == params
    assert rows[1]["nonzero_params"] == sum(int((p != 0).sum()) for p in small.model.parameters())
    assert rows[1]["flops_per_sample"] < rows[0]["flops_per_sample"]
    assert rows[0]["params"] == sum(p.numel() for p in parent.model.parameters())
    assert rows[1]["file_bytes"] == (out / "checkpoints" / "best" / "model.safetensors").stat().st_size
    assert rows[1]["accuracy_change"] == pytest.approx(rows[1]["test_accuracy"] - rows[0]["test_accuracy"])
    assert rows[1]["latency_ms_b256"] is None  # --latency-runs 0: nothing timed
    assert (out / "compare" / "size_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "| run |" in (out / "compare" / "compare.md").read_text()


def _zero_dropped(model: torch.nn.Module, keeps: list[torch.Tensor]) -> torch.nn.Module:
    """`model` with every unit not in `keeps` silenced: its weight row, bias and norm scale/shift zero."""
    from trainlab.compress.prune import PRUNABLE

    model = copy.deepcopy(model)
    layers = [m for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        i = -1
        for m in layers:
            if isinstance(m, PRUNABLE):
                i += 1
            if i >= len(keeps) or not hasattr(m, "weight") or m.weight is None:
                continue
            drop = torch.ones(m.weight.shape[0], dtype=torch.bool)
            drop[keeps[i]] = False
            m.weight[drop] = 0
            if getattr(m, "bias", None) is not None:
                m.bias[drop] = 0
    return model


@pytest.mark.parametrize("name,big,small", [
    ("mlp", {"widths": [40, 20], "norm": "batch", "dropout": 0.1}, {"widths": [20, 10]}),
    ("convnet", {"widths": [8, 12], "blocks": 2, "downsample": "maxpool", "head": "avgpool"}, {"widths": [4, 6]}),
    ("convnet", {"widths": [6, 10, 12], "stem_stride": 2}, {"widths": [3, 5, 6]}),
])
def test_cut_layouts_match_zeroed_units(name, big, small, runs):
    """Other layouts of the two models: batch norm and dropout in the mlp; two convs per stage,
    max-pooling and an average-pool head; a stride-2 stem with three stages."""
    from trainlab.compress.prune import copy_kept, cut_model_section, kept_units
    from trainlab.models import mlp as mlp_mod
    from trainlab.models.convnet import convnet

    build = mlp_mod.mlp if name == "mlp" else convnet
    info = load_run(runs["mlp"]).info
    torch.manual_seed(0)
    model = build(info, **big).eval()
    for m in model.modules():  # batch norm with statistics of its own, as after training
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
    keeps = kept_units(model, 0.5, "l1")
    section = cut_model_section({"name": name, **big}, keeps, name, big.get("blocks", 1))
    assert section["widths"] == small["widths"]
    cut = copy_kept(model, build(info, **{**big, **small}).eval(), keeps)
    x, _ = info.example_batch(8)
    assert torch.allclose(_zero_dropped(model, keeps)(x), cut(x), atol=1e-4)


def test_structured_refuses_what_it_cannot_cut():
    from trainlab.compress.prune import check_structured
    from trainlab.errors import RecipeError
    from trainlab.recipe import load_recipe

    for model, word in [({"name": "mlp", "widths": [8], "norm": "layer"}, "layer norm"),
                        ({"name": "lenet5"}, "'lenet5'")]:
        with pytest.raises(RecipeError, match=word):
            check_structured(load_recipe({"name": "x", "data": DATA, "model": model}))


# --- bad input -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def linear_run(runs):
    from trainlab.build import build_model_for
    from trainlab.data import build_data
    from trainlab.recipe import load_recipe

    recipe = load_recipe(_recipe(runs["root"], "lin", {"name": "linear"}))
    model, _ = build_model_for(recipe, build_data(recipe.data, 0).info, torch.device("cpu"))
    return record(recipe, model).path


@pytest.mark.parametrize("case", ["sparsity_high", "sparsity_zero", "structured_linear", "no_checkpoint",
                                  "quantize", "quantize_static_mlp", "distill", "amount_one"])
def test_bad_input_exits_2_one_line_no_child(case, runs, linear_run, tmp_path, capsys):
    run, extra = str(runs["mlp"]), []
    if case == "sparsity_high":
        extra, word = ["--sparsity", "1.5"], "--sparsity"
    elif case == "sparsity_zero":
        extra, word = ["--sparsity", "0"], "--sparsity"
    elif case == "amount_one":
        extra, word = ["--structured", "--amount", "1"], "--amount"
    elif case == "structured_linear":
        run, extra, word = str(linear_run), ["--structured", "--amount", "0.5"], "'linear'"
    elif case == "no_checkpoint":
        bare = tmp_path / "bare"
        shutil.copytree(runs["mlp"], bare)
        shutil.rmtree(bare / "checkpoints")
        run, extra, word = str(bare), ["--sparsity", "0.5"], "checkpoint"
    elif case == "quantize":
        extra, word = [], "--scheme: give one of int8_dynamic"
    elif case == "quantize_static_mlp":
        extra, word = ["--scheme", "int8_static"], "int8_dynamic"  # no conv layers: the refusal suggests it
    else:
        extra, word = [], "--student: give the student's recipe"
    method = case.split("_")[0] if case.startswith(("quantize", "distill")) else "prune"
    before = _children(runs["root"]), _children(tmp_path)
    capsys.readouterr()
    assert main(["compress", run, "--method", method, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err, err
    assert (_children(runs["root"]), _children(tmp_path)) == before


def test_the_command_wires_quantize_and_its_child_evaluates(runs, tmp_path, capsys):
    """`trainlab compress RUN --method quantize --scheme int8_dynamic --out DIR` makes the child run that
    `evaluate` reads back: its recipe's compress section names the parent and the scheme."""
    import yaml

    out = tmp_path / "int8"
    assert main(["compress", str(runs["mlp"]), "--method", "quantize", "--scheme", "int8_dynamic",
                 "--out", str(out)]) == 0
    section = yaml.safe_load((out / "recipe.yaml").read_text())["compress"]
    assert section["method"] == "quantize" and section["scheme"] == "int8_dynamic"
    assert Path(section["parent"]) == Path(runs["mlp"])
    assert main(["evaluate", str(out)]) == 0
    assert json.loads((out / "eval" / "test.json").read_text())["samples"] > 0
