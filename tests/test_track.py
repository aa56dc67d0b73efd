"""track/: plots, the TensorBoard logger, the runs index and the report, on small hand-made data."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from trainlab import api, build
from trainlab.recipe import load_recipe
from trainlab.track import plots
from trainlab.track.report import write_report
from trainlab.track.rundir import RunDir, process_start
from trainlab.track.runs import flatten, process_gone, recipe_differences

PNG = b"\x89PNG\r\n\x1a\n"


def test_process_gone_tells_dead_reused_and_live_pids_apart():
    import platform

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me, host = os.getpid(), platform.node()
    assert process_gone({"pid": dead.pid, "host": host})
    assert not process_gone({"pid": me, "host": host, "pid_start": process_start(me)})
    if process_start(me) is not None:  # Linux: a live pid that started at another time was reused
        assert process_gone({"pid": me, "host": host, "pid_start": process_start(me) + 1})
    assert not process_gone({"pid": dead.pid, "host": host + "-elsewhere"})  # cannot judge
    assert not process_gone({"host": host})  # no pid recorded


def test_recipe_differences_flatten_nested_keys_and_missing_ones():
    a = SimpleNamespace(recipe={"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "seed": 0})
    b = SimpleNamespace(recipe={"optim": {"name": "adamw", "lr": 0.1}, "seed": 0})
    assert flatten(a.recipe) == {"optim.name": "sgd", "optim.lr": 0.1, "optim.momentum": 0.9, "seed": 0}
    assert recipe_differences([a, b]) == {"optim.momentum": [0.9, "—"], "optim.name": ["sgd", "adamw"]}
    assert recipe_differences([a, a]) == {}


def _records(lrs_at: dict[int, float], per_epoch: int, epochs: int) -> list[dict]:
    recs = [{"split": "train", "epoch": e - 1, "step": s, "lr": lr, "loss": 1.0}
            for s, lr in lrs_at.items() for e in [1 + (s - 1) // per_epoch]]
    recs += [{"split": "train", "epoch": e, "step": e * per_epoch, "lr": lrs_at.get(e * per_epoch, 0.0),
              "loss": 1.0, "time": 1.0} for e in range(1, epochs + 1)]
    return recs


def test_scheduled_lrs_replays_the_schedule_and_checks_it_against_the_log():
    recipe = load_recipe({"optim": {"name": "sgd", "lr": 0.1}, "schedule": {"name": "cosine"},
                          "train": {"epochs": 2}})
    model = torch.nn.Linear(1, 1)
    from trainlab.optim import build_optimizer, build_schedule

    opt = build_optimizer(recipe.optim, model)
    sched = build_schedule(recipe.schedule, opt, 20)
    truth, used = {}, {}
    for step in range(1, 21):
        used[step] = opt.param_groups[0]["lr"]  # the LR step `step` trains with: what the run logs
        opt.step(), sched.step()
        truth[step] = opt.param_groups[0]["lr"]
    logged = {s: used[s] for s in (5, 10, 15, 20)}
    lrs = build.scheduled_lrs(recipe, _records(logged, per_epoch=10, epochs=2))
    assert lrs is not None and len(lrs) == 21 and lrs[0] == (0, 0.1)
    assert [lr for _, lr in lrs[1:]] == pytest.approx([truth[s] for s in range(1, 21)])
    wrong = {**logged, 15: logged[15] * 2}  # a log the schedule cannot explain: no replayed line
    assert build.scheduled_lrs(recipe, _records(wrong, per_epoch=10, epochs=2)) is None
    fig = plots.lr_figure(_records(logged, 10, 2), lrs)
    assert plots.png_bytes(fig).startswith(PNG)


def test_most_confident_wrong_orders_by_confidence():
    outputs = torch.tensor([[5.0, 0.0], [0.0, 1.0], [0.0, 9.0], [3.0, 0.0]])
    targets = torch.tensor([1, 1, 0, 0])  # rows 0 and 2 are wrong; row 2 is the more confident
    picks = plots.most_confident_wrong(outputs, targets, k=5)
    assert [(i, p) for i, p, _ in picks] == [(2, 1), (0, 0)]
    assert picks[0][2] == pytest.approx(torch.softmax(torch.tensor([0.0, 9.0]), 0)[1].item())
    fig = plots.wrong_examples_figure(torch.rand(4, 1, 8, 8), targets, picks, ["a", "b"])
    assert plots.png_bytes(fig).startswith(PNG)


def test_eval_figures_draw_from_the_json_alone():
    from trainlab.metrics import evaluate_outputs

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (90,), generator=g)
    m = evaluate_outputs(torch.randn(90, 3, generator=g), y, "classification", torch.nn.CrossEntropyLoss(), 3,
                         ["x", "y", "z"])
    figs = plots.eval_figures(json.loads(json.dumps(m)), "test")
    assert set(figs) == {"confusion_matrix", "roc", "pr"}
    assert all(plots.png_bytes(f).startswith(PNG) for f in figs.values())


def test_tensorboard_logger_writes_what_the_reader_reads(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from trainlab.track.tensorboard import TensorBoardLogger, log_split_metrics

    trainer = SimpleNamespace(run_dir=RunDir(tmp_path), recipe=load_recipe({}), epoch=0, step=0)
    cb = TensorBoardLogger()
    cb.on_fit_start(trainer)
    for epoch in (1, 2, 3):
        trainer.step = epoch * 10
        cb.on_step(trainer, {"loss": 1.0 / epoch, "lr": 0.1, "samples_per_s": 100.0})
        cb.on_epoch_end(trainer, {"epoch": epoch, "train.loss": 1.0 / epoch, "val.loss": 2.0 / epoch,
                                  "val.accuracy": 0.5, "lr": 0.1, "time": float(epoch)})
    cb.on_fit_end(trainer)
    log_split_metrics(tmp_path, "test", {"accuracy": 0.75, "samples": 10, "split": "test"}, 3)
    ea = EventAccumulator(str(tmp_path / "tb"))
    ea.Reload()
    val = ea.Scalars("val/loss")
    assert [e.step for e in val] == [1, 2, 3] and [e.value for e in val] == pytest.approx([2.0, 1.0, 2 / 3])
    assert [e.step for e in ea.Scalars("step/loss")] == [10, 20, 30]
    assert ea.Scalars("test/accuracy")[0].value == 0.75 and "test/samples" not in ea.Tags()["scalars"]
    assert {"epoch/lr", "epoch/elapsed_s", "val/accuracy", "train/loss"} <= set(ea.Tags()["scalars"])


def test_report_redraws_plots_from_the_run_directory_alone(tmp_path):
    run = api.train({"name": "lin", "data": {"source": "synthetic:linear", "batch_size": 64},
                     "model": {"name": "linear"}, "optim": {"name": "sgd", "lr": 0.1}, "schedule": {"name": "cosine"},
                     "train": {"epochs": 2},
                     "output": {"plots": False, "report": False, "tensorboard": False}},
                    run_dir=tmp_path / "run", progress=False)
    assert not (run.path / "plots").exists()
    page = write_report(run.path).read_text()
    imgs = re.findall(r"<img alt='([^']*)' src='data:image/png;base64,", page)
    assert imgs == ["loss and metric per epoch (train vs val)", "learning rate over optimizer steps",
                    "predicted vs true (test)"]
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "finished" in page and "synthetic:linear" in page and "r2" in page


def test_report_embeds_the_pngs_the_run_wrote_byte_for_byte_and_draws_nothing(tmp_path, monkeypatch):
    import base64

    from trainlab.track import report

    run = api.train({"name": "blobs", "data": {"source": "synthetic:classification", "n": 300, "batch_size": 32},
                     "model": {"name": "mlp", "widths": [8]}, "optim": {"name": "sgd", "lr": 0.1},
                     "train": {"epochs": 2}, "output": {"report": False, "tensorboard": False}},
                    run_dir=tmp_path / "run", progress=False)
    pngs = {p.name: p.read_bytes() for p in (run.path / "plots").glob("*.png")}
    assert {"curves.png", "lr.png", "test_confusion_matrix.png", "test_roc.png", "test_pr.png"} <= set(pngs)

    def no_drawing(*a, **k):
        raise AssertionError("the report redrew a plot the run directory has")

    for name in ("curves_figure", "lr_figure", "eval_figures", "prediction_figure", "png_bytes"):
        monkeypatch.setattr(report, name, no_drawing)
    page = write_report(run.path).read_text()
    embedded = [base64.b64decode(u) for u in re.findall(r"src='data:image/png;base64,([^']*)'", page)]
    assert sorted(embedded) == sorted(pngs.values())  # each PNG once, the very bytes of plots/


def test_report_draws_a_missing_evaluation_plot_from_the_json(tmp_path):
    run = api.train({"name": "blobs", "data": {"source": "synthetic:classification", "n": 300, "batch_size": 32},
                     "model": {"name": "mlp", "widths": [8]}, "optim": {"name": "sgd", "lr": 0.1},
                     "train": {"epochs": 1}, "output": {"report": False, "tensorboard": False}},
                    run_dir=tmp_path / "run", progress=False)
    (run.path / "plots" / "test_roc.png").unlink()
    page = write_report(run.path).read_text()
    assert re.search(r"<img alt='roc \(test\)' src='data:image/png;base64,", page)
    assert not (run.path / "plots" / "test_roc.png").exists()  # the report reads the run directory, never writes it
