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
    monkeypatch.setattr(perf, "measure_peak", lambda device, dtype, seconds: calls.append(dtype) or 1.5e11)
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


def probes(monkeypatch, *values: float) -> list[float]:
    """measure_peak answers `values` in turn (the last one from then on); returns the list of calls' seconds."""
    calls: list[float] = []
    it = iter(values)

    def fake(device, dtype=torch.float32, seconds=perf.PROBE_SECONDS):
        calls.append(seconds)
        return next(it, values[-1])

    monkeypatch.setattr(perf, "measure_peak", fake)
    return calls


def test_the_cache_keeps_the_best_probe_a_lower_one_never_replaces_it(monkeypatch):
    calls = probes(monkeypatch, 2e11, 0.9e11, 3e11)
    cpu = torch.device("cpu")
    assert perf.peak_flops(cpu) == 2e11
    assert perf.peak_flops(cpu, refresh=True) == 2e11  # a busy moment's 90 GFLOP/s does not count
    assert perf.peak_flops(cpu) == 2e11 and len(calls) == 2
    (entry,) = json.loads(perf.cache_path().read_text()).values()
    assert entry["flops"] == 2e11 and entry["last_probe"] == 0.9e11 and entry["probes"] == 2
    assert perf.peak_flops(cpu, refresh=True) == 3e11
    (entry,) = json.loads(perf.cache_path().read_text()).values()
    assert entry["flops"] == 3e11 and entry["probes"] == 3


@pytest.mark.parametrize("other", [{"model name": "Other CPU"},  # another model
                                   {"flags": "fpu sse sse2"}])  # one vague model name, other features
def test_a_cache_from_another_machine_is_not_used(monkeypatch, other):
    here = {"model name": "AMD EPYC", "cpu family": "26", "model": "2", "stepping": "1",
            "flags": "fpu sse sse2 avx2 avx512f avx512_bf16"}
    monkeypatch.setattr(perf, "_cpuinfo", lambda: {**here, **other})
    calls = probes(monkeypatch, 9e12, 1.5e11)
    cpu = torch.device("cpu")
    assert perf.peak_flops(cpu) == 9e12  # the file copied from the other machine holds this entry
    monkeypatch.setattr(perf, "_cpuinfo", lambda: here)
    assert perf.peak_flops(cpu) == 1.5e11 and len(calls) == 2  # probed here, not read from the copy
    assert len(json.loads(perf.cache_path().read_text())) == 2  # both machines' entries stay


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "null", "", "BINARY",
                                  "KEY_STR", "KEY_NAN", "KEY_NEG"])
def test_a_corrupt_cache_file_is_replaced_not_a_crash(monkeypatch, text):
    calls = probes(monkeypatch, 1.5e11)
    cpu = torch.device("cpu")
    key = perf._cache_key(cpu, torch.float32)
    text = {"KEY_STR": json.dumps({key: {"flops": "fast"}}), "KEY_NAN": '{"%s": {"flops": NaN}}' % key,
            "KEY_NEG": json.dumps({key: {"flops": -1.0}, "other": 3})}.get(text, text)
    perf.cache_path().parent.mkdir(parents=True)
    perf.cache_path().write_bytes(b"\x00\xff\xfe" if text == "BINARY" else text.encode())
    assert perf.peak_flops(cpu) == 1.5e11 and len(calls) == 1
    assert json.loads(perf.cache_path().read_text())[key]["flops"] == 1.5e11
    assert perf.peak_flops(cpu) == 1.5e11 and len(calls) == 1  # the replaced file is read back


def test_a_run_close_to_the_cached_peak_reprobes_and_keeps_the_max(monkeypatch, caplog):
    cpu = torch.device("cpu")
    calls = probes(monkeypatch, 8.7e10, 3.52e11, 1e11)
    busy = perf.peak_flops(cpu)  # probed on a busy machine
    assert perf.peak_for(0.5 * busy, busy, cpu) == (busy, "cached") and len(calls) == 1  # far below: no probe
    peak, how = perf.peak_for(1.1e11, busy, cpu)  # above the cached peak: a short probe
    assert (peak, how) == (3.52e11, "reprobed") and calls[-1] == perf.REPROBE_SECONDS
    assert perf.peak_flops(cpu) == 3.52e11  # the cache has it
    peak, how = perf.peak_for(0.9 * peak, peak, cpu)  # close again, and the probe reads low
    assert (peak, how) == (3.52e11, "reprobed") and perf.peak_flops(cpu) == 3.52e11
    with caplog.at_level("WARNING", logger="trainlab"):
        assert perf.peak_for(4e11, peak, cpu) == (4e11, "achieved")  # no probe reaches the run: its own rate
    assert "its own rate is the peak" in caplog.text
    assert perf.peak_for(4.5e11, 4e11, cpu, reprobe=False) == (4.5e11, "achieved") and len(calls) == 4
    assert perf.peak_flops(cpu) == 3.52e11  # only probes go into the cache


def tiny_trainer(epochs: int = 3):
    from trainlab.recipe import load_recipe
    from trainlab.train import Trainer

    recipe = load_recipe({"name": "p", "data": {"source": "synthetic:classification", "n": 512, "batch_size": 64,
                                                "val_fraction": 0.0, "test_fraction": 0.0},
                          "model": {"name": "mlp", "widths": [32]}, "optim": {"name": "sgd", "lr": 0.05},
                          "train": {"epochs": epochs, "device": "cpu", "threads": 1}})
    return Trainer(recipe, progress=False)


