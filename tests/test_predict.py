"""`trainlab predict RUN_DIR INPUT...` on raw files, against the run's own evaluation.

Tiny runs (trained once per module): a Fashion-MNIST MLP (PNGs the test writes from the test split,
a folder, an RGB JPEG, a .npy of the wrong shape, the onnx backend, json/csv/--out), a CSV
classification run with a categorical column and missing cells (its own test rows, recovered from
data/split_indices.safetensors), a CSV regression run (values in original units) and a text run
(a file of lines, --text).
"""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import trainlab
from trainlab.api import load_run
from trainlab.data import SOURCES, build_data, load_preprocess_state
from trainlab.deploy.graph import tabular_fill
from trainlab.deploy.answers import rows as answer_rows
from trainlab.deploy.inputs import read_inputs
from trainlab.errors import DataError
from trainlab.recipe import load_recipe

from .conftest import needs_fmnist, run_cli

QUIET = {"plots": False, "report": False, "trackers": []}


def _train(recipe: dict, root) -> object:
    return trainlab.train({**recipe, "output": {"root": str(root / "runs"), **QUIET}}, run_dir=root / recipe["name"],
                          progress=False).path


def _predict_json(*args):
    res = run_cli("predict", *map(str, args), "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout), res.stderr


# --- an image run ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("fm")
    run = _train({"name": "fm", "data": {"source": "fashion_mnist", "subset": 2000,
                                         "preprocess": [{"normalize": "standard"}]},
                  "model": {"name": "mlp", "widths": [32]}, "train": {"epochs": 1}}, root)
    pixels = SOURCES.build("fashion_mnist", {}, "data").test.x[:24].numpy()  # uint8 (24, 1, 28, 28)
    pngs = root / "pngs" / "some"
    pngs.mkdir(parents=True)
    files = []
    for i, img in enumerate(pixels):
        f = pngs / f"{i:02d}.png"
        Image.fromarray(img[0], mode="L").save(f)
        files.append(f)
    expected = load_run(run).predict(torch.from_numpy(pixels)).argmax(1).tolist()
    return run, root, pixels, files, expected


@needs_fmnist
def test_pngs_get_the_classes_evaluation_gives(fmnist):
    from PIL import Image

    run, root, pixels, files, expected = fmnist
    names = load_run(run).class_names
    got, _ = _predict_json(run, *files[:10])
    assert [p["input"] for p in got["predictions"]] == [str(f) for f in files[:10]]
    assert [p["prediction"] for p in got["predictions"]] == [names[i] for i in expected[:10]]
    assert got["model"]["classes"] == names and got["model"]["input"]["shape"] == ["N", 1, 28, 28]
    table = run_cli("predict", run, files[0], files[1], "--top-k", "2")  # the default format: a rich table
    assert table.returncode == 0, table.stderr
    lines = [ln for ln in table.stdout.splitlines() if str(files[0].name) in ln or str(files[1].name) in ln]
    assert len(lines) == 2 and all(names[e] in ln for e, ln in zip(expected[:2], lines))
    assert "top 2" in table.stdout
    # a folder (class subfolders too, searched recursively and sorted), a stray file skipped with a note;
    # an RGB image of the same gray pixels converts back to them exactly
    sub = files[0].parent / "nested"
    sub.mkdir()
    Image.fromarray(np.repeat(pixels[12][0][..., None], 3, axis=2), mode="RGB").save(sub / "rgb.png")
    (files[0].parent / "readme.md").write_text("not an image")
    got, err = _predict_json(run, files[0].parent)
    by_input = {p["input"]: p["prediction"] for p in got["predictions"]}
    assert len(by_input) == len(files) + 1
    assert [by_input[str(f)] for f in files] == [names[i] for i in expected]
    assert by_input[str(sub / "rgb.png")] == names[expected[12]]
    assert "skipped 1 file that is not a PNG or JPEG image" in err and "readme.md" in err


@needs_fmnist
def test_a_jpeg_in_rgb_is_converted_and_resized_as_at_training(fmnist):
    from PIL import Image

    run, root, pixels, files, expected = fmnist
    big = Image.fromarray(pixels[3][0], mode="L").resize((56, 56), Image.Resampling.NEAREST).convert("RGB")
    jpg = root / "big.jpg"
    big.save(jpg, quality=95)
    # the reference decodes it independently: gray, bilinear back to 28x28 (what image_folder does)
    with Image.open(jpg) as im:
        ref = np.asarray(im.convert("L").resize((28, 28), Image.Resampling.BILINEAR), dtype=np.uint8)
    want = torch.softmax(load_run(run).predict(torch.from_numpy(ref[None, None].copy())), 1)[0]
    got, _ = _predict_json(run, jpg)
    p = got["predictions"][0]["probabilities"]
    assert np.allclose(list(p.values()), want.numpy(), atol=1e-6)


@needs_fmnist
def test_npy_of_the_wrong_shape_is_refused_naming_both_shapes(fmnist, tmp_path):
    run = fmnist[0]
    bad = tmp_path / "flat.npy"
    np.save(bad, np.zeros((3, 28, 28), np.float32))
    res = run_cli("predict", run, bad)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "(N, 1, 28, 28)" in res.stderr and "(3, 28, 28)" in res.stderr
    assert str(bad) in res.stderr and res.stdout == ""


@needs_fmnist
def test_onnx_backend_csv_and_top_k_agree_with_torch(fmnist, tmp_path):
    run, root, pixels, files, expected = fmnist
    arr = tmp_path / "batch.npy"
    np.save(arr, pixels[:16])  # raw uint8 pixels, (N, 1, 28, 28)
    torch_json, _ = _predict_json(run, arr, "--top-k", "4")
    out = tmp_path / "preds.csv"
    res = run_cli("predict", run, arr, "--backend", "onnx", "--format", "csv", "--out", out)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    names = load_run(run).class_names
    assert [r["input"] for r in rows] == [f"{arr}[{i}]" for i in range(16)]
    assert [r["prediction"] for r in rows] == [p["prediction"] for p in torch_json["predictions"]]
    assert [r["prediction"] for r in rows] == [names[i] for i in expected[:16]]
    for r, t in zip(rows, torch_json["predictions"]):
        onnx_p = np.array([float(r[f"p({n})"]) for n in names])
        assert np.allclose(onnx_p, list(t["probabilities"].values()), atol=1e-5)
        assert float(r["probability"]) == onnx_p.max()
        top = [c["probability"] for c in t["top_k"]]
        assert len(top) == 4 and t["top_k"][0]["class"] == t["prediction"]
        assert top == sorted(top, reverse=True) and top[0] == max(t["probabilities"].values())
        assert top == sorted(t["probabilities"].values(), reverse=True)[:4]
    # --out never replaces a file unless --force
    before = out.read_text()
    res = run_cli("predict", run, arr, "--format", "csv", "--out", out)
    assert res.returncode == 2 and "--force" in res.stderr and out.read_text() == before


# --- table runs ---------------------------------------------------------------------------------------

def _write_table(path, n=240, seed=0):
    """Rows of age, colour (categorical), size, a class label and a price; some cells empty or "?"."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["age", "colour", "size", "label", "price"])
        for i in range(n):
            age, colour, size = rng.normal(40, 10), rng.choice(["red", "green", "blue"]), rng.uniform(0, 5)
            label = "old" if age + (6 if colour == "red" else 0) > 42 else "young"
            missing_age = "" if i % 9 == 4 else "?" if i % 13 == 8 else None  # "?": the recipe's data.na_values
            w.writerow([missing_age if missing_age is not None else f"{age:.3f}", "" if i % 11 == 6 else colour,
                        f"{size:.3f}", label,
                        f"{100 + 3 * age + 10 * size + rng.normal(0, 2):.2f}"])
    return path


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(path, rows, columns):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def table_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    table = _write_table(root / "shop.csv")
    data = {"source": "csv", "path": str(table), "features": ["age", "colour", "size"], "test_fraction": 0.25,
            "na_values": ["?"],
            "preprocess": [{"normalize": "standard"}], "batch_size": 32}
    cls = _train({"name": "cls", "data": {**data, "target": "label"}, "model": {"name": "mlp", "widths": [16]},
                  "train": {"epochs": 3}}, root)
    reg = _train({"name": "reg", "data": {**data, "target": "price"}, "model": {"name": "mlp", "widths": [16]},
                  "train": {"epochs": 3}}, root)
    return root, table, cls, reg


def _test_rows(run, table):
    """The run's test split as the CSV's own rows (no row was dropped: the indices are the file's rows)."""
    idx = load_file(str(run / "data" / "split_indices.safetensors"))["test"].tolist()
    rows = _csv_rows(table)
    return [rows[i] for i in idx]


def test_csv_run_test_rows_match_evaluation(table_runs):
    root, table, run, _ = table_runs
    rows = _test_rows(run, table)
    assert {"", "?"} <= {r["age"] for r in rows} and any(r["colour"] == "" for r in rows)  # missing cells
    test_csv = _write_rows(root / "test_rows.csv", rows, ["age", "colour", "size", "price"])  # no target, extra price
    got, err = _predict_json(run, test_csv)
    evaluated = load_file(str(run / "eval" / "test_outputs.safetensors"))["outputs"]
    names = load_run(run).class_names
    assert [p["prediction"] for p in got["predictions"]] == [names[i] for i in evaluated.argmax(1).tolist()]
    probs = np.array([list(p["probabilities"].values()) for p in got["predictions"]])
    assert np.allclose(probs, torch.softmax(evaluated, 1).numpy(), atol=1e-6)
    assert "ignored column the model does not use: 'price'" in err
    # the encoding itself equals training's ColumnTransformer on those rows, NaN imputed in the graph
    loaded = load_run(run)
    x = read_inputs([str(test_csv)], loaded).x
    filled = torch.where(torch.isnan(torch.from_numpy(x)), tabular_fill(loaded.info), torch.from_numpy(x))
    r = load_recipe(run / "recipe.yaml")
    bundle = build_data(r.data, r.seed, load_preprocess_state(run))
    assert torch.equal(loaded.prepare(filled), bundle.test.x)
    # the same rows as TSV and Parquet encode the same; a word in a numeric column names its line
    import pandas as pd

    frame = pd.read_csv(test_csv, dtype=str, keep_default_na=False)
    frame.to_csv(root / "test_rows.tsv", sep="\t", index=False)
    pd.read_csv(test_csv, na_values=["?"]).to_parquet(root / "test_rows.parquet")
    for other in ("test_rows.tsv", "test_rows.parquet"):
        assert np.array_equal(read_inputs([str(root / other)], loaded).x, x, equal_nan=True), other
    frame.loc[2, "age"] = "forty"
    frame.to_csv(root / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad\.csv:4: column 'age' holds numbers at training but 'forty' here"):
        read_inputs([str(root / "bad.csv")], loaded)


def test_csv_run_unknown_category_extra_and_missing_columns(table_runs):
    root, table, run, _ = table_runs
    rows = [dict(r) for r in _csv_rows(table)[:3]]
    rows[1]["colour"] = "purple"
    full = _write_rows(root / "with_target.csv", rows, ["label", "size", "colour", "age", "price"])
    got, err = _predict_json(run, full)
    assert "'label' (the target)" in err and "'price'" in err
    assert "column 'colour': 1 cell holds a category unseen at training (e.g. 'purple'" in err
    loaded = load_run(run)
    x = read_inputs([str(full)], loaded).x
    assert x.shape == (3, 5) and x[1, 2:].tolist() == [0.0, 0.0, 0.0]  # all zeros, as handle_unknown="ignore"
    assert len(got["predictions"]) == 3
    short = _write_rows(root / "short.csv", rows, ["age", "colour"])
    res = run_cli("predict", run, short)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "missing column 'size'" in res.stderr and "trained on columns age, colour, size" in res.stderr
    assert "the file has age, colour" in res.stderr and str(short) in res.stderr


def test_regression_run_predicts_in_original_units(table_runs):
    root, table, _, run = table_runs
    rows = _test_rows(run, table)
    test_csv = _write_rows(root / "reg_rows.csv", rows, ["age", "colour", "size"])
    res = run_cli("predict", run, test_csv, "--format", "csv")
    assert res.returncode == 0, res.stderr
    got = np.array([float(r["value"]) for r in csv.DictReader(io.StringIO(res.stdout))])
    loaded = load_run(run)
    assert loaded.target_scaler is not None  # target_scaling auto: trained on standardized prices
    r = load_recipe(run / "recipe.yaml")
    bundle = build_data(r.data, r.seed, load_preprocess_state(run))
    want = loaded.predict(bundle.test.x, prepared=True)[:, 0].numpy()
    assert np.allclose(got, want, rtol=1e-5, atol=1e-3)
    prices = np.array([float(r["price"]) for r in rows])
    assert abs(got.mean() - prices.mean()) < prices.std()  # the target's scale, not standardized values
    assert got.mean() > 100


def test_served_table_rows_as_objects_answer_as_the_csv_does(table_runs):
    """`trainlab serve` takes a table run's instances as {column: value} objects (null = missing), encoded
    as predict encodes the CSV's rows; a missing column or a nested value is 422 naming it."""
    import httpx

    from tests.test_serve import ServerThread
    from trainlab.deploy.predictor import Predictor
    from trainlab.deploy.server import make_app

    root, table, run, _ = table_runs
    rows = _test_rows(run, table)[:12]
    test_csv = _write_rows(root / "served_rows.csv", rows, ["age", "colour", "size"])
    want, _ = _predict_json(run, test_csv)
    objects = [{"age": None if r["age"] in ("", "?") else float(r["age"]), "colour": r["colour"] or None,
                "size": float(r["size"])} for r in rows]
    srv = ServerThread(make_app(Predictor(run, "torch")))
    try:
        r = httpx.post(f"{srv.url}/predict", json={"instances": objects})
        assert r.status_code == 200, r.text
        got = r.json()["predictions"]
        assert [g["prediction"] for g in got] == [w["prediction"] for w in want["predictions"]]
        assert np.allclose([list(g["probabilities"].values()) for g in got],
                           [list(w["probabilities"].values()) for w in want["predictions"]], atol=1e-6)
        no_size = [{k: v for k, v in o.items() if k != "size"} for o in objects[:2]]
        r = httpx.post(f"{srv.url}/predict", json={"instances": no_size})
        assert r.status_code == 422 and "missing column 'size'" in r.json()["detail"]
        r = httpx.post(f"{srv.url}/predict", json={"instances": [{**objects[0], "age": [1]}]})
        assert r.status_code == 422 and r.json()["detail"].startswith("instances[0].age: expected a number")
    finally:
        srv.stop()


# --- a text run -------------------------------------------------------------------------------------------

def test_text_run_lines_and_literal_texts(tmp_path):
    words = {"sport": "goal match team score win", "food": "bread cheese soup taste cook",
             "tech": "code chip data model byte"}
    rng = np.random.default_rng(0)
    rows = [(" ".join(rng.choice(v.split(), size=6)), label) for label, v in words.items() for _ in range(40)]
    with open(tmp_path / "texts.csv", "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    run = _train({"name": "txt", "data": {"source": "text_csv", "path": str(tmp_path / "texts.csv"), "max_len": 8,
                                          "batch_size": 32},
                  "model": {"name": "embedding_bag", "dim": 16, "buckets": 256}, "train": {"epochs": 2}}, tmp_path)
    texts = ["goal team win", "soup and cheese taste", "a chip model of data", "unknown words only"]
    lines = tmp_path / "new.txt"
    lines.write_text(texts[0] + "\n\n" + "\n".join(texts[1:]) + "\n")
    loaded = load_run(run)
    want = [loaded.class_names[i] for i in loaded.predict(texts).argmax(1).tolist()]
    got, _ = _predict_json(run, lines, "--text", "bread soup")
    preds = got["predictions"]
    assert [p["input"] for p in preds] == [f"{lines}:1", f"{lines}:3", f"{lines}:4", f"{lines}:5", "bread soup"]
    assert [p["prediction"] for p in preds[:4]] == want
    assert preds[4]["prediction"] == loaded.class_names[int(loaded.predict(["bread soup"]).argmax())]
    # served: a text run's instances are the texts themselves
    import httpx

    from tests.test_serve import ServerThread
    from trainlab.deploy.predictor import Predictor
    from trainlab.deploy.server import make_app

    srv = ServerThread(make_app(Predictor(run, "torch")))
    try:
        r = httpx.post(f"{srv.url}/predict", json={"instances": texts})
        assert r.status_code == 200 and [p["prediction"] for p in r.json()["predictions"]] == want
    finally:
        srv.stop()


# --- answers from output arrays (no model) ------------------------------------------------------------

def test_answers_by_task():
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], np.float32)
    spec = {"task": "classification", "classes": ["a", "b", "c"]}
    got = answer_rows({"logits": np.log(probs), "probabilities": probs}, spec, top_k=5)  # k capped at 3 classes
    assert [r["prediction"] for r in got] == ["b", "a"]
    assert [t["class"] for t in got[1]["top_k"]] == ["a", "c", "b"]
    assert got[0]["probabilities"] == {"a": float(probs[0, 0]), "b": float(probs[0, 1]), "c": float(probs[0, 2])}
    multi = answer_rows({"logits": probs, "probabilities": probs}, {"task": "multilabel", "classes": ["x", "y", "z"]})
    assert [[lab["label"] for lab in r["labels"]] for r in multi] == [["y"], []]  # above 0.5 only (0.5 is not)
    value = answer_rows({"value": np.array([[1.5], [-2.0]], np.float32)}, {"task": "regression", "classes": None})
    assert value == [{"value": 1.5}, {"value": -2.0}]
    two = answer_rows({"value": np.array([[1.0, 2.0]], np.float32)}, {"task": "regression", "classes": None})
    assert two == [{"value": [1.0, 2.0]}]
    with pytest.raises(DataError, match=r"shape \(2, 4, 3\)"):  # a language model's per-token outputs
        answer_rows({"logits": np.zeros((2, 4, 3)), "probabilities": np.zeros((2, 4, 3))}, spec)
