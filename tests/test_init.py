"""`trainlab init DATA`: on a table, an image folder, a text table and a text corpus it writes a
recipe that validates and, trained as written, beats the majority-class baseline."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import yaml

from trainlab.starter import inspect_data

from .conftest import run_cli


def _table_csv(path: Path, n: int = 400, seed: int = 0) -> list[str]:
    """Two numeric features decide the label, a category shifts it; a column with blanks."""
    rng = random.Random(seed)
    rows, labels = ["height,weight,colour,note_count,outcome"], []
    for _ in range(n):
        h, w = rng.gauss(0, 1), rng.gauss(0, 1)
        colour = rng.choice(["red", "green", "blue"])
        score = 1.5 * h - w + (0.8 if colour == "red" else 0.0) + rng.gauss(0, 0.3)
        label = "yes" if score > 0.3 else "no"
        labels.append(label)
        notes = "" if rng.random() < 0.1 else str(rng.randint(0, 5))
        rows.append(f"{h:.4f},{w:.4f},{colour},{notes},{label}")
    path.write_text("\n".join(rows) + "\n")
    return labels


def _image_folder(root: Path, per_class: int = 40, seed: int = 0) -> None:
    """Three classes of 16×16 grey images: a bright square in one of three places, plus noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    spots = {"left": (2, 2), "middle": (6, 6), "right": (10, 10)}
    for name, (r, c) in spots.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.normal(60, 25, (16, 16))
            img[r:r + 4, c:c + 4] += 150
            Image.fromarray(img.clip(0, 255).astype("uint8"), mode="L").save(root / name / f"{i:03d}.png")


TOPICS = {
    "sport": "match goal team player score coach league season win stadium ball referee".split(),
    "cooking": "recipe oven flour sugar butter bake salt pan dinner taste garlic soup".split(),
    "weather": "rain cloud storm wind sunny forecast snow cold humid thunder degrees fog".split(),
}
FILLER = "the a of and to in it was very with this that on for".split()


def _text_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(TOPICS))
        words = [rng.choice(TOPICS[label]) if rng.random() < 0.35 else rng.choice(FILLER) for _ in range(rng.randint(6, 14))]
        rows.append((" ".join(words), label))
    return rows


def _train(recipe: Path, tmp_path: Path) -> dict:
    """Train the recipe as written, from the folder `init` ran in (its data paths are relative to it)."""
    import os

    import trainlab

    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        run = trainlab.train(recipe, [f"output.root={tmp_path / 'runs'}"], progress=False)
    finally:
        os.chdir(here)
    return json.loads((run.path / "eval" / "test.json").read_text())


def _accuracy(metrics: dict) -> float:
    flat = metrics.get("metrics", metrics)
    return float(flat["accuracy"])


