"""Knowledge distillation (`trainlab compress --method distill`): train a student recipe on a trained
teacher run's softened outputs (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
Network", 2015).

The student's loss is (1 - alpha) * hard-label loss (the student recipe's own `loss`) +
alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)). The training split is not augmented
(a student recipe with `data.augment` is refused), so the teacher runs over it once, before training,
under no_grad: its logits are cached by sample index, and the training loader hands the loss the
rows of each batch (`TeacherLoader`). Validation and test losses are the hard-label loss alone, so
`val.loss` stays comparable with an undistilled run's. The student run is a normal run directory
whose recipe is the student's with `compress: {method: distill, parent, alpha, temperature}`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..api import LoadedRun, Run, load_run, train
from ..errors import RecipeError
from ..recipe import Recipe, load_recipe, read_yaml
from ..events import Callback


def distill_loss_terms(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch (the T^2 keeps
    the soft term's gradients on the scale of the hard term's as T changes, Hinton et al. section 2)."""
    t = float(temperature)
    log_p = torch.log_softmax(teacher.float() / t, dim=-1)
    log_q = torch.log_softmax(student.float() / t, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * (t * t)


class DistillLoss(nn.Module):
    """(1 - alpha) * `hard`(out, y) + alpha * `distill_loss_terms`(out, teacher logits of the batch);
    `teacher` is set by `TeacherLoader` for each training batch and cleared at the epoch's end; without
    it (validation, test, the trainer's FLOP count) the loss is `hard` alone."""

    def __init__(self, hard: nn.Module, alpha: float, temperature: float):
        super().__init__()
        self.hard, self.alpha, self.temperature = hard, float(alpha), float(temperature)
        self.teacher: torch.Tensor | None = None

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        hard = self.hard(out, y)
        t = self.teacher
        if t is None or t.shape != out.shape:
            return hard
        return (1.0 - self.alpha) * hard + self.alpha * distill_loss_terms(out, t.to(out.device), self.temperature)


class TeacherLoader:
    """The trainer's loader, unchanged in what it yields and in its state, that also sets
    `loss.teacher` to the cached teacher logits of each batch's samples (the loader's own
    permutation of the epoch, so a resumed epoch lines up too)."""

    def __init__(self, base: Any, logits: torch.Tensor, loss: DistillLoss):
        self.base, self.logits, self.loss = base, logits, loss

    def __getattr__(self, name: str) -> Any:  # epoch, position, batch_size, state_dict, ...
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self):
        chunks = self.base.permutation(self.base.epoch).split(self.base.batch_size)
        try:
            for xb, yb in self.base:
                # the base loader counts the batch it yields in `position` before yielding it
                self.loss.teacher = self.logits.index_select(0, chunks[self.base.position - 1].cpu())
                yield xb, yb
        finally:
            self.loss.teacher = None


class _Distill(Callback):
    """Puts the cached teacher logits into the trainer's loss and loader when fitting starts."""

    def __init__(self, logits: torch.Tensor, alpha: float, temperature: float):
        self.logits, self.alpha, self.temperature = logits, alpha, temperature

    def on_fit_start(self, trainer) -> None:
        if not isinstance(trainer.loss_fn, DistillLoss):
            trainer.loss_fn = DistillLoss(trainer.loss_fn, self.alpha, self.temperature)
            trainer.loader = TeacherLoader(trainer.loader, self.logits, trainer.loss_fn)


def student_recipe_dict(teacher: LoadedRun, student: str | Path | dict, alpha: float, temperature: float) -> dict:
    """The student's recipe (a file or a dict) with `compress: {method: distill, parent, checkpoint,
    epoch, alpha, temperature}`, named `<student>-distill`, written beside the teacher unless it
    names its own output.root."""
    raw = copy.deepcopy(read_yaml(student) if isinstance(student, (str, Path)) else dict(student))
    raw["name"] = f"{raw.get('name', 'student')}-distill"
    raw.setdefault("output", {}).setdefault("root", str(Path(teacher.path).parent))
    raw["compress"] = {"method": "distill", "parent": str(teacher.path), "checkpoint": teacher.checkpoint,
                       "epoch": teacher.epoch, "alpha": float(alpha), "temperature": float(temperature)}
    return raw


