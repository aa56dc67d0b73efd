"""The data pipeline end to end through the CLI: Fashion-MNIST counts, a CSV written from
scikit-learn's breast-cancer data, an image folder, a text CSV, and one-line errors naming files."""
from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
import torch

from tests.conftest import needs_fmnist
from trainlab.cli import main
from trainlab.data import build_data
from trainlab.recipe import load_recipe

QUIET = {"report": False, "plots": False, "tensorboard": False}
FAST = {"threads": 1, "checkpoint_every": None}


@needs_fmnist
def test_fashion_mnist_counts_and_stratified_val():
    r = load_recipe({"data": {"source": "fashion_mnist", "val_fraction": 0.1}})
    b = build_data(r.data, r.seed)
    assert (len(b.train) + len(b.val), len(b.test)) == (60000, 10000)
    assert b.info.num_classes == 10
    assert [a + v for a, v in zip(b.info.class_counts["train"], b.info.class_counts["val"])] == [6000] * 10
    assert b.info.class_counts["test"] == [1000] * 10
    shares = np.array(b.info.class_counts["val"]) / len(b.val)
    assert np.all(np.abs(shares - 0.1) <= 0.01 * 0.1)  # each class within 1% of its 10% share


def write_breast_cancer_csv(path, blank: float = 0.0, seed: int = 0):
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    df = d.frame.rename(columns={"target": "diagnosis"})
    df["diagnosis"] = df["diagnosis"].map({0: "malignant", 1: "benign"})
    if blank:
        feats = df.columns.drop("diagnosis")
        mask = np.random.default_rng(seed).random((len(df), len(feats))) < blank
        df[feats] = df[feats].mask(pd.DataFrame(mask, columns=feats, index=df.index))
    df.to_csv(path, index=False)
    return path


def csv_recipe(path, target="diagnosis"):
    return {"name": "bc-csv", "seed": 0,
            "data": {"source": "csv", "path": str(path), "target": target, "preprocess": [{"normalize": "standard"}],
                     "batch_size": 32},
            "model": {"name": "mlp", "widths": [32]}, "optim": {"name": "adamw", "lr": 3e-3},
            # best checkpoint by validation loss: 46 validation samples make accuracy ties common
            "train": {"epochs": 10, "monitor": "val.loss", **FAST}, "output": QUIET}


def test_breast_cancer_csv_trains_to_095(tmp_path, cli, write_recipe):
    csv = write_breast_cancer_csv(tmp_path / "bc.csv")
    r = cli("train", write_recipe(csv_recipe(csv)), "--run-dir", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "run/eval/test.json").read_text())
    assert m["accuracy"] >= 0.95
    for f in ("split_indices.safetensors", "preprocess.safetensors", "split_sizes.json"):
        assert (tmp_path / "run/data" / f).is_file()
    assert json.loads((tmp_path / "run/data/preprocess.json").read_text())["steps"]["normalize"]["method"] == "standard"
    assert "imputed" not in r.stderr
    # evaluation applies the run's saved statistics and gets the same numbers
    e = cli("evaluate", tmp_path / "run", "--split", "test")
    assert e.returncode == 0, e.stderr
    assert json.loads((tmp_path / "run/eval/test.json").read_text())["accuracy"] == m["accuracy"]


def test_breast_cancer_csv_without_target_column_exits_2(tmp_path, capsys, write_recipe):
    csv = write_breast_cancer_csv(tmp_path / "bc.csv")
    assert main(["train", str(write_recipe(csv_recipe(csv, target="label")))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"trainlab: error: {csv}: no target column 'label' (data.target)")
    assert not (tmp_path / "runs").exists()


def test_breast_cancer_csv_with_blanks_imputes_and_says_so(tmp_path, cli, write_recipe):
    csv = write_breast_cancer_csv(tmp_path / "bc.csv", blank=0.05)
    import pandas as pd

    blanks = int(pd.read_csv(csv).isna().sum().sum())
    assert blanks > 500
    r = cli("train", write_recipe(csv_recipe(csv)), "--run-dir", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    note = (f"trainlab: data: imputed {blanks} missing cells with the mean of the training split "
            "(data.missing: mean)")
    assert r.stderr.count(note) == 1
    m = json.loads((tmp_path / "run/eval/test.json").read_text())
    assert m["accuracy"] >= 0.9


def test_image_folder_trains_end_to_end_and_data_command_draws_augmentations(tmp_path, cli, write_recipe):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["dark", "light"]):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(20):
            arr = (rng.random((14, 14, 3)) * 80 + c * 160).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "imgs" / name / f"{i}.png")
    recipe = write_recipe({"name": "folder", "data": {
        "source": "image_folder", "path": str(tmp_path / "imgs"), "size": 12, "batch_size": 8,
        "preprocess": [{"normalize": "standard"}],
        "augment": [{"random_crop": {"padding": 2}}, {"hflip": 0.5}, {"cutmix": 1.0}]},
        "model": {"name": "convnet", "widths": [8, 16]}, "optim": {"name": "adamw", "lr": 3e-3},
        "train": {"epochs": 4, **FAST}, "output": QUIET})
    r = cli("train", recipe, "--run-dir", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "run/eval/test.json").read_text())
    assert m["samples"] == 8 and m["accuracy"] >= 0.75
    hist = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert any("accuracy" in h and h["split"] == "train" for h in hist)  # argmax of soft targets
    d = cli("data", recipe, "--out", tmp_path / "look")
    assert d.returncode == 0, d.stderr
    assert "circle" not in d.stdout and "light" in d.stdout and "(3, 12, 12)" in d.stdout
    assert (tmp_path / "look/plots/augment.png").stat().st_size > 1000