def seed_cache(flops: float, threads: int = 1) -> None:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)  # the key the run will look up
    key = perf._cache_key(torch.device("cpu"), torch.float32)
    torch.set_num_threads(old)
    perf.cache_path().parent.mkdir(parents=True, exist_ok=True)
    perf.cache_path().write_text(json.dumps({key: {"flops": flops, "measured": "2026-01-01T00:00:00"}}))


def test_a_deliberately_low_cached_peak_is_raised_by_the_run_and_mfu_stays_below_100(monkeypatch):
    seed_cache(1e6)  # 1 MFLOP/s: any run computes more
    trainer = tiny_trainer()
    trainer.fit()
    peaks = [h["train.peak_flops"] for h in trainer.history]
    assert min(peaks) > 1e8 and len(set(peaks)) == 1  # the first epoch re-probed (a real matmul probe)
    assert all(0 < h["train.mfu"] < 1 for h in trainer.history)
    (entry,) = json.loads(perf.cache_path().read_text()).values()  # the seeded entry, raised
    assert entry["flops"] == peaks[0] and entry["probes"] == 2
    line = perf.summary_line(trainer.history, 1)
    assert float(line.split("%")[0].removeprefix("MFU ")) < 100 and "own rate" not in line


def test_a_run_faster_than_every_probe_is_its_own_peak_and_reprobes_once(monkeypatch):
    seed_cache(1e6)
    calls = probes(monkeypatch, 1e6)  # every probe reads as low as the cache: a broken probe
    trainer = tiny_trainer()
    trainer.fit()
    assert calls == [perf.REPROBE_SECONDS]  # once per run, however many epochs
    best = 0.0
    for h in trainer.history:  # the peak is the fastest epoch so far: that one at 100% exactly
        achieved = h["train.samples_per_s"] * h["train.flops_per_step"] / 64
        best = max(best, achieved)
        assert h["train.peak_flops"] == pytest.approx(best) and h["train.mfu"] <= 1
        assert h["train.mfu"] == 1.0 or achieved < h["train.peak_flops"]
    assert trainer.history[0]["train.mfu"] == 1.0
    line = perf.summary_line(trainer.history, 1)
    assert line.startswith("MFU ") and float(line.split("%")[0][4:]) <= 100 and "own rate" in line


def test_summary_line_divides_by_the_highest_peak_of_a_resumed_run():
    history = [{"train.mfu": 0.5, "train.peak_flops": 2e11, "train.time": 1.0, "train.flops_per_step": 2e6},
               {"train.mfu": 0.5, "train.peak_flops": 1e11, "train.time": 1.0, "train.flops_per_step": 2e6}]
    assert perf.summary_line(history, 2).startswith("MFU 37.5%")  # (1e11 + 0.5e11) / 2 / 2e11


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


def test_threads_for_step_is_one_below_the_threshold_and_the_default_above():
    assert perf.threads_for_step(perf.SERIAL_STEP_FLOPS - 1, 8) == 1
    assert perf.threads_for_step(perf.SERIAL_STEP_FLOPS, 8) == 8
    assert perf.threads_for_step(1e12, 2) == 2


def _threads_of_run(tmp_path, name: str, threads=None) -> tuple[int, int]:
    """(threads in env.json, threads during the first step) of a tiny MLP run (0.3 MFLOP a step)."""
    import trainlab
    from trainlab.events import Callback

    seen = []

    class Threads(Callback):
        def on_step(self, trainer, logs):
            seen.append(torch.get_num_threads())

    train = {"epochs": 1, "log_every": 1, **({"threads": threads} if threads else {})}
    run = trainlab.train({"name": name, "seed": 0, "data": {"source": "synthetic:classification", "subset": 128,
                                                             "batch_size": 32},
                          "model": {"name": "mlp", "widths": [16]}, "optim": {"name": "sgd", "lr": 0.1},
                          "train": train, "output": {"root": str(tmp_path), "plots": False, "report": False,
                                                     "tensorboard": False}}, progress=False, callbacks=[Threads()])
    return json.loads((run.path / "env.json").read_text())["threads"], seen[0]


def test_a_tiny_training_step_runs_on_one_thread_unless_the_recipe_says(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    try:
        assert _threads_of_run(tmp_path, "tiny") == (1, 1)
        assert _threads_of_run(tmp_path, "two", threads=2) == (2, 2)  # the recipe's count is kept
        monkeypatch.setattr(perf, "SERIAL_STEP_FLOPS", 0.0)  # as if the step were large: the default
        assert _threads_of_run(tmp_path, "large") == (perf.default_threads(),) * 2
    finally:
        torch.set_num_threads(before)


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
    import importlib

    trainer_module = importlib.import_module("trainlab.train.trainer")

    def fake_peak(device, dtype=torch.float32, refresh=False, seconds=None):
        return peaks[dtype]

    # both bindings: perf's own (precision and peak_for call it) and the trainer's (the MFU peak), so that
    # no real probe of this machine (on a CPU without AMX, a low bf16 peak that a run may reach) interferes
    monkeypatch.setattr(perf, "peak_flops", fake_peak)
    monkeypatch.setattr(trainer_module, "peak_flops", fake_peak)
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
