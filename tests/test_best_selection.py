"""Which epoch checkpoints/best holds (train/best.py): ties in the monitored metric within one
validation sample go to the lower validation loss, the pick says why, and it survives resume."""
from __future__ import annotations

import json

import pytest

import trainlab
from trainlab.train.best import Selection, resolution
from trainlab.train.checkpoint import load_checkpoint_state


def pick(monitor: str, samples: int | None, epochs: list[tuple[float, float]]) -> Selection:
    """Drive the selection with (monitored value, val.loss) per epoch, as the trainer does."""
    s = Selection(monitor, samples)
    for i, (value, loss) in enumerate(epochs, start=1):
        s.consider({"epoch": i, monitor: value, "val.loss": loss})
    return s


def test_resolution_is_one_sample_for_counted_metrics_and_zero_for_continuous_ones():
    assert resolution("val.accuracy", 46) == pytest.approx(1 / 46)
    assert resolution("val.f1_macro", 50) == pytest.approx(0.02)
    assert resolution("val.top5_accuracy", 10) == pytest.approx(0.1)
    for continuous in ("val.loss", "val.auroc", "val.mse", "val.r2", "train.accuracy"):
        assert resolution(continuous, 46) == 0.0


def test_exact_tie_goes_to_the_lower_val_loss_not_the_first_epoch():
    # the run: val.accuracy 0.978 at epoch 1 and again later, with a much lower loss
    epochs = [(45 / 46, 0.30), (44 / 46, 0.20), (45 / 46, 0.12), (45 / 46, 0.07), (45 / 46, 0.09)]
    s = pick("val.accuracy", 46, epochs)
    assert s.epoch == 4 and s.loss == 0.07 and s.value == pytest.approx(45 / 46)
    history = [{"epoch": i, "val.accuracy": v, "val.loss": loss} for i, (v, loss) in enumerate(epochs, 1)]
    reason = s.reason(history)
    assert reason == ("epoch 4 — val.accuracy 0.9783 (tied with epochs 1, 3, 5; epoch 2 within one validation "
                      "sample (1/46); lowest val.loss 0.07)")


def test_one_sample_lower_with_a_lower_loss_wins_two_samples_lower_does_not():
    # epoch 1 is an under-trained lucky one: one sample more right, far higher loss
    s = pick("val.accuracy", 46, [(46 / 46, 0.60), (45 / 46, 0.08)])
    assert s.epoch == 2
    s = pick("val.accuracy", 46, [(46 / 46, 0.60), (44 / 46, 0.05)])
    assert s.epoch == 1


def test_a_clearly_better_epoch_wins_whatever_its_loss_and_the_pick_never_drifts():
    s = pick("val.accuracy", 100, [(0.90, 0.1), (0.95, 0.5)])
    assert s.epoch == 2
    # each step one sample lower with a lower loss: the pick stays within one sample of the top (0.95)
    s = pick("val.accuracy", 100, [(0.95, 0.50), (0.94, 0.40), (0.93, 0.30), (0.92, 0.20)])
    assert s.epoch == 2 and s.value == pytest.approx(0.94)
    # the top rises within one sample: a pick that is no longer within reach gives way
    s = pick("val.accuracy", 100, [(0.95, 0.50), (0.94, 0.40), (0.955, 0.45)])
    assert s.epoch == 3


def test_continuous_monitor_only_exact_ties_and_the_first_of_equal_losses_stays():
    s = pick("val.loss", 46, [(0.3, 0.3), (0.2, 0.2), (0.2, 0.2), (0.25, 0.25)])
    assert s.epoch == 2 and s.reason().endswith("(the lowest)")
    s = pick("val.auroc", 46, [(0.99, 0.3), (0.99, 0.1), (0.989, 0.05)])
    assert s.epoch == 2  # exact tie: lower loss; 0.989 is simply worse


