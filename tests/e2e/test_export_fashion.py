"""The Fashion-MNIST MLP and CNN recipes, trained briefly, exported to ONNX through the CLI: the file
runs in a process that imports only onnxruntime and numpy, on the 10,000 raw test images (uint8
pixels from the IDX file, as float32 0-255), and gives `trainlab evaluate`'s answers on every one."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parents[2]
IMAGES = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")

pytestmark = pytest.mark.skipif(not IMAGES.is_file(), reason="Fashion-MNIST not installed (make data)")

# what the consumer runs: nothing but onnxruntime and numpy, and it says so
CONSUMER = """
import json, sys
import numpy as np
import onnxruntime as ort

model, images, out = sys.argv[1:4]
s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
logits, probabilities = s.run(["logits", "probabilities"], {"input": np.load(images)})
np.save(out, logits)
print(json.dumps({"modules": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "trainlab")),
                  "probability_sums": [float(probabilities.sum(1).min()), float(probabilities.sum(1).max())],
                  "meta": s.get_modelmeta().custom_metadata_map}))
"""


def cli(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TRAINLAB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "trainlab", *map(str, args)], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=600)
    assert p.returncode == 0, f"trainlab {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def raw_test_images(tmp_path_factory) -> Path:
    """The 10,000 test images as the IDX file holds them (uint8), as float32 pixels 0-255 (N, 1, 28, 28)."""
    import gzip

    with gzip.open(IMAGES) as f:
        data = f.read()
    assert int.from_bytes(data[:4], "big") == 0x0803  # IDX, unsigned bytes, 3 dimensions
    n, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    pixels = np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, h, w)
    path = tmp_path_factory.mktemp("images") / "t10k.npy"
    np.save(path, pixels.astype(np.float32))
    return path


@pytest.mark.parametrize("recipe", ["fashion_mnist_mlp", "fashion_mnist_cnn"])
def test_onnx_file_alone_gives_evaluates_answers_on_all_10000_raw_test_images(recipe, raw_test_images, tmp_path):
    run = tmp_path / "run"
    cli("train", f"recipes/{recipe}.yaml", "--run-dir", run, "--set", "train.epochs=1", "--set", "data.subset=2000",
        "--set", "output.plots=false", "--set", "output.report=false")
    cli("evaluate", run, "--split", "test")
    evaluated = load_file(str(run / "eval" / "test_outputs.safetensors"))["outputs"]
    assert evaluated.shape == (10000, 10)
    printed = cli("export", run, "--format", "onnx")
    model = run / "export" / "best.onnx"
    assert model.is_file() and not list(model.parent.glob("*.data"))  # one self-contained file
    diff = float(re.search(r"max \|Δ\| (\S+) against eager PyTorch on 256 samples \(test split\)", printed).group(1))
    assert diff <= 1e-4

    logits_file = tmp_path / "logits.npy"
    p = subprocess.run([sys.executable, "-I", "-c", CONSUMER, str(model), str(raw_test_images), str(logits_file)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["modules"] == []  # neither torch nor trainlab was imported
    assert 1 - 1e-5 <= report["probability_sums"][0] <= report["probability_sums"][1] <= 1 + 1e-5
    assert len(json.loads(report["meta"]["trainlab.classes"])) == 10
    logits = np.load(logits_file)
    assert logits.shape == evaluated.shape
    assert (logits.argmax(1) == evaluated.argmax(1)).all()
    assert float(np.abs(logits - evaluated).max()) <= 1e-4
