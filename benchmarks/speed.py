"""One timed training run of one loop on one workload; prints one JSON line.

    python benchmarks/speed.py --loop hand --workload mlp --epochs 3

Loops: `trainlab` (the public `train()` API, a real run directory: checkpoints every epoch),
`trainlab-loop` (the same Trainer without a run directory: writes nothing, like the others), `hand` (hand-optimized
PyTorch: whole-tensor indexing, foreach SGD, set_to_none), `textbook` (DataLoader over a
TensorDataset), `lightning` (PyTorch Lightning), `keras` (Keras 3, torch backend). Every loop
trains the same model on the same standardized Fashion-MNIST tensors (no validation split) with
the same batch size, optimizer, constant LR and seed. `run_all.py` calls this script once per
(loop, repetition), interleaving the loops, so each measurement is a fresh process.

The epoch time reported is the median of the epochs after the first (the first pays for
warm-up: allocator, oneDNN primitive caches, Lightning's and Keras's set-up).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cnn_recipe() -> dict:
    """The shipped CNN recipe: the convnet workload is its model (widths, stem stride) at its batch size."""
    import yaml

    return yaml.safe_load((ROOT / "recipes" / "fashion_mnist_cnn.yaml").read_text())


_CNN = _cnn_recipe()
CNN_WIDTHS = list(_CNN["model"]["widths"])
CNN_STEM = int(_CNN["model"].get("stem_stride", 1))  # the first conv's stride; later stages halve again
WORKLOADS = {
    # the MLP: 784-256-10, SGD momentum 0.9, lr 0.01, batch 64
    "mlp": {"batch": 64, "lr": 0.01, "model": {"name": "mlp", "widths": [256]}},
    # the CNN recipe's model (its widths and stem, stride-2 downsampling, BN) at its batch size
    "convnet": {"batch": int(_CNN["data"]["batch_size"]), "lr": 0.05,
                "model": {"name": "convnet", "widths": CNN_WIDTHS, "stem_stride": CNN_STEM}},
}
MOMENTUM = 0.9


def data_config(subset: int | None = None) -> dict:
    return {"source": "fashion_mnist", "val_fraction": 0.0, "preprocess": [{"normalize": "standard"}],
            "subset": subset}


def load_data(subset: int | None = None):
    """Standardized Fashion-MNIST as (x_train, y_train, x_test, y_test), images (N, 1, 28, 28),
    built by trainlab's own data stage (same subset, same order) so that every loop sees the same tensors."""
    from trainlab.data import build_data
    from trainlab.recipe import DataConfig

    b = build_data(DataConfig(**data_config(subset)), seed=0)
    return b.train.x, b.train.y, b.test.x, b.test.y


def torch_model(workload: str):
    """The workload's model in plain PyTorch (the same layers trainlab's registry builds)."""
    from torch import nn

    if workload == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))

    def conv_bn(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU())
    layers, cin = [], 1
    for i, width in enumerate(CNN_WIDTHS):  # every stage after the first halves the resolution
        layers.append(conv_bn(cin, width, CNN_STEM if i == 0 else 2))
        cin = width
    side = (28 + CNN_STEM - 1) // CNN_STEM
    for _ in CNN_WIDTHS[1:]:
        side = (side + 1) // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * side * side, 10))


def accuracy(model, x, y, channels_last: bool = False) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1024):
            xb = x[i:i + 1024]
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            correct += int((model(xb).argmax(-1) == y[i:i + 1024]).sum())
    return correct / len(x)


# --- the loops: each returns (epoch end times since start, test accuracy) --------------------------
def run_hand(w, data, epochs, seed):
    import torch

    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    model = torch_model(w["name"])
    conv = w["name"] == "convnet"
    if conv:  # what an optimizing hand writes for a BN conv net on CPU (FACTS.md: 20-65% faster)
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=w["lr"], momentum=MOMENTUM, foreach=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    n, bs, ends, t0 = len(xtr), w["batch"], [], time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for b in range(0, n, bs):
            idx = perm[b:b + bs]
            xb, yb = xtr[idx], ytr[idx]
            if conv:
                xb = xb.contiguous(memory_format=torch.channels_last)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        ends.append(time.perf_counter() - t0)
    return ends, accuracy(model, xte, yte, conv)


def run_textbook(w, data, epochs, seed):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    model = torch_model(w["name"])
    opt = torch.optim.SGD(model.parameters(), lr=w["lr"], momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(xtr, ytr), batch_size=w["batch"], shuffle=True)
    ends, t0 = [], time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        ends.append(time.perf_counter() - t0)
    return ends, accuracy(model, xte, yte)


def run_lightning(w, data, epochs, seed):
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    xtr, ytr, xte, yte = data
    L.seed_everything(seed, verbose=False)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch_model(w["name"])
            self.loss_fn = torch.nn.CrossEntropyLoss()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = self.loss_fn(self.net(x), y)
            self.log("train_loss", loss)  # what a Lightning user writes (logged every 50 steps)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=w["lr"], momentum=MOMENTUM)

    ends, t0 = [], [0.0]

    class Timer(L.Callback):
        def on_train_start(self, trainer, pl_module):
            t0[0] = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            ends.append(time.perf_counter() - t0[0])

    module = Module()
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[Timer()])
    trainer.fit(module, DataLoader(TensorDataset(xtr, ytr), batch_size=w["batch"], shuffle=True))
    return ends, accuracy(module.net, xte, yte)


