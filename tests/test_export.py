"""`trainlab export`: every registered model exports to an ONNX graph that ONNX Runtime runs like
eager PyTorch at batch sizes other than the example's (or is refused, naming the layer); table runs
take raw rows (a categorical column, a missing cell); a regression graph answers in original units;
pt2 files load and run; bad input is one line and exit 2 with nothing written."""
from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import load_file

import trainlab
from trainlab.api import LoadedRun, load_run
from trainlab.build import build_model_for
from trainlab.cli import main
from trainlab.deploy import export as export_mod
from trainlab.deploy.export import export, onnx_session
from trainlab.deploy.graph import RawModel
from trainlab.errors import DataError, RecipeError
from trainlab.models import MODELS
from trainlab.recipe import load_recipe

from .test_models import CASES, CUSTOM_MODULE, token_bundle

# registry name -> (options, data) from test_models, plus the recurrent cells and poolings, which
# trace through a different path (graph.UnpackedRNN) than the packed sequences they train with
VARIANTS = {
    "rnn:gru-2-layers-bidirectional-mean": ("rnn", {"cell": "gru", "layers": 2, "bidirectional": True, "pool": "mean",
                                                    "embed_dim": 8, "hidden": 8}),
    "rnn:rnn-max": ("rnn", {"cell": "rnn", "pool": "max", "embed_dim": 8, "hidden": 8}),
    "rnn:lstm-2-layers-last": ("rnn", {"cell": "lstm", "layers": 2, "pool": "last", "embed_dim": 8, "hidden": 8}),
}

BLOCKER = '''
import torch
from torch import nn

class SignGate(nn.Module):
    """A branch on the data: no graph with a dynamic batch can hold it."""
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x

class Gated(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(input_shape[0], num_classes)
        self.gate = SignGate()

    def forward(self, x):
        return self.gate(self.fc(x))

class Inline(nn.Module):
    """The branch in the model's own forward: no leaf layer is to blame."""
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(input_shape[0], num_classes)

    def forward(self, x):
        y = self.fc(x)
        return y if y.mean() > 0 else y * 2

class Bessel(nn.Module):
    def forward(self, x):
        return torch.special.bessel_j0(x)

class WithBessel(nn.Module):
    """torch.export traces it; the ONNX exporter has no translation for one of its operators."""
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.fc = nn.Linear(input_shape[0], num_classes)
        self.odd = Bessel()

    def forward(self, x):
        return self.odd(self.fc(x))
'''


def loaded_for(name: str, options: dict, bundle, tmp_path) -> LoadedRun:
    """A LoadedRun as load_run builds it (build_model_for, eval mode) for data like `bundle`."""
    recipe = load_recipe({"model": {"name": name, **options}, "train": {"device": "cpu"},
                          "output": {"root": str(tmp_path)}})
    model, channels_last = build_model_for(recipe, bundle.info, torch.device("cpu"))
    return LoadedRun(tmp_path, recipe, bundle.info, model.eval(), torch.device("cpu"), "best", 3, channels_last)


def raw_inputs(bundle, n: int):
    x = bundle.train.x[:n]
    return (torch.sigmoid(x) * 255).round() if bundle.info.kind == "image" else x


def eager(loaded: LoadedRun, x: torch.Tensor) -> list[np.ndarray]:
    with torch.inference_mode():
        return [t.numpy() for t in RawModel(loaded).eval()(x)]


@pytest.mark.parametrize("case", [*MODELS.names(), *VARIANTS])
def test_every_registered_model_exports_and_runs_in_onnxruntime_like_eager(case, tmp_path):
    name, options = VARIANTS[case] if case in VARIANTS else (case, CASES[case][0])
    bundle = token_bundle() if case in VARIANTS else CASES[case][1]()
    if name == "custom":
        (tmp_path / "tiny_custom_net.py").write_text(CUSTOM_MODULE)
        options = {**options, "import": options["import"].format(module=tmp_path / "tiny_custom_net.py")}
    torch.manual_seed(0)
    loaded = loaded_for(name, options, bundle, tmp_path)
    res = export(loaded, "onnx", tmp_path / "m.onnx", sample=raw_inputs(bundle, 5))
    assert res.path.is_file() and res.size == res.path.stat().st_size and res.max_diff <= 1e-4
    session = onnx_session(res.path)
    for n in (1, 7):  # the example traced had 2 samples: the batch axis must be dynamic
        x = raw_inputs(bundle, n)
        got = session.run(None, {"input": x.numpy()})
        want = eager(loaded, x)
        assert [g.shape for g in got] == [w.shape for w in want]
        assert want[0].shape[0] == n
        assert max(float(np.abs(g - w).max()) for g, w in zip(got, want)) <= 1e-4
    if bundle.info.kind == "tokens" and not bundle.info.extra.get("sequence_targets"):
        # classifier rows were padded to different lengths: the padding did not leak into the answers
        assert len(set((raw_inputs(bundle, 7) != 0).sum(1).tolist())) > 1


