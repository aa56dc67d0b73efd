"""MFU (perf.py): FLOPs per training step, the cached peak probe, and what a run logs and prints."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from trainlab import perf, precision

from .conftest import needs_fmnist


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test probes into its own cache, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def mlp_step_flops(batch: int, d_in: int, hidden: int, classes: int) -> int:
    """Analytic FLOPs of a Linear-ReLU-Linear training step (a multiply-add is 2): forward 2·B·(d·h + h·c);
    backward computes both gradients of the head (2 × 2·B·h·c) but only the weight gradient of the
    first layer (its input needs no gradient: 2·B·d·h)."""
    return 2 * batch * (d_in * hidden + hidden * classes) + 2 * batch * d_in * hidden + 4 * batch * hidden * classes


def test_train_step_flops_is_the_analytic_count_and_touches_nothing():
    model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    x, y = torch.randn(8, 20), torch.randint(0, 3, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    flops = perf.train_step_flops(model, nn.CrossEntropyLoss(), x, y)
    assert flops == mlp_step_flops(8, 20, 16, 3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics too
    assert torch.equal(rng, torch.get_rng_state())  # dropout drew from a forked stream
    assert all(p.grad is None for p in model.parameters())


def test_peak_is_probed_once_per_machine_and_cached(monkeypatch):
    calls = []
    monkeypatch.setattr(perf, "measure_peak", lambda device, dtype: calls.append(dtype) or 1.5e11)
    cpu = torch.device("cpu")
    assert perf.peak_flops(cpu) == 1.5e11
    assert perf.peak_flops(cpu) == 1.5e11
    assert len(calls) == 1
    cached = json.loads(perf.cache_path().read_text())
    (key, entry), = cached.items()
    assert "cpu" in key and f"{torch.get_num_threads()} threads" in key and entry["flops"] == 1.5e11
    perf.peak_flops(cpu, torch.bfloat16)  # another dtype is another probe
    perf.peak_flops(cpu, refresh=True)
    assert calls == [torch.float32, torch.bfloat16, torch.float32]


def test_measured_peak_is_plausible():
    peak = perf.measure_peak(torch.device("cpu"), seconds=0.05)
    assert 1e8 < peak < 1e14


def test_summary_line_averages_over_the_run():
    history = [{"train.mfu": 0.1, "train.peak_flops": 1e11, "train.time": 1.0, "train.flops_per_step": 2e6},
               {"train.mfu": 0.3, "train.peak_flops": 1e11, "train.time": 1.0, "train.flops_per_step": 2e6}]
    line = perf.summary_line(history, 2)
    assert line.startswith("MFU 20.0%") and "2 threads" in line
    assert perf.summary_line([{"train.loss": 1.0}], 2) is None


@needs_fmnist
def test_a_run_logs_mfu_and_flops_per_step_and_prints_them(cli, write_recipe, tmp_path):
    recipe = write_recipe({"data": {"subset": 512, "batch_size": 32, "val_fraction": 0.1},
                           "model": {"name": "mlp", "widths": [24]}, "optim": {"name": "sgd", "lr": 0.05},
                           "train": {"epochs": 2, "threads": 1},
                           "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False,
                                      "tensorboard": False}})
    res = cli("train", recipe, "--run-dir", tmp_path / "run", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stderr
    assert "MFU " in res.stdout and "1 threads" in res.stdout
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["split"] == "train" and "mfu" in r]
    assert len(epochs) == 2
    for r in epochs:
        assert 0 < r["mfu"] < 1
        assert r["flops_per_step"] == mlp_step_flops(32, 784, 24, 10)
    assert json.loads((tmp_path / "run" / "env.json").read_text())["threads"] == 1


# --- the fast-path knobs ------------------------------------------------------------------------
def test_every_torch_optimizer_runs_its_fused_or_foreach_kernel():
    import inspect

    from trainlab.optim import OPTIMIZERS, build_optimizer
    from trainlab.recipe import OptimConfig

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    checked = 0
    for entry in OPTIMIZERS.entries():
        opt = build_optimizer(OptimConfig(name=entry.name), model)
        for part in getattr(opt, "parts", {"": opt}).values():
            accepted = inspect.signature(type(part)).parameters
            if "fused" in accepted or "foreach" in accepted:
                assert part.defaults.get("fused") or part.defaults.get("foreach"), entry.name
                checked += 1
    assert checked >= 10


def test_precision_auto_is_bf16_on_cuda_only(monkeypatch):
    from trainlab.precision import resolve_precision

    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("fp16", torch.device("cpu")) == "fp16"


def test_precision_auto_on_cpu_takes_bf16_only_where_it_pays(monkeypatch):
    peaks = {torch.float32: 365e9, torch.bfloat16: 808e9}  # the 1024² probes of an AMX CPU here (2.2x)
    monkeypatch.setattr(perf, "peak_flops", lambda device, dtype=torch.float32, refresh=False: peaks[dtype])
    assert precision.cpu_bf16_pays(8.5e9)  # the CNN recipe's step
    assert not precision.cpu_bf16_pays(52e6)  # the MLP's: dispatch-bound, casts would cost more
    assert precision.resolve_precision("auto", torch.device("cpu"), 8.5e9) == "bf16"
    assert precision.resolve_precision("auto", torch.device("cpu"), 52e6) == "fp32"
    peaks[torch.bfloat16] = 180e9  # no AMX: bf16 at half the fp32 rate
    assert not precision.cpu_bf16_pays(8.5e9)
    assert precision.resolve_precision("auto", torch.device("cpu"), 8.5e9) == "fp32"


@needs_fmnist
@pytest.mark.parametrize("bf16_peak, want", [(808e9, "bf16"), (180e9, "fp32")])
def test_a_cpu_run_trains_in_the_precision_auto_chose(monkeypatch, bf16_peak, want):
    from trainlab.recipe import load_recipe
    from trainlab.train import Trainer

    peaks = {torch.float32: 365e9, torch.bfloat16: bf16_peak}
    monkeypatch.setattr(perf, "peak_flops", lambda device, dtype=torch.float32, refresh=False: peaks[dtype])
    monkeypatch.setattr(precision, "BF16_MIN_STEP_FLOPS", 1e6)  # this small net's step counts as compute-bound
    recipe = load_recipe({"name": "p", "data": {"source": "fashion_mnist", "subset": 128, "batch_size": 64,
                                                "val_fraction": 0.0},
                          "model": {"name": "convnet", "widths": [4, 8]}, "optim": {"name": "sgd", "lr": 0.05},
                          "train": {"epochs": 1, "device": "cpu", "threads": 1}})
    trainer = Trainer(recipe, progress=False)
    dtypes = []
    first = trainer.model[0]  # (the FLOP count runs on a deep copy of the model: its hook copy is ignored)
    first.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype) if m is first and m.training else None)
    trainer.fit()
    assert trainer.precision == want
    assert set(dtypes) == {torch.bfloat16 if want == "bf16" else torch.float32} and len(dtypes) == 2
    # evaluation on a CPU stays fp32
    assert trainer.evaluate_split("test")["accuracy"] > 0


def test_compile_compiles_the_model_in_place(monkeypatch):
    from trainlab.recipe import load_recipe
    from trainlab.train import Trainer

    calls = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, *a, **k: calls.append(type(self).__name__))
    recipe = load_recipe({"data": {"source": "synthetic:linear"}, "model": {"name": "mlp", "widths": [4]},
                          "train": {"epochs": 1, "compile": True, "threads": 1}})
    trainer = Trainer(recipe, progress=False)
    names = list(trainer.model.state_dict())
    trainer.fit()
    assert calls == ["Sequential"]  # once, on the trainer's own model: checkpoint keys keep their names
    assert list(trainer.model.state_dict()) == names
    assert trainer.history[-1]["train.mfu"] > 0


def test_running_correct_counts_exactly_whatever_the_flushes(monkeypatch):
    from trainlab.train import running

    monkeypatch.setattr(running, "KEEP_LOGITS", 300)  # batches of 64×10 logits go the argmax way
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(n, 10, generator=g), torch.randint(0, 10, (n,), generator=g))
               for n in [4] * 70 + [64, 64, 3]]
    seq = (torch.randn(2, 5, 7, generator=g), torch.randint(0, 7, (2, 5), generator=g))  # per-token targets
    truth = sum(int((o.argmax(-1) == y).sum()) for o, y in [*batches, seq])
    count = running.RunningCorrect(torch.zeros((), dtype=torch.long))
    for o, y in [*batches, seq]:
        count.add(o, y)
    assert int(count.flush()) == truth
    assert int(count.flush()) == truth  # flushing again adds nothing