def check_student(teacher: LoadedRun, recipe: Recipe, alpha: float, temperature: float) -> None:
    """RecipeError naming the option for what distillation cannot take."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise RecipeError(f"compress.alpha: expected a share of the loss in [0, 1], got {alpha}")
    if not float(temperature) > 0.0:
        raise RecipeError(f"compress.temperature: expected a temperature > 0, got {temperature}")
    if teacher.info.task != "classification":
        raise RecipeError(f"compress.parent: {teacher.path} is a {teacher.info.task} run; "
                          "distillation needs a classification teacher")
    if recipe.data.source != teacher.recipe.data.source:
        raise RecipeError(f"data.source: the student reads {recipe.data.source!r} and the teacher "
                          f"{teacher.path} was trained on {teacher.recipe.data.source!r}; distill on the teacher's data")
    if recipe.data.augment:
        raise RecipeError("data.augment: the teacher's logits are cached for the unaugmented training split; "
                          "give a student recipe without augmentation")


def teacher_logits(teacher: LoadedRun, recipe: Recipe) -> tuple[torch.Tensor, Any]:
    """The teacher's logits for every sample of the student's training split, in the split's order
    (the split rebuilt without the student's preprocessing, then put through the teacher's), and
    the student's data info. RecipeError when the student's data is not the teacher's (classes, shape)."""
    from ..build import seed_everything
    from ..data import build_data

    seed_everything(recipe.seed)
    bundle = build_data(recipe.data.model_copy(update={"preprocess": []}), recipe.seed)
    info = bundle.info
    for what, mine, theirs in (("classes", info.num_classes, teacher.info.num_classes),
                               ("input shape", tuple(info.input_shape), tuple(teacher.info.input_shape))):
        if mine != theirs:
            raise RecipeError(f"data: the student's data has {what} {mine} and the teacher's {theirs} "
                              f"({teacher.path}); distill on the teacher's data")
    return teacher.predict(bundle.train.x), info


def distill_run(teacher_run_dir: str | Path, student_recipe: str | Path | dict, alpha: float = 0.5,
                temperature: float = 4.0, out: str | Path | None = None, seeds: list[int] | None = None,
                checkpoint: str = "best", progress: bool = False) -> Run | list[Run]:
    """Train `student_recipe` distilled from the teacher run's `checkpoint` into a new run directory
    (`out`, default beside the teacher); returns its Run. `seeds`: one student per seed (the
    recipe's `seed` replaced), returned as a list of Runs (`out` then must be None).

    Raises RecipeError for an alpha outside [0, 1], a temperature <= 0, a non-classification
    teacher, or a student on other data (source, classes, input shape) or with augmentation;
    RunDirError for a teacher without that checkpoint. Nothing is written before these checks."""
    teacher = load_run(teacher_run_dir, checkpoint, device="cpu")
    if seeds is not None:
        if out is not None:
            raise RecipeError("compress.out: one output directory cannot hold one student per seed; leave it unset")
        return [distill_run(teacher_run_dir, {**(read_yaml(student_recipe) if isinstance(student_recipe, (str, Path))
                                                 else student_recipe), "seed": int(s)},
                            alpha, temperature, None, None, checkpoint, progress) for s in seeds]
    raw = student_recipe_dict(teacher, student_recipe, alpha, temperature)
    recipe = load_recipe(raw)
    check_student(teacher, recipe, alpha, temperature)
    logits, _ = teacher_logits(teacher, recipe)
    return train(raw, run_dir=out, progress=progress, callbacks=[_Distill(logits, alpha, temperature)])


def method(parent, options: dict, run_dir=None, progress: bool = True) -> Run:
    """`trainlab compress TEACHER --method distill --student RECIPE [--alpha A] [--temperature T]`
    (compress.METHODS): the student trained under its own recipe, distilled from the teacher run."""
    if not options.get("student"):
        raise RecipeError("--student: give the student's recipe (a YAML file) for --method distill")
    return distill_run(parent.path, options["student"], float(options.get("alpha", 0.5)),
                       float(options.get("temperature", 4.0)), run_dir, None, parent.checkpoint, progress)
