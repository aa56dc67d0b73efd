"""The text recipes, end to end: they beat the majority class by a wide margin on the shipped
docstring set, save their vocabulary for evaluation, and run on any user CSV."""
from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def trainlab(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], check=False, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def train(recipe: str, run_dir: Path, *sets: str) -> dict:
    proc = trainlab("train", recipe, "--run-dir", str(run_dir), "--set", "output.plots=false",
                    *[a for s in sets for a in ("--set", s)])
    assert proc.returncode == 0, proc.stderr
    return json.loads((run_dir / "eval" / "test.json").read_text())


@pytest.mark.parametrize("recipe", ["recipes/text_lstm.yaml", "recipes/text_transformer.yaml"])
def test_text_recipe_beats_the_majority_class_by_a_wide_margin(recipe, tmp_path):
    run = tmp_path / "run"
    metrics = train(recipe, run)
    env = json.loads((run / "env.json").read_text())
    test_counts = env["data"]["class_counts"]["test"]
    majority = max(test_counts) / sum(test_counts)
    assert len(test_counts) == 7 and majority < 0.2
    assert metrics["accuracy"] >= majority + 0.4, (metrics["accuracy"], majority)

    # the vocabulary is saved with the run, and evaluation reads the data through it
    vocab = json.loads((run / "data" / "vocab.json").read_text())
    assert vocab["tokens"][:2] == ["<pad>", "<unk>"] and vocab["level"] == "word"
    from trainlab.api import evaluate

    again = evaluate(run, "test")
    assert again["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)
    shuffled = vocab["tokens"][2:]
    random.Random(0).shuffle(shuffled)
    (run / "data" / "vocab.json").write_text(json.dumps({**vocab, "tokens": vocab["tokens"][:2] + shuffled}))
    assert evaluate(run, "test")["accuracy"] < metrics["accuracy"] - 0.2


def write_reviews(path: Path, n: int = 300) -> None:
    rng = random.Random(1)
    good, bad = ["great", "lovely", "excellent", "superb"], ["awful", "dull", "terrible", "boring"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "stars"])
        for _ in range(n):
            stars = rng.choice([1, 5])
            word = rng.choice(good if stars == 5 else bad)
            w.writerow([f"The plot was {word} and the acting {rng.choice(['too', 'also'])} {word}.", stars])


def test_text_recipe_runs_on_a_user_csv_and_names_a_missing_column(tmp_path):
    data = tmp_path / "reviews.csv"
    write_reviews(data)
    metrics = train("recipes/text_transformer.yaml", tmp_path / "run", f"data.path={data}", "data.text=review",
                    "data.label=stars", "train.epochs=3")
    assert metrics["accuracy"] >= 0.95
    proc = trainlab("train", "recipes/text_lstm.yaml", "--run-dir", str(tmp_path / "bad"), "--set", f"data.path={data}")
    assert proc.returncode == 2
    assert f"{data}: no column 'text' (data.text); columns: review, stars" in proc.stderr
    assert not (tmp_path / "bad").exists()