@pytest.mark.parametrize("model,fmt,refusal", [
    ("Gated", "onnx", r"layer model\.gate \(SignGate\) cannot be exported with torch\.export: .*data-dependent.*"
                      r"\(at gated\.py:\d+: if x\.sum\(\) > 0:\)"),
    ("Gated", "pt2", r"layer model\.gate \(SignGate\) cannot be exported with torch\.export: "),
    ("Inline", "onnx", r"layer model \(Inline\) cannot be exported with torch\.export: .*"
                       r"\(at gated\.py:\d+: return y if y\.mean\(\) > 0 else y \* 2\)"),
    ("WithBessel", "onnx", r"layer model\.odd \(Bessel\) cannot be exported with the ONNX exporter: "
                           r".*no ONNX translation of the operator prims\.bessel_j0"),
])
def test_a_layer_that_cannot_be_exported_is_named_and_nothing_is_written(model, fmt, refusal, tmp_path, capsys):
    (tmp_path / "gated.py").write_text(BLOCKER)
    bundle = CASES["linear"][1]()
    loaded = loaded_for("custom", {"import": f"{tmp_path / 'gated.py'}:{model}"}, bundle, tmp_path)
    out = tmp_path / f"gated.{fmt}"
    with pytest.raises(RecipeError, match=refusal) as e:
        export(loaded, fmt, out, sample=raw_inputs(bundle, 4))
    assert "\n" not in str(e.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["gated.py"]
    assert capsys.readouterr() == ("", "")  # the exporters' prints and warnings kept off the console


def test_an_operator_only_onnx_lacks_still_exports_to_pt2(tmp_path):
    (tmp_path / "gated.py").write_text(BLOCKER)
    bundle = CASES["linear"][1]()
    loaded = loaded_for("custom", {"import": f"{tmp_path / 'gated.py'}:WithBessel"}, bundle, tmp_path)
    res = export(loaded, "pt2", tmp_path / "b.pt2", sample=raw_inputs(bundle, 4))
    x = raw_inputs(bundle, 7)
    (logits, _) = torch.export.load(str(res.path)).module()(x)
    assert torch.allclose(logits, torch.from_numpy(eager(loaded, x)[0]), atol=1e-5)


def test_an_export_that_does_not_match_eager_is_not_written(tmp_path, monkeypatch):
    bundle = CASES["mlp"][1]()
    loaded = loaded_for("mlp", CASES["mlp"][0], bundle, tmp_path)
    real = export_mod.run_bytes
    monkeypatch.setattr(export_mod, "run_bytes", lambda data, fmt, x: [o + 1e-3 for o in real(data, fmt, x)])
    out = tmp_path / "off.onnx"
    with pytest.raises(DataError, match=r"differs from eager PyTorch by up to 0\.001"):
        export(loaded, "onnx", out, sample=raw_inputs(bundle, 4))
    assert list(tmp_path.iterdir()) == []


def write_table(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["size", "colour", "weight", "label", "price"])
        w.writerows(rows)


def table_rows(n: int, seed: int):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        size, weight, colour = rng.normal(50, 10), rng.normal(3, 1), rng.choice(["red", "green", "blue"])
        label = "big" if size + 5 * (colour == "red") > 52 else "small"
        rows.append([f"{size:.3f}", colour, f"{weight:.3f}", label, f"{40 + 0.5 * size + weight:.3f}"])
    return rows


def encode_raw(rows, info) -> np.ndarray:
    """Rows as a consumer builds them from the spec alone: numeric cells as they are (NaN missing),
    each categorical column one-hot over the training categories."""
    cols = info.extra["columns"]
    header = ["size", "colour", "weight", "label", "price"]
    out = np.zeros((len(rows), len(info.extra["encoded_features"])), np.float32)
    for i, row in enumerate(rows):
        cell = dict(zip(header, row))
        for j, feat in enumerate(info.extra["encoded_features"]):
            kind, name = feat.split("__", 1)
            if kind == "num":
                out[i, j] = float(cell[name]) if cell[name] != "" else np.nan
            else:
                column = next(c for c in cols["categorical"] if name.startswith(c + "_"))
                out[i, j] = float(cell[column] == name[len(column) + 1:])
    return out


@pytest.fixture
def table_csvs(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    write_table(train, table_rows(160, 0))
    rows = table_rows(24, 1)
    rows[3][0] = ""  # a missing numeric cell in the test rows: the graph imputes it
    write_table(test, rows)
    return train, test, rows


def table_recipe(tmp_path, train, test, target, features):
    return {"name": f"table-{target}", "seed": 0,
            "data": {"source": "csv", "path": str(train), "test_path": str(test), "target": target,
                     "features": features, "preprocess": [{"normalize": "standard"}], "batch_size": 32},
            "model": {"name": "mlp", "widths": [16]}, "train": {"epochs": 2, "device": "cpu"},
            "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False}}


def test_a_table_run_exports_a_graph_of_raw_rows_with_a_categorical_column_and_a_missing_cell(
        tmp_path, table_csvs, capsys):
    train, test, rows = table_csvs
    run = trainlab.train(table_recipe(tmp_path, train, test, "label", ["size", "colour", "weight"]),
                         run_dir=tmp_path / "run", progress=False)
    assert main(["export", str(run.path), "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    path = run.path / "export" / "best.onnx"
    assert f"wrote {path}" in printed and "max |Δ|" in printed and "test split" in printed
    assert "ort.InferenceSession" in printed
    loaded = load_run(run.path)
    x = encode_raw(rows, loaded.info)
    assert np.isnan(x).sum() == 1
    logits, probs = onnx_session(path).run(None, {"input": x})
    # evaluation at the end of training: the same test rows, imputed and encoded by the data source
    outputs = load_file(str(run.path / "eval" / "test_outputs.safetensors"))["outputs"].numpy()
    assert logits.shape == outputs.shape == (24, 2)
    assert np.abs(logits - outputs).max() <= 1e-4
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["trainlab.classes"]) == loaded.class_names == ["big", "small"]
    spec = json.loads(meta["trainlab.input_spec"])
    assert spec["input"]["features"] == loaded.info.extra["encoded_features"]
    assert spec["input"]["shape"] == ["N", x.shape[1]]
    assert any("imputation" in p for p in json.loads(meta["trainlab.preprocessing"]))
    assert meta["trainlab.checkpoint"] == "best" and meta["trainlab.run"] == str(run.path)
    assert meta["trainlab.epoch"] == str(loaded.epoch)


def test_a_regression_graph_answers_in_original_units_and_pt2_loads_and_runs(tmp_path, table_csvs, capsys):
    train, test, rows = table_csvs
    run = trainlab.train(table_recipe(tmp_path, train, test, "price", ["size", "weight"]),
                         run_dir=tmp_path / "run", progress=False)
    onnx_file, pt2_file = tmp_path / "out" / "price.onnx", tmp_path / "out" / "price.pt2"
    assert main(["export", str(run.path), "--format", "onnx", "--out", str(onnx_file)]) == 0
    assert main(["export", str(run.path), "--format", "pt2", "--out", str(pt2_file), "--checkpoint", "last"]) == 0
    capsys.readouterr()
    loaded = load_run(run.path)
    assert loaded.target_scaler is not None  # trained on standardized targets
    full = [r for r in rows if r[0] != ""]
    x = encode_raw([[r[0], r[1], r[2], r[3], r[4]] for r in full], loaded.info)
    want = loaded.predict(torch.from_numpy(x)).numpy()
    assert want.mean() > 30  # original units (prices around 68), not standardized ones
    (value,) = onnx_session(onnx_file).run(None, {"input": x})
    assert value.shape == want.shape == (len(full), 1)
    assert np.abs(value - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
    last = load_run(run.path, "last").predict(torch.from_numpy(x)).numpy()
    program = torch.export.load(str(pt2_file))
    for n in (1, 7):
        (got,) = program.module()(torch.from_numpy(x[:n]))
        assert got.shape == (n, 1)
        assert np.abs(got.detach().numpy() - last[:n]).max() <= 1e-4 * max(1.0, float(np.abs(last).max()))


def test_a_regression_value_of_large_magnitude_is_checked_relative_to_it(tmp_path):
    from trainlab.data import DataBundle, DataInfo, Split

    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 12, generator=g)
    bundle = DataBundle(Split(x, torch.zeros(16, 1)), None, None, DataInfo("regression", (12,), None, 1, "vector"))
    loaded = loaded_for("linear", {}, bundle, tmp_path)
    with torch.no_grad():
        loaded.model[-1].bias.fill_(250_000.0)  # a price: float32 holds it to ~0.02
    res = export(loaded, "onnx", tmp_path / "price.onnx", sample=x[:8])
    value = eager(loaded, x[:8])[0]
    assert res.allowed == pytest.approx(1e-4 * float(np.abs(value).max()))
    (got,) = onnx_session(res.path).run(None, {"input": x[:8].numpy()})
    assert np.abs(got - value).max() <= res.allowed and np.abs(value).min() > 2e5


def test_a_text_run_exports_token_ids_and_is_checked_on_its_padded_test_texts(tmp_path, capsys):
    from .conftest import REPO

    model = {"name": "rnn", "cell": "lstm", "bidirectional": True, "pool": "last", "embed_dim": 16, "hidden": 16}

    recipe = {"name": "text", "seed": 0,
              "data": {"source": "text_csv", "path": str(REPO / "recipes/data/python_docs.csv"), "max_len": 24,
                       "min_freq": 2, "subset": 300, "batch_size": 64},
              "model": model,
              "train": {"epochs": 1, "device": "cpu"},
              "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False}}
    run = trainlab.train(recipe, run_dir=tmp_path / "run", progress=False)
    assert main(["export", str(run.path), "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    assert "on 256 samples (test split)" in printed and "int64 (N, 24)" in printed
    assert "the batch N is dynamic, the length fixed" in printed
    loaded = load_run(run.path)
    texts = ["Return the number of items in a container.", "open a file", ""]
    ids = loaded.encode_texts(texts)  # different lengths, right-padded with 0
    assert len(set((ids != 0).sum(1).tolist())) == 3
    (logits, _) = onnx_session(run.path / "export" / "best.onnx").run(None, {"input": ids.numpy()})
    assert np.abs(logits - loaded.predict(texts).numpy()).max() <= 1e-4


@pytest.fixture
def tiny_run(tmp_path):
    bundle_recipe = {"name": "tiny", "seed": 0, "data": {"source": "synthetic:classification", "n": 200},
                     "model": {"name": "linear"}, "train": {"epochs": 1, "device": "cpu"},
                     "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False}}
    return trainlab.train(bundle_recipe, run_dir=tmp_path / "run", progress=False).path


@pytest.mark.parametrize("args,message", [
    (["--format", "tflite"], "--format: expected one of onnx, pt2, got 'tflite'"),
    (["--format", "onnx", "--out", "{tmp}/model.pt2"], "does not end in .onnx, the suffix of --format onnx"),
    (["--format", "pt2", "--out", "{tmp}/model.onnx"], "does not end in .pt2, the suffix of --format pt2"),
])
def test_bad_arguments_are_one_line_and_exit_2_with_nothing_written(args, message, tiny_run, tmp_path, capsys):
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["export", str(tiny_run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainlab: error: ") and message in err and "\n" not in err
    assert not (tiny_run / "export").exists() and list(tmp_path.glob("model.*")) == []


def test_a_missing_run_dir_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "no-such-run"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainlab: error: ") and "no-such-run" in err and "\n" not in err


def test_without_its_data_the_check_runs_on_made_up_inputs_and_says_so(tiny_run, capsys, monkeypatch):
    from trainlab import data as data_pkg

    def gone(*args, **kwargs):
        raise DataError("the data set is gone")

    monkeypatch.setattr(data_pkg, "build_data", gone)
    assert main(["export", str(tiny_run), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "made-up inputs (the test split could not be rebuilt: the data set is gone)" in out
    assert (tiny_run / "export" / "best.onnx").is_file()