def run_keras(w, data, epochs, seed):
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    xtr, ytr, xte, yte = data
    keras.utils.set_random_seed(seed)
    if w["name"] == "mlp":
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(10)])
        def to_np(x):
            return x.reshape(len(x), -1).numpy()
    else:
        layers = [keras.Input((28, 28, 1))]
        for i, width in enumerate(CNN_WIDTHS):
            stride = CNN_STEM if i == 0 else 2
            layers += [keras.layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False),
                       keras.layers.BatchNormalization(), keras.layers.ReLU()]
        model = keras.Sequential([*layers, keras.layers.Flatten(), keras.layers.Dense(10)])
        def to_np(x):  # Keras's default layout: channels last
            return x.permute(0, 2, 3, 1).contiguous().numpy()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=w["lr"], momentum=MOMENTUM),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ends, t0 = [], [0.0]

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            t0[0] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter() - t0[0])

    model.fit(to_np(xtr), ytr.numpy(), batch_size=w["batch"], epochs=epochs, shuffle=True, verbose=0,
              callbacks=[Timer()])
    pred = model.predict(to_np(xte), batch_size=1024, verbose=0)
    return ends, float((pred.argmax(-1) == yte.numpy()).mean())


def run_trainlab(w, subset, epochs, seed, threads, overrides=(), run_dir=True):
    """trainlab through its public API with a real run directory (checkpoints, metrics.jsonl), as a
    user runs it; plots, TensorBoard and the HTML report are off (written after training anyway).
    `run_dir=False` (the `trainlab-loop` loop): the same Trainer with no run directory, so it writes
    nothing, like the other loops: the cost of the training loop alone."""
    import trainlab
    from trainlab.recipe import load_recipe
    from trainlab.train import Trainer
    from trainlab.train.callbacks import Callback

    ends, t0 = [], [0.0]

    class Timer(Callback):
        def on_fit_start(self, trainer):
            t0[0] = time.perf_counter()

        def on_epoch_end(self, trainer, logs):
            ends.append(time.perf_counter() - t0[0])
            extra.update({k: logs[k] for k in ("train.mfu", "train.flops_per_step") if k in logs})

    extra: dict = {}
    recipe = {
        "name": f"bench-{w['name']}", "seed": seed,
        "data": {**data_config(subset), "batch_size": w["batch"]},
        "model": w["model"], "loss": {"name": "cross_entropy"},
        "optim": {"name": "sgd", "lr": w["lr"], "momentum": MOMENTUM},
        "schedule": {"name": "constant"},
        # fp32 like every other loop (same work): `precision: auto` may pick bf16 on a CPU with AMX,
        # which knobs.py measures on its own
        "train": {"epochs": epochs, "threads": threads, "precision": "fp32"},
        "output": {"root": tempfile.mkdtemp(prefix="trainlab-bench-"), "plots": False, "tensorboard": False,
                   "report": False},
    }
    if not run_dir:
        trainer = Trainer(load_recipe(recipe, list(overrides)), progress=False, callbacks=[Timer()])
        trainer.fit()
        return ends, float(trainer.evaluate_split("test")["accuracy"]), extra
    run = trainlab.train(recipe, list(overrides), progress=False, callbacks=[Timer()])
    import shutil

    shutil.rmtree(recipe["output"]["root"], ignore_errors=True)
    return ends, float(run.metrics["accuracy"]), extra


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loop", required=True,
                   choices=["trainlab", "trainlab-loop", "hand", "textbook", "lightning", "keras"])
    p.add_argument("--workload", required=True, choices=list(WORKLOADS))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, the core count)")
    p.add_argument("--subset", type=int, default=None, help="train on this many samples (quick checks only)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="trainlab loop only: override a recipe field (knobs.py measures each knob so)")
    a = p.parse_args(argv)
    import torch

    threads = a.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    w = {**WORKLOADS[a.workload], "name": a.workload}
    extra: dict = {}
    if a.loop in ("trainlab", "trainlab-loop"):
        ends, acc, extra = run_trainlab(w, a.subset, a.epochs, a.seed, threads, a.set, a.loop == "trainlab")
    else:
        data = load_data(a.subset)
        ends, acc = {"hand": run_hand, "textbook": run_textbook, "lightning": run_lightning,
                     "keras": run_keras}[a.loop](w, data, a.epochs, a.seed)
    epochs = [b - a_ for a_, b in zip([0.0] + ends[:-1], ends)]
    steady = epochs[1:] or epochs
    print(json.dumps({"loop": a.loop, "workload": a.workload, "threads": threads, "epochs": epochs,
                      "s_per_epoch": statistics.median(steady), "test_accuracy": acc, **extra}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
