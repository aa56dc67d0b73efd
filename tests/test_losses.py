"""The loss catalogue: every loss against torch's functional reference on a fixed batch, every loss
training a small set with its loss going down, class weights and the balanced sampler moving the
decision toward a minority class, one-logit binary models end to end, and multi-label data (its
metrics against scikit-learn's, CSV and JSONL sets trained through the CLI)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainlab.api import load_run, train
from trainlab.cli import main
from trainlab.data import DataInfo, Split, build_data, build_loader
from trainlab.data.loader import StreamingLoader, TensorLoader, balanced_weights
from trainlab.errors import DataError, RecipeError
from trainlab.losses import LOSSES, build_loss, class_weight_tensor
from trainlab.metrics import evaluate_outputs
from trainlab.recipe import load_recipe
from trainlab.recipe.schema import LossConfig


def _info(task="classification", classes=3, counts=None, n=None, output_dim=None) -> DataInfo:
    counts = counts or [10] * classes
    return DataInfo(task=task, input_shape=(2,), num_classes=classes,
                    output_dim=output_dim or classes, kind="vector", class_counts={"train": counts},
                    sizes={"train": n or sum(counts)})


def _loss(name: str, info: DataInfo, **options):
    return build_loss(LossConfig(name=name, **options), info)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 3, generator=g) * 2, torch.randint(0, 3, (16,), generator=g), g


# --- reference values on a fixed batch ------------------------------------------------------------
def test_bce_one_logit_multilabel_and_pos_weight_match_torch(batch):
    _, _, g = batch
    out1, y1 = torch.randn(16, 1, generator=g), torch.randint(0, 2, (16,), generator=g)
    ref = F.binary_cross_entropy_with_logits(out1, y1.float().unsqueeze(1))
    assert torch.allclose(_loss("bce", _info(classes=2, output_dim=1))(out1, y1), ref)
    outm, ym = torch.randn(16, 4, generator=g), torch.randint(0, 2, (16, 4), generator=g).float()
    info = _info("multilabel", 4)
    assert torch.allclose(_loss("bce", info)(outm, ym), F.binary_cross_entropy_with_logits(outm, ym))
    pw = [1.0, 2.0, 3.0, 0.5]
    assert torch.allclose(_loss("bce", info, pos_weight=pw)(outm, ym),
                          F.binary_cross_entropy_with_logits(outm, ym, pos_weight=torch.tensor(pw)))
    # [negatives, positives] weights are an element weight w0·(1 − y) + w1·y
    w = 0.3 * (1 - y1.float()) + 2.0 * y1.float()
    assert torch.allclose(_loss("bce", _info(classes=2, output_dim=1), class_weights=[0.3, 2.0])(out1, y1),
                          F.binary_cross_entropy_with_logits(out1, y1.float().unsqueeze(1), weight=w.unsqueeze(1)))


def test_kl_div_matches_torch_with_temperature_and_is_cross_entropy_on_hard_labels(batch):
    out, y, g = batch
    soft = torch.softmax(torch.randn(16, 3, generator=g), dim=1)
    t = 3.0
    ref = F.kl_div(F.log_softmax(out / t, dim=1), soft, reduction="batchmean") * t * t
    assert torch.allclose(_loss("kl_div", _info(), temperature=t)(out, soft), ref)
    assert torch.allclose(_loss("kl_div", _info())(out, y), F.cross_entropy(out, y))
    smooth = F.one_hot(y, 3).float() * 0.9 + 0.1 / 3
    assert torch.allclose(_loss("kl_div", _info(), label_smoothing=0.1)(out, y),
                          F.kl_div(F.log_softmax(out, dim=1), smooth, reduction="batchmean"))


@pytest.mark.parametrize("name, fn, option", [("huber", F.huber_loss, "delta"), ("smooth_l1", F.smooth_l1_loss, "beta")])
def test_regression_losses_match_torch(name, fn, option):
    g = torch.Generator().manual_seed(1)
    out, y = torch.randn(32, 1, generator=g) * 3, torch.randn(32, 1, generator=g)
    info = DataInfo(task="regression", input_shape=(1,), num_classes=None, output_dim=1, kind="vector")
    for v in (0.5, 2.0):
        assert torch.allclose(_loss(name, info, **{option: v})(out, y.squeeze(1)), fn(out, y, **{option: v}))


def test_focal_matches_the_formulas_and_is_weighted_cross_entropy_at_gamma_0(batch):
    out, y, g = batch
    # sigmoid form (one logit, multi-label): by hand from binary_cross_entropy_with_logits
    outm, ym = torch.randn(16, 4, generator=g) * 2, torch.randint(0, 2, (16, 4), generator=g).float()
    ce = F.binary_cross_entropy_with_logits(outm, ym, reduction="none")
    p = torch.sigmoid(outm)
    p_t = p * ym + (1 - p) * (1 - ym)
    a_t = 0.25 * ym + 0.75 * (1 - ym)
    ref = (a_t * (1 - p_t) ** 2 * ce).mean()
    assert torch.allclose(_loss("focal", _info("multilabel", 4), gamma=2.0, alpha=0.25)(outm, ym), ref)
    out1, y1 = outm[:, :1], ym[:, 0].long()
    assert torch.allclose(_loss("focal", _info(classes=2, output_dim=1), gamma=2.0, alpha=0.25)(out1, y1),
                          (a_t * (1 - p_t) ** 2 * ce)[:, :1].mean())
    # softmax form
    logp = F.log_softmax(out, dim=1).gather(1, y[:, None]).squeeze(1)
    ref = (-(1 - logp.exp()) ** 1.5 * logp).mean()
    assert torch.allclose(_loss("focal", _info(), gamma=1.5)(out, y), ref)
    w = [0.5, 1.0, 3.0]
    assert torch.allclose(_loss("focal", _info(), gamma=0.0, class_weights=w)(out, y),
                          F.cross_entropy(out, y, weight=torch.tensor(w)))


def test_cross_entropy_class_weights_match_torch_and_balanced_matches_scikit_learn(batch):
    from sklearn.utils.class_weight import compute_class_weight

    out, y, _ = batch
    w = [0.2, 1.0, 5.0]
    assert torch.allclose(_loss("cross_entropy", _info(), class_weights=w)(out, y),
                          F.cross_entropy(out, y, weight=torch.tensor(w)))
    labels = [0] * 70 + [1] * 20 + [2] * 10
    balanced = class_weight_tensor("balanced", _info(counts=[70, 20, 10]))
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=np.array(labels))
    assert torch.allclose(balanced.double(), torch.tensor(expected))
    # multi-label: each label's negatives and positives, n / (2 · count)
    ml = class_weight_tensor("balanced", _info("multilabel", 2, counts=[25, 80], n=100))
    assert torch.allclose(ml, torch.tensor([[100 / 150, 100 / 40], [100 / 50, 100 / 160]]))


@pytest.mark.parametrize("name", ["cross_entropy", "focal", "bce"])
def test_class_weights_of_the_wrong_length_name_the_key_and_both_counts(name):
    classes = 2 if name == "bce" else 3
    with pytest.raises(RecipeError, match=rf"^loss.class_weights: expected {classes} weights \(one per class\), got 4$"):
        _loss(name, _info(classes=classes), class_weights=[1.0, 1.0, 1.0, 1.0])


def test_losses_that_do_not_fit_the_data_are_refused():
    with pytest.raises(RecipeError, match="^loss.name: bce scores one logit per label, but this data has 3 classes"):
        _loss("bce", _info(classes=3))
    with pytest.raises(RecipeError, match="^loss.name: 'huber' is a loss for regression, but the data is multilabel"):
        _loss("huber", _info("multilabel", 3))
    with pytest.raises(RecipeError, match=r"^loss.gamma: "):
        _loss("focal", _info(), gamma=-1)


# --- training ---------------------------------------------------------------------------------------
def _recipe(tmp_path, data: dict, loss: dict, epochs: int = 4, **sections) -> dict:
    raw = {"name": "loss", "seed": 0, "data": {"batch_size": 32, **data}, "model": {"name": "mlp", "widths": [16]},
           "loss": loss, "optim": {"name": "adamw", "lr": 0.01}, "train": {"epochs": epochs, "threads": 1},
           "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False, "trackers": []}}
    raw.update(sections)
    return raw


BLOBS3 = {"source": "synthetic:classification", "n": 300, "classes": 3, "spread": 2.0}
BLOBS2 = {"source": "synthetic:classification", "n": 300, "classes": 2, "spread": 2.0}
MULTI = {"source": "synthetic:multilabel", "n": 300}
LINEAR = {"source": "synthetic:linear", "n": 300}
TRAINS = [("cross_entropy", BLOBS3, {"class_weights": "balanced"}), ("bce", BLOBS2, {}),
          ("bce", MULTI, {"class_weights": "balanced"}), ("focal", BLOBS3, {}), ("focal", MULTI, {"alpha": 0.25}),
          ("kl_div", BLOBS3, {"label_smoothing": 0.1}), ("huber", LINEAR, {"delta": 0.5}), ("smooth_l1", LINEAR, {}),
          ("mse", LINEAR, {})]


def test_every_loss_is_trained_here():
    assert {name for name, _, _ in TRAINS} == set(LOSSES.names())


@pytest.mark.parametrize("name, data, options", TRAINS, ids=[f"{n}-{d['source'].split(':')[1]}" for n, d, _ in TRAINS])
def test_every_loss_trains_with_its_loss_going_down(tmp_path, name, data, options):
    run = train(_recipe(tmp_path, data, {"name": name, **options}), progress=False)
    losses = [h["train.loss"] for h in run.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.8 * losses[0], losses
    assert run.history[-1]["val.loss"] < run.history[0]["val.loss"]


def _minority_recall(tmp_path, **changes) -> float:
    data = {"source": "synthetic:classification", "n": 600, "classes": 2, "spread": 5.0, "proportions": [0.9, 0.1],
            **changes.pop("data", {})}
    run = train(_recipe(tmp_path, data, changes.pop("loss", {"name": "auto"}), epochs=6), progress=False)
    return run.metrics["per_class"][1]["recall"]


def test_class_weights_and_the_balanced_sampler_raise_the_minority_class_recall(tmp_path):
    plain = _minority_recall(tmp_path / "a")
    weighted = _minority_recall(tmp_path / "b", loss={"name": "cross_entropy", "class_weights": "balanced"})
    sampled = _minority_recall(tmp_path / "c", data={"sampler": "balanced"})
    one_logit = _minority_recall(tmp_path / "d", loss={"name": "bce", "class_weights": "balanced"})
    assert weighted > plain + 0.2 and sampled > plain + 0.2 and one_logit > plain + 0.2, (plain, weighted, sampled,
                                                                                         one_logit)


# --- the balanced sampler ---------------------------------------------------------------------------
def test_balanced_sampler_draws_classes_equally_the_same_on_both_loaders_and_by_seed():
    y = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    s = Split(torch.arange(1000).float().unsqueeze(1), y)
    w = balanced_weights(y)
    fast = TensorLoader(s, 100, seed=3, weights=w)
    drawn = torch.cat([yb for _, yb in fast])
    counts = torch.bincount(drawn, minlength=3)
    assert len(drawn) == 1000 and counts.min() > 250, counts  # ~333 each, not 900/90/10
    assert torch.equal(torch.cat([yb for _, yb in TensorLoader(s, 100, seed=3, weights=w)]), drawn)
    assert not torch.equal(torch.cat([yb for _, yb in fast]), drawn)  # epoch 1 draws again
    stream = StreamingLoader(s, 100, seed=3, weights=w, workers=0)  # torch's WeightedRandomSampler
    assert torch.equal(torch.cat([yb for _, yb in stream]), drawn)
    assert torch.equal(fast.permutation(0), stream.permutation(0))


def test_balanced_sampler_needs_class_indices():
    b = build_data(load_recipe({"data": MULTI}).data, 0)
    with pytest.raises(RecipeError, match="^data.sampler: balanced draws classes equally"):
        build_loader(b.train, load_recipe({"data": {**MULTI, "sampler": "balanced"}}).data, 0)
    with pytest.raises(RecipeError, match="data.sampler"):
        load_recipe({"data": {**MULTI, "sampler": "weighted"}})


# --- one logit for two classes ----------------------------------------------------------------------
def test_bce_on_two_classes_trains_one_logit_end_to_end(tmp_path):
    raw = _recipe(tmp_path, {**BLOBS2, "spread": 1.0}, {"name": "bce"}, epochs=5)
    raw["output"].update(plots=True, report=True)
    run = train(raw, progress=False)
    info = json.loads((run.dir.path / "data" / "info.json").read_text())
    assert info["output_dim"] == 1 and info["num_classes"] == 2
    loaded = load_run(run.dir.path)
    assert loaded.model(torch.zeros(3, 2)).shape == (3, 1)
    from safetensors.torch import load_file

    saved = load_file(str(run.dir.path / "eval" / "test_outputs.safetensors"))
    out, y = saved["outputs"], saved["targets"]
    pred = (torch.sigmoid(out[:, 0]) > 0.5).long()
    m = run.metrics
    assert out.shape[1] == 1 and m["accuracy"] == pytest.approx(float((pred == y).float().mean()), abs=1e-6)
    from sklearn.metrics import confusion_matrix, roc_auc_score

    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert m["auroc"] == pytest.approx(roc_auc_score(y, out[:, 0]), abs=1e-9) and m["accuracy"] > 0.85
    assert [c["class"] for c in m["roc"]] == ["1"] and run.history[-1]["train.accuracy"] > 0.8
    for png in ("test_roc.png", "test_pr.png", "test_confusion_matrix.png"):
        assert (run.dir.path / "plots" / png).stat().st_size > 1000
    from trainlab.api import evaluate

    again = evaluate(run.dir.path)  # rebuilt from the run directory: the same one-logit model and numbers
    assert again["accuracy"] == m["accuracy"] and again["confusion_matrix"] == m["confusion_matrix"]


# --- multi-label ------------------------------------------------------------------------------------
def test_multilabel_metrics_equal_scikit_learn():
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score, hamming_loss

    g = torch.Generator().manual_seed(4)
    y = torch.randint(0, 2, (80, 5), generator=g).float()
    out = 2 * (y - 0.5) + 1.5 * torch.randn(80, 5, generator=g)
    names = list("abcde")
    m = evaluate_outputs(out, y, "multilabel", torch.nn.BCEWithLogitsLoss(), 5, names)
    pred, prob = (out > 0).long().numpy(), torch.sigmoid(out.double()).numpy()
    yt = y.long().numpy()
    per = m["per_label"]
    assert [r["label"] for r in per] == names and [r["support"] for r in per] == yt.sum(0).tolist()
    assert [r["f1"] for r in per] == pytest.approx(f1_score(yt, pred, average=None).tolist(), abs=1e-6)
    assert [r["average_precision"] for r in per] == pytest.approx(
        average_precision_score(yt, prob, average=None).tolist(), abs=1e-9)
    assert m["f1_macro"] == pytest.approx(f1_score(yt, pred, average="macro"), abs=1e-6)
    assert m["f1_micro"] == pytest.approx(f1_score(yt, pred, average="micro"), abs=1e-6)
    assert m["map"] == pytest.approx(average_precision_score(yt, prob, average="macro"), abs=1e-9)
    assert m["subset_accuracy"] == pytest.approx(accuracy_score(yt, pred), abs=1e-6)
    assert m["hamming"] == pytest.approx(hamming_loss(yt, pred), abs=1e-6)
    assert m["loss"] == pytest.approx(float(F.binary_cross_entropy_with_logits(out, y)), abs=1e-6)


def test_multilabel_monitors_are_checked(tmp_path):
    ok = _recipe(tmp_path, MULTI, {"name": "auto"}, epochs=2,
                 early_stopping={"monitor": "val.map", "mode": "max", "patience": 5})
    run = train(ok, progress=False)
    assert "val.map" in run.history[-1] and "val.f1_macro" in run.history[-1] and "train.accuracy" not in \
        run.history[-1]
    bad = _recipe(tmp_path, MULTI, {"name": "auto"}, epochs=1, early_stopping={"monitor": "val.accuracy"})
    with pytest.raises(RecipeError, match="^early_stopping.monitor: 'val.accuracy' is a classification metric "
                                          "but this data is multilabel"):
        train(bad, progress=False)


def _write_rows(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")


def _ml_rows(n=160, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    a, b = (x[:, 0] > 0).long(), (x[:, 1] + x[:, 2] > 0.3).long()
    return x, a, b


@pytest.mark.parametrize("form", ["columns", "delimited"])
def test_multilabel_csv_trains_through_the_cli_and_writes_the_per_label_table(tmp_path, write_recipe, form):
    x, a, b = _ml_rows()
    path = tmp_path / "t.csv"
    if form == "columns":
        _write_rows(path, ["f1", "f2", "f3", "cat", "dog"],
                    [[f"{v:.4f}" for v in x[i].tolist()] + [int(a[i]), int(b[i])] for i in range(len(x))])
        data = {"source": "csv", "path": str(path), "target": ["cat", "dog"]}
    else:
        tags = ["|".join(t for t, on in (("cat", a[i]), ("dog", b[i])) if on) for i in range(len(x))]
        _write_rows(path, ["f1", "f2", "f3", "tags"], [[f"{v:.4f}" for v in x[i].tolist()] + [tags[i]]
                                                       for i in range(len(x))])
        data = {"source": "csv", "path": str(path), "target": "tags", "label_delimiter": "|"}
    recipe = write_recipe({"data": {**data, "batch_size": 16}, "model": {"name": "mlp", "widths": [16]},
                           "optim": {"name": "adamw", "lr": 0.02}, "train": {"epochs": 8, "threads": 1},
                           "output": {"root": str(tmp_path / "runs"), "trackers": []}})
    assert main(["train", str(recipe)]) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    m = json.loads((run_dir / "eval" / "test.json").read_text())
    assert m["task"] == "multilabel" and [r["label"] for r in m["per_label"]] == ["cat", "dog"]
    assert m["f1_macro"] > 0.7 and m["map"] > 0.8, m
    html = (run_dir / "report.html").read_text()
    assert "Per label (test split)" in html and "<td>dog</td>" in html.replace(" ", "")


def test_multilabel_jsonl_text_trains_through_the_cli(tmp_path, write_recipe, capsys):
    words = {"cat": ["meow", "purr", "whiskers"], "dog": ["bark", "woof", "fetch"]}
    g = torch.Generator().manual_seed(0)
    lines = []
    for i in range(160):
        on = [lab for lab in words if torch.rand(1, generator=g) < 0.5]
        toks = [words[lab][int(torch.randint(0, 3, (1,), generator=g))] for lab in on for _ in range(2)] + ["the", "a"]
        lines.append(json.dumps({"text": " ".join(toks), "labels": on}))
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    recipe = write_recipe({"data": {"source": "text_jsonl", "path": str(path), "label": "labels", "max_len": 8,
                                    "batch_size": 16},
                           "model": {"name": "rnn", "cell": "gru", "embed_dim": 16, "hidden": 16, "pool": "max"},
                           "optim": {"name": "adamw", "lr": 0.02},
                           "train": {"epochs": 6, "threads": 1}, "output": {"root": str(tmp_path / "runs"),
                                                                             "trackers": [], "plots": False}})
    assert main(["train", str(recipe)]) == 0
    run_dir = next((tmp_path / "runs").iterdir())
    m = json.loads((run_dir / "eval" / "test.json").read_text())
    assert m["task"] == "multilabel" and [r["label"] for r in m["per_label"]] == ["cat", "dog"]
    assert m["map"] > 0.9, m
    assert main(["evaluate", str(run_dir)]) == 0 and "per label" in capsys.readouterr().out


def test_multilabel_csv_errors_name_the_column(tmp_path):
    path = tmp_path / "bad.csv"
    _write_rows(path, ["f", "a", "b"], [[0.1, 0, 1], [0.2, 2, 0], [0.3, 1, 1]])
    with pytest.raises(DataError, match=rf"^{path}:3: target column 'a' holds 2; a multi-label target column holds 0/1"):
        build_data(load_recipe({"data": {"source": "csv", "path": str(path), "target": ["a", "b"]}}).data, 0)
    with pytest.raises(RecipeError, match="^data.task: multilabel needs data.target as a list"):
        build_data(load_recipe({"data": {"source": "csv", "path": str(path), "target": "a",
                                         "task": "multilabel"}}).data, 0)


def test_multilabel_text_csv_and_tabular_delimited_labels(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,tags\nmeow purr,cat\nwoof,dog\nmeow woof,dog|cat\nthe end,\nbark,dog\npurr,cat\n")
    cfg = {"source": "text_csv", "path": str(path), "label": "tags", "label_delimiter": "|", "val_fraction": 0.0,
           "test_fraction": 0.0}
    b = build_data(load_recipe({"data": cfg}).data, 0)
    assert b.info.task == "multilabel" and b.info.class_names == ["cat", "dog"] and b.info.output_dim == 2
    assert b.train.y.tolist() == [[1, 0], [0, 1], [1, 1], [0, 0], [0, 1], [1, 0]]  # an empty cell: no label
    assert b.info.class_counts["train"] == [3, 3]
    table = tmp_path / "f.csv"
    table.write_text("x,tags\n1,cat\n2,\n3,cat|dog\n4,dog\n")
    b = build_data(load_recipe({"data": {"source": "csv", "path": str(table), "target": "tags",
                                         "label_delimiter": "|", "val_fraction": 0.0, "test_fraction": 0.0}}).data, 0)
    assert b.train.y.tolist() == [[1, 0], [0, 0], [1, 1], [0, 1]] and b.info.class_names == ["cat", "dog"]