def _init(tmp_path: Path, data: Path, *extra: str) -> Path:
    out = tmp_path / "recipe.yaml"
    r = run_cli("init", data, "--out", out, *extra, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and out.is_file()
    return out


def test_init_on_a_csv_table_infers_target_and_task_and_trains_above_the_majority(tmp_path):
    labels = _table_csv(tmp_path / "people.csv")
    out = _init(tmp_path, tmp_path / "people.csv")
    recipe = yaml.safe_load(out.read_text())
    assert recipe["data"]["source"] == "csv" and recipe["data"]["target"] == "outcome"
    assert recipe["data"]["task"] == "classification" and recipe["data"]["path"] == "people.csv"
    assert recipe["model"]["name"] == "mlp"
    majority = Counter(labels).most_common(1)[0][1] / len(labels)
    assert _accuracy(_train(out, tmp_path)) > majority + 0.15


def test_init_on_an_image_folder_trains_above_the_majority(tmp_path):
    _image_folder(tmp_path / "shapes")
    out = _init(tmp_path, tmp_path / "shapes")
    recipe = yaml.safe_load(out.read_text())
    assert recipe["data"]["source"] == "image_folder" and recipe["data"]["mode"] == "grayscale"
    assert recipe["data"]["size"] == 16 and recipe["model"]["name"] == "convnet"
    assert _accuracy(_train(out, tmp_path)) > 1 / 3 + 0.3


def test_init_on_a_text_csv_picks_the_text_and_label_columns_and_trains(tmp_path):
    rows = _text_rows(450, seed=1)
    (tmp_path / "posts.csv").write_text("id,body,topic\n" + "".join(f"{i},{t},{c}\n" for i, (t, c) in enumerate(rows)))
    out = _init(tmp_path, tmp_path / "posts.csv", "--target", "topic")
    recipe = yaml.safe_load(out.read_text())
    assert recipe["data"]["source"] == "text_csv"
    assert (recipe["data"]["text"], recipe["data"]["label"]) == ("body", "topic")
    majority = Counter(c for _, c in rows).most_common(1)[0][1] / len(rows)
    assert _accuracy(_train(out, tmp_path)) > majority + 0.3


def test_init_on_a_text_jsonl_finds_the_label_key(tmp_path):
    rows = _text_rows(60, seed=2)
    (tmp_path / "posts.jsonl").write_text("".join(json.dumps({"text": t, "label": c}) + "\n" for t, c in rows))
    s = inspect_data(tmp_path / "posts.jsonl")
    data = dict((k, v) for k, v, _ in s.sections["data"])
    assert (data["source"], data["text"], data["label"]) == ("text_jsonl", "text", "label")


def test_init_on_a_corpus_folder_trains_a_language_model_above_the_commonest_character(tmp_path):
    rng = random.Random(3)
    words = "the cat sat on a mat and the dog ran to the park while it was raining".split()
    corpus = tmp_path / "books"
    corpus.mkdir()
    for i in range(2):
        (corpus / f"part{i}.txt").write_text(" ".join(rng.choice(words) for _ in range(900)) + "\n")
    out = _init(tmp_path, corpus)
    recipe = yaml.safe_load(out.read_text())
    assert recipe["data"]["source"] == "text_corpus" and recipe["model"]["name"] == "gpt"
    text = "".join((corpus / f"part{i}.txt").read_text() for i in range(2))
    commonest = Counter(text).most_common(1)[0][1] / len(text)
    assert _accuracy(_train(out, tmp_path)) > commonest + 0.2


def test_init_on_regression_data_writes_a_regression_recipe(tmp_path):
    rng = random.Random(4)
    lines = ["rooms,area,age,price"] + [f"{r},{a:.1f},{g},{50 * r + 2.0 * a - g + rng.gauss(0, 5):.2f}"
                                         for r, a, g in ((rng.randint(1, 6), rng.uniform(30, 200), rng.randint(0, 80))
                                                         for _ in range(120))]
    (tmp_path / "houses.csv").write_text("\n".join(lines) + "\n")
    s = inspect_data(tmp_path / "houses.csv")
    data = dict((k, v) for k, v, _ in s.sections["data"])
    assert data["target"] == "price" and data["task"] == "regression"


def test_init_refuses_bad_input_with_one_line_and_leaves_files_alone(tmp_path):
    _table_csv(tmp_path / "t.csv", n=50)
    r = run_cli("init", tmp_path / "t.csv", "--target", "nope", "--out", tmp_path / "r.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "--target 'nope'" in r.stderr and "outcome" in r.stderr
    assert not (tmp_path / "r.yaml").exists()
    r = run_cli("init", tmp_path / "missing.csv", cwd=tmp_path)
    assert r.returncode == 2 and "missing.csv: no such file or folder" in r.stderr
    (tmp_path / "mine.yaml").write_text("mine\n")
    r = run_cli("init", tmp_path / "t.csv", "--out", tmp_path / "mine.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "--force" in r.stderr
    assert (tmp_path / "mine.yaml").read_text() == "mine\n"
    (tmp_path / "photo.gif").write_bytes(b"GIF89a")
    r = run_cli("init", tmp_path / "photo.gif", cwd=tmp_path)
    assert r.returncode == 2 and "unknown kind of file '.gif'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_init_prints_the_recipe_with_out_dash(tmp_path):
    _table_csv(tmp_path / "t.csv", n=50)
    r = run_cli("init", tmp_path / "t.csv", "--out", "-", cwd=tmp_path)
    assert r.returncode == 0
    assert yaml.safe_load(r.stdout)["data"]["target"] == "outcome"


def test_init_reads_several_labels_per_row_as_multi_label(tmp_path):
    rng = random.Random(5)
    rows = []
    for _ in range(80):
        labels = [k for k in sorted(TOPICS) if rng.random() < 0.4] or ["sport"]
        rows.append((" ".join(rng.choice(TOPICS[k]) for k in labels for _ in range(4)), labels))
    (tmp_path / "tags.jsonl").write_text("".join(json.dumps({"text": t, "labels": ls}) + "\n" for t, ls in rows))
    (tmp_path / "tags.csv").write_text("text,tags\n" + "".join(f"{t},{'|'.join(ls)}\n" for t, ls in rows))
    for name, delimiter in (("tags.jsonl", None), ("tags.csv", "|")):
        s = inspect_data(tmp_path / name)
        data = {k: v for k, v, _ in s.sections["data"]}
        assert data.get("label_delimiter") == delimiter
        assert dict((k, v) for k, v, _ in s.sections["loss"])["name"] == "bce"
        assert dict((w, v) for w, v, _ in s.reasons)["task"] == "multilabel"
    (tmp_path / "flags.csv").write_text("a,b,red,blue\n" + "".join(f"{i},{i % 3},{i % 2},{int(i % 3 == 0)}\n"
                                                                   for i in range(40)))
    s = inspect_data(tmp_path / "flags.csv", "red,blue")
    assert {k: v for k, v, _ in s.sections["data"]}["target"] == ["red", "blue"]
    with pytest.raises(Exception, match="holds 0 and 1 only"):
        inspect_data(tmp_path / "flags.csv", "red,a")