def test_text_csv_trains_end_to_end(tmp_path, cli, write_recipe):
    rng = np.random.default_rng(0)
    good, bad = ["great", "lovely", "fine", "superb"], ["awful", "poor", "bad", "dreadful"]
    rows = ["text,label"]
    for i in range(160):
        words = good if i % 2 else bad
        rows.append(" ".join(["the", "film", "was", str(rng.choice(words)), "and", str(rng.choice(words))]) +
                    f",{'pos' if i % 2 else 'neg'}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    recipe = write_recipe({"name": "text", "data": {"source": "text_csv", "path": str(tmp_path / "t.csv"),
                                                    "max_len": 8, "batch_size": 16},
                           "model": {"name": "rnn", "cell": "gru", "embed_dim": 16, "hidden": 16, "pool": "max"},
                           "optim": {"name": "adamw", "lr": 1e-2},
                           "train": {"epochs": 5, **FAST}, "output": QUIET})
    r = cli("train", recipe, "--run-dir", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "run/eval/test.json").read_text())["accuracy"] >= 0.9


def write_idx(path, arr: torch.Tensor):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.write_bytes(gzip.compress(header + arr.to(torch.uint8).numpy().tobytes()))


def fake_fashion(root, n_train=40, n_train_labels=40):
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte.gz", torch.randint(0, 255, (n_train, 28, 28)))
    write_idx(root / "train-labels-idx1-ubyte.gz", torch.arange(n_train_labels) % 10)
    write_idx(root / "t10k-images-idx3-ubyte.gz", torch.randint(0, 255, (20, 28, 28)))
    write_idx(root / "t10k-labels-idx1-ubyte.gz", torch.arange(20) % 10)
    return root


@pytest.mark.parametrize("damage", ["truncated", "label_count"])
def test_bad_idx_files_give_one_line_naming_the_file(tmp_path, capsys, monkeypatch, write_recipe, damage):
    root = fake_fashion(tmp_path / "fm", n_train_labels=30 if damage == "label_count" else 40)
    if damage == "truncated":
        p = root / "t10k-images-idx3-ubyte.gz"
        p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-100]))
    recipe = write_recipe({"data": {"source": "fashion_mnist", "root": str(root)}, "train": {"epochs": 1}})
    monkeypatch.setenv("TRAINLAB_OFFLINE", "1")
    assert main(["train", str(recipe)]) == 2  # in-process: the same CLI edge, without a new interpreter
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    if damage == "truncated":
        assert lines[0].startswith(f"trainlab: error: {root}/t10k-images-idx3-ubyte.gz: truncated")
    else:
        assert lines[0] == (f"trainlab: error: {root}/train-labels-idx1-ubyte.gz: 30 labels but "
                            "train-images-idx3-ubyte.gz has 40 images")


def test_non_image_file_in_image_folder_gives_one_line(tmp_path, capsys, write_recipe):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        Image.new("RGB", (5, 5)).save(tmp_path / "imgs" / name / "0.png")
    (tmp_path / "imgs" / "b" / "readme.md").write_text("# not an image")
    assert main(["data", str(write_recipe({"data": {"source": "image_folder", "path": str(tmp_path / "imgs")}}))]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"trainlab: error: {tmp_path}/imgs/b/readme.md: not a PNG or JPEG image (image_folder reads .jpeg, .jpg, .png)"]


def test_list_shows_augmentations(capsys):
    from trainlab.data import AUGMENTS

    assert main(["list", "augments"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in AUGMENTS.names())
