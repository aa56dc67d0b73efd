"""compress.distill: the loss against torch's kl_div, the cached teacher logits against a fresh
teacher forward on each training batch, a distilled run that loads and evaluates like any run, and
bad input as one-line RecipeErrors with nothing written."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import trainlab
from trainlab.api import evaluate, load_run
from trainlab.build import build_parts
from trainlab.compress.distill import (DistillLoss, TeacherLoader, distill_loss_terms, distill_run,
                                       student_recipe_dict, teacher_logits)
from trainlab.errors import RecipeError
from trainlab.recipe import load_recipe, read_yaml

DATA = {"source": "fashion_mnist", "subset": 600, "val_fraction": 0.1,
        "preprocess": [{"normalize": "standard"}], "batch_size": 128}
OUTPUT = {"plots": False, "report": False}


def _student(**data):
    return {"name": "student", "seed": 1, "data": {**DATA, **data}, "model": {"name": "mlp", "widths": [16]},
            "optim": {"name": "adamw", "lr": 3e-3}, "train": {"epochs": 1}, "output": OUTPUT}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    recipe = {"name": "teacher", "seed": 0, "data": DATA, "model": {"name": "mlp", "widths": [64]},
              "optim": {"name": "adamw", "lr": 3e-3}, "train": {"epochs": 1},
              "output": {"root": str(tmp_path_factory.mktemp("teacher")), **OUTPUT}}
    return trainlab.train(recipe, progress=False)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_soft_term_equals_torch_kl_div(temperature):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(32, 10, generator=g) * 3, torch.randn(32, 10, generator=g) * 3
    want = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1), log_target=True,
                    reduction="batchmean") * temperature ** 2
    assert distill_loss_terms(s, t, temperature).item() == pytest.approx(want.item(), rel=1e-5)
    assert distill_loss_terms(t, t, temperature).item() == pytest.approx(0.0, abs=1e-6)

    y = torch.randint(0, 10, (32,), generator=g)
    loss = DistillLoss(torch.nn.CrossEntropyLoss(), alpha=0.3, temperature=temperature)
    assert loss(s, y).item() == pytest.approx(F.cross_entropy(s, y).item())  # no teacher batch: hard loss only
    loss.teacher = t
    assert loss(s, y).item() == pytest.approx((0.7 * F.cross_entropy(s, y) + 0.3 * want).item(), rel=1e-5)


def test_cached_teacher_logits_equal_a_fresh_forward_per_batch(teacher):
    loaded = load_run(teacher.path, device="cpu")
    # the same data, seed and preprocessing as the teacher (the same split, the same fitted
    # statistics): the teacher's model reads the student's batches as they are
    recipe = load_recipe(student_recipe_dict(loaded, {**_student(), "seed": 0}, 0.5, 4.0))
    logits, _ = teacher_logits(loaded, recipe)
    parts = build_parts(recipe)
    assert logits.shape == (len(parts.bundle.train), 10)
    loss = DistillLoss(parts.loss_fn, 0.5, 4.0)
    loader = TeacherLoader(parts.loader, logits, loss)
    loader.load_state_dict({"epoch": 1, "position": 1, "seed": parts.loader.seed})  # mid-epoch, as a resume
    batches = 0
    with torch.no_grad():
        for xb, _ in loader:
            assert torch.allclose(loss.teacher, loaded.model(xb), atol=1e-5)
            batches += 1
    assert batches == len(loader) - 1 and loss.teacher is None  # cleared once the epoch is over


def test_distilled_run_loads_and_evaluates(teacher, tmp_path):
    run = distill_run(teacher.path, _student(), alpha=0.7, temperature=2.0, out=tmp_path / "student")
    compress = read_yaml(run.path / "recipe.yaml")["compress"]
    assert compress == {"method": "distill", "parent": str(teacher.path), "checkpoint": "best", "epoch": 1,
                        "alpha": 0.7, "temperature": 2.0}
    loaded = load_run(run.path)
    assert [m.out_features for m in loaded.model.modules() if isinstance(m, torch.nn.Linear)] == [16, 10]
    assert evaluate(run.path)["accuracy"] == pytest.approx(run.metrics["accuracy"])
    assert run.metrics["accuracy"] > 0.3  # learned something in one epoch on 540 images (chance: 0.1)
    trained = [r for r in run.history if "train.loss" in r]
    assert trained and all(r["train.loss"] > 0 for r in trained)


@pytest.mark.parametrize("change, says", [
    ({"alpha": 1.5}, "compress.alpha"),
    ({"temperature": 0.0}, "compress.temperature"),
    ({"student": _student(source="sklearn:digits")}, "data.source"),
    ({"student": _student(augment=[{"hflip": 0.5}])}, "data.augment"),
])
def test_bad_input_is_one_line_and_writes_nothing(teacher, change, says, tmp_path):
    kw = {"alpha": 0.5, "temperature": 4.0, "student_recipe": _student(), **change}
    student = kw.pop("student", kw.pop("student_recipe"))
    before = sorted(p.name for p in teacher.path.parent.iterdir())
    with pytest.raises(RecipeError) as e:
        distill_run(teacher.path, student, **kw)
    assert str(e.value).startswith(says) and "\n" not in str(e.value)
    assert sorted(p.name for p in teacher.path.parent.iterdir()) == before
