"""A short Fashion-MNIST run through the CLI, then everything that reads it: eval/test.json against
scikit-learn, `trainlab evaluate` reproducing the end-of-training numbers, report.html in a real
headless browser, and TensorBoard's own event reader. One ~15 s training run serves all tests."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EPOCHS = 2

pytestmark = pytest.mark.skipif(not FMNIST.is_file() and not os.environ.get("TRAINLAB_DATA"),
                                reason="Fashion-MNIST not installed (make data)")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TRAINLAB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"trainlab {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fm") / "run"
    cli("train", "recipes/fashion_mnist_mlp.yaml", "--run-dir", str(d), "--set", "data.subset=3000",
        "--set", f"train.epochs={EPOCHS}", "--set", "train.metrics=[accuracy,f1_macro,ece]",
        "--set", "train.log_every=5")
    return d


def predictions(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The best checkpoint's test predictions, computed here with a plain forward pass."""
    from trainlab.recipe import load_recipe
    from trainlab.train import Trainer
    from trainlab.train.checkpoint import load_model_weights

    trainer = Trainer(load_recipe(run_dir / "recipe.yaml"), progress=False)
    load_model_weights(trainer.model, run_dir / "checkpoints/best/model.safetensors")
    trainer.model.eval()
    test = trainer.bundle.test
    with torch.no_grad():
        logits = torch.cat([trainer.model(test.x[i:i + 2000]) for i in range(0, len(test), 2000)])
    return test.y.numpy(), logits.argmax(1).numpy()


def test_eval_json_matches_sklearn(run_dir):
    from sklearn.metrics import classification_report, confusion_matrix

    m = json.loads((run_dir / "eval/test.json").read_text())
    y, pred = predictions(run_dir)
    assert m["samples"] == len(y) == 10000
    rep = classification_report(y, pred, output_dict=True, zero_division=0)
    for metric, sk in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
        per_class = [row[metric] for row in m["per_class"]]
        assert np.mean(per_class) == pytest.approx(rep["macro avg"][sk], abs=1e-6), metric
        assert m[f"{metric}_macro"] == pytest.approx(rep["macro avg"][sk], abs=1e-6), metric
        assert per_class == pytest.approx([rep[str(i)][sk] for i in range(10)], abs=1e-6), metric
    assert m["accuracy"] == pytest.approx(rep["accuracy"], abs=1e-6)
    assert [row["class"] for row in m["per_class"]][:2] == ["T-shirt/top", "Trouser"]
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 10000
    assert (cm == confusion_matrix(y, pred)).all()
    assert len(m["roc"]) == len(m["pr"]) == 10
    for name in ("confusion_matrix", "roc", "pr", "wrong"):
        assert (run_dir / f"plots/test_{name}.png").stat().st_size > 5000, name


def test_evaluate_reproduces_end_of_training_numbers(run_dir):
    before = json.loads((run_dir / "eval/test.json").read_text())
    p = cli("evaluate", str(run_dir))
    after = json.loads((run_dir / "eval/test.json").read_text())
    before.pop("seconds"), after.pop("seconds")
    assert after == before  # exactly: same code, same weights, same data
    assert "Shirt" in p.stdout and "f1_macro" in p.stdout  # the rich table has per-class rows

    p = cli("evaluate", str(run_dir), "--split", "val", "--checkpoint", "last")
    val = json.loads((run_dir / "eval/val.json").read_text())
    assert val["split"] == "val" and val["checkpoint"] == "last" and val["epoch"] == EPOCHS
    assert val["samples"] == 6000 and np.array(val["confusion_matrix"]).sum() == 6000
    # the last epoch's validation metrics were computed by the same functions during training
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last_val = [r for r in logged if r["split"] == "val"][-1]
    for k in ("loss", "accuracy", "f1_macro", "ece"):
        assert val[k] == pytest.approx(last_val[k], abs=1e-6), k


def test_report_opens_in_headless_chromium_with_every_image_loaded(run_dir, tmp_path):
    (run_dir / "report.html").unlink()
    cli("report", str(run_dir))
    page = (run_dir / "report.html").read_text()
    srcs = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(srcs) >= 6 and all(s.startswith("data:image/png;base64,") for s in srcs)  # self-contained
    for text in ("fashion-mnist-mlp", "Per class", "Ankle boot", "learning rate", "Environment", "torch"):
        assert text in page, text
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; `make test` does it as root)")
    # the same page plus a script that counts the images the browser decoded, after load
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", """<script>window.addEventListener('load', function () {
      var im = Array.prototype.slice.call(document.images);
      var ok = im.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
      var d = document.createElement('pre'); d.id = 'probe'; d.textContent = 'loaded=' + ok + ' of=' + im.length;
      document.body.appendChild(d); });</script></body>"""))
    with tempfile.TemporaryDirectory() as profile:
        p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                            "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">loaded=(\d+) of=(\d+)</pre>', p.stdout)
    assert found, f"chromium did not run the probe (exit {p.returncode}): {p.stderr[-500:]}"
    assert int(found.group(2)) == len(srcs)
    assert found.group(1) == found.group(2), f"{found.group(1)} of {found.group(2)} images loaded"


def test_tensorboard_reader_finds_every_epoch(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    tags = ea.Tags()
    val = ea.Scalars("val/loss")
    assert [e.step for e in val] == list(range(1, EPOCHS + 1))
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in val] == pytest.approx([r["loss"] for r in logged if r["split"] == "val"], rel=1e-6)
    for tag in ("train/loss", "val/accuracy", "val/f1_macro", "val/ece", "epoch/lr", "train/samples_per_s",
                "step/loss", "step/lr", "step/samples_per_s", "test/accuracy"):
        assert tag in tags["scalars"], tag
    test = json.loads((run_dir / "eval/test.json").read_text())
    assert ea.Scalars("test/accuracy")[-1].value == pytest.approx(test["accuracy"], rel=1e-6)
    recipe = ea.Tensors("recipe/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "fashion_mnist" in recipe and "f1_macro" in recipe