def test_state_round_trips_and_an_old_checkpoint_keeps_its_best_value():
    s = pick("val.accuracy", 46, [(45 / 46, 0.3), (45 / 46, 0.1)])
    t = Selection("val.accuracy", 46)
    t.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert t.state_dict() == s.state_dict()
    old = Selection("val.accuracy", 46)
    old.load_state_dict(None, best=0.9)  # a checkpoint from before selections: the value only
    assert old.consider({"epoch": 5, "val.accuracy": 0.89, "val.loss": 0.01}) and old.epoch == 5
    assert old.value == pytest.approx(0.89)  # within one sample (1/46) and a loss: it wins


def _tied_recipe(tmp_path, epochs: int = 8) -> dict:
    # blobs so well separated that validation accuracy is 1.0 from the first epoch on: every
    # epoch ties, and the loss keeps falling, so the pick must be a late epoch, not epoch 1
    return {"name": "ties", "seed": 0,
            "data": {"source": "synthetic:classification", "n": 300, "classes": 2, "spread": 0.5,
                     "val_fraction": 0.1, "batch_size": 32},
            "model": {"name": "mlp", "widths": [8]}, "optim": {"name": "adamw", "lr": 0.01},
            "train": {"epochs": epochs, "monitor": "val.accuracy", "threads": 1, "deterministic": True},
            "output": {"root": str(tmp_path), "plots": False, "report": False}}


def test_real_run_with_tied_accuracy_picks_the_lowest_val_loss(tmp_path):
    run = trainlab.train(_tied_recipe(tmp_path), run_dir=tmp_path / "run", progress=False)
    accs = [h["val.accuracy"] for h in run.history]
    losses = [h["val.loss"] for h in run.history]
    assert len(set(accs)) == 1, accs  # the tie this test is about
    want = min(range(len(losses)), key=losses.__getitem__) + 1
    assert want > 1
    env = json.loads((run.path / "env.json").read_text())
    assert env["best"]["epoch"] == want and run.metrics["epoch"] == want
    assert env["best"]["val.loss"] == pytest.approx(losses[want - 1])
    assert "tied with epochs" in env["best"]["reason"] and "lowest val.loss" in env["best"]["reason"]
    assert env["best"]["reason"].startswith(f"epoch {want} — val.accuracy 1 (tied with epochs 1, ")
    state = load_checkpoint_state(run.path / "checkpoints" / "best")
    assert state["trainer"]["selection"]["epoch"] == want
    # the runs index reads the pick, not the first maximum
    from trainlab.track.runs import load_run, summary_row

    row = summary_row(load_run(run.path))
    assert row["best_epoch"] == want and row["best_reason"] == env["best"]["reason"]
    # the report says which epoch and why, and puts the majority-class baseline beside the model
    import html

    from trainlab.api import report

    page = html.unescape(report(run.path).read_text())
    assert f"checkpoints/best: {env['best']['reason']}" in page
    base = run.metrics["baseline"]
    assert f"accuracy {run.metrics['accuracy']:.4f} vs {base['accuracy']:.4f}" in page
    assert "test baseline (always" in page


def test_the_pick_survives_resume(tmp_path):
    from .test_resume import AtStep, crash

    whole = trainlab.train(_tied_recipe(tmp_path, 6), run_dir=tmp_path / "whole", progress=False)
    # 216 training samples, batch 32: 7 steps per epoch; a crash in epoch 5 resumes from epoch 4's checkpoint
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainlab.train(_tied_recipe(tmp_path, 6), run_dir=tmp_path / "cut", progress=False,
                       callbacks=[AtStep(31, crash)])
    cut = load_checkpoint_state(tmp_path / "cut" / "checkpoints" / "last")["trainer"]
    assert cut["epoch"] == 4 and cut["selection"]["epoch"] is not None
    resumed = trainlab.resume(tmp_path / "cut", progress=False)
    a = json.loads((whole.path / "env.json").read_text())["best"]
    b = json.loads((resumed.path / "env.json").read_text())["best"]
    assert a == b and resumed.metrics["epoch"] == whole.metrics["epoch"]
