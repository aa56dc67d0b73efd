"""The Python API, used by the CLI too: `train(recipe) -> Run`, `resume(run_dir)`,
`load_run(run_dir) -> LoadedRun` (a trained model without its data) and `evaluate(run_dir)`."""
from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .build import build_model_for, resolve_device, scheduled_lrs, set_threads
from .data import DataBundle, DataInfo, require_test_split
from .errors import DataError, RunDirError
from .recipe import Recipe, load_recipe, read_yaml
from .track.rundir import RunDir, process_identity


@dataclass
class Run:
    """What `train()` returns: the run directory, the final test metrics and the epoch history."""

    dir: RunDir
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = ""

    @property
    def path(self) -> Path:
        return self.dir.path


def train(recipe: str | Path | dict | Recipe, overrides: list[str] | None = None,
          run_dir: str | Path | None = None, progress: bool = True, callbacks: list | None = None,
          model: torch.nn.Module | None = None) -> Run:
    """Train a recipe end to end; writes a run directory. Raises TrainlabError on bad input.

    `callbacks`: extra `trainlab.train.callbacks.Callback` objects for the Trainer. `model`: train
    this module, with its weights as they are, instead of the recipe's freshly initialized model
    (fine-tuning a pruned model: `trainlab compress`); `load_run` of the run rebuilds it from the
    recipe, so the recipe must describe its shape.
    """
    from .build import build_parts
    from .train import Trainer

    recipe = load_recipe(recipe, overrides)
    # build everything before the run directory exists: bad input leaves nothing behind
    parts = build_parts(recipe, model=model) if model is not None else None
    trainer = Trainer(recipe, progress=progress, callbacks=callbacks, parts=parts)
    require_test_split(trainer.bundle, recipe.data)  # the run ends with its test metrics
    with RunDir.create(recipe.output.root, recipe.name, run_dir) as rd:  # created and locked: ours alone
        trainer.run_dir = rd
        try:
            _start_run(trainer, rd)
        except KeyboardInterrupt:
            _mark(rd, status="interrupted", reason="KeyboardInterrupt", step=0)
            raise
        except BaseException as e:  # e.g. a full disk: the run is marked failed, as far as the disk allows
            _mark(rd, status="failed", error=f"{type(e).__name__}: {e}", step=0)
            raise
        return _fit_and_finish(trainer, rd)


def record(recipe: str | Path | dict | Recipe, model: torch.nn.Module, run_dir: str | Path | None = None,
           progress: bool = False) -> Run:
    """A run directory for `model` as it is, without training it (a quantized or pruned copy of a
    trained run's model, `trainlab compress`): the recipe, the data state, `model`'s weights as
    checkpoints/last and best (epoch 0), its evaluation on the test split, plots and report, env.json
    `finished`. `evaluate`, `report`, `summary` and `load_run` take it like any run; `load_run`
    rebuilds the model from the recipe, so the recipe must describe it."""
    from .build import build_parts
    from .train import Trainer

    recipe = load_recipe(recipe)
    trainer = Trainer(recipe, progress=progress, parts=build_parts(recipe, model=model))
    require_test_split(trainer.bundle, recipe.data)
    with RunDir.create(recipe.output.root, recipe.name, run_dir) as rd:
        trainer.run_dir = rd
        try:
            _start_run(trainer, rd)
            trainer._save(best=True)
            trainer.checkpoints_on_disk()
            metrics = evaluate_trainer(trainer, "test", "best")
            _write_run_plots(trainer, metrics)
        except BaseException as e:
            _mark(rd, status="failed", error=f"{type(e).__name__}: {e}", step=0)
            raise
        rd.update_env(status="finished", end=_now(), stop_reason="recorded without training", epochs_run=0)
        if recipe.output.report:
            from .track.report import write_report

            write_report(rd.path)
        return Run(rd, metrics, [], "recorded without training")


def _start_run(trainer, rd: RunDir) -> None:
    """What a new run directory holds before the first step: recipe, env.json, data state, vocabulary."""
    from .data import save_data_state

    recipe = trainer.recipe
    rd.write_recipe(recipe)
    rd.write_env(device=str(trainer.device), seed=recipe.seed, threads=torch.get_num_threads(),
                 extra={"status": "running", "data": trainer.bundle.info.to_dict(),
                        "determinism": trainer.determinism})
    save_data_state(rd, trainer.bundle)  # split sizes and indices, fitted preprocessing
    for note in trainer.bundle.info.notes:  # rows dropped, cells imputed: said once, never silent
        print(f"trainlab: data: {note}", file=sys.stderr, flush=True)
    if "vocab" in trainer.bundle.info.extra:  # text: evaluation must map tokens to the same ids
        rd.write_json("data/vocab.json", trainer.bundle.info.extra["vocab"])


def resume(run_dir: str | Path, progress: bool = True, callbacks: list | None = None,
           trust_code: bool = False) -> Run:
    """Continue a stopped, interrupted or crashed run from its newest complete checkpoint, with its own recipe.

    Restores weights, optimizer, schedule, early stopping, every RNG and the loader's position in
    the epoch, so on the CPU the run ends bitwise as it would have uninterrupted. Damaged
    checkpoints are skipped with a warning. Raises RunDirError for a missing or finished run, and
    for a run whose model is user code (`model: custom`) unless `trust_code` (see `require_trust`).
    """
    from .train import Trainer
    from .train.recovery import resume_latest

    with RunDir.open(run_dir).lock() as rd:  # a run another process writes is refused here
        env = rd.read_json("env.json") if (rd.path / "env.json").is_file() else {}
        if env.get("status") == "finished":
            raise RunDirError(f"{rd.path}: the run already finished; nothing to resume")
        _refuse_live_writer(rd, env)
        recipe = load_recipe(rd.recipe_path)
        require_trust(rd.path, recipe, trust_code)
        trainer = Trainer(recipe, run_dir=rd, progress=progress, callbacks=callbacks)
        used = resume_latest(trainer)
        rd.update_env(status="running", resumes=[*env.get("resumes", []), {**used, "time": _now()}],
                      **process_identity())
        return _fit_and_finish(trainer, rd)


def _refuse_live_writer(rd: RunDir, env: dict[str, Any]) -> None:
    """env.json says running and names a process alive on this host (one that took no lock, e.g. a
    trainlab from before locks): that process still writes the run."""
    import os
    import platform

    from .track.runs import process_gone

    pid = env.get("pid")
    if env.get("status") == "running" and env.get("host") == platform.node() and isinstance(pid, int) \
            and pid != os.getpid() and not process_gone(env):
        raise RunDirError(f"{rd.path}: in use by pid {pid} on {env['host']} since {env.get('start', '?')} "
                          "(env.json says running and that process is alive; wait for it to end, or stop it)")


def _fit_and_finish(trainer, rd: RunDir) -> Run:
    """Fit, evaluate the best (else last) weights on test, plot; env.json says how the run ended."""
    from .train.signals import TrainingInterrupted

    recipe = trainer.recipe
    try:
        trainer.fit()
        # `auto` resolved, and the threads of a small step (on a CPU: both by the measured step)
        rd.update_env(precision=trainer.precision, threads=torch.get_num_threads())
        which = "best" if rd.checkpoint("best").exists() and trainer.restore_best else "last"
        trainer.load_weights(which)
        metrics = evaluate_trainer(trainer, "test", which)
        _write_run_plots(trainer, metrics)
    except TrainingInterrupted as e:
        e.run_dir = rd.path
        _mark(rd, status="interrupted", reason=str(e), signal=e.name, step=e.step)
        raise
    except KeyboardInterrupt:
        _mark(rd, status="interrupted", reason="KeyboardInterrupt", step=trainer.step)
        raise
    except BaseException as e:
        _mark(rd, status="failed", error=f"{type(e).__name__}: {e}", step=trainer.step)
        raise
    rd.update_env(status="finished", end=_now(), stop_reason=trainer.stop_reason, epochs_run=trainer.epoch,
                  best=trainer.best_summary())
    if recipe.output.report:
        from .track.report import write_report

        write_report(rd.path, schedule=lambda records: scheduled_lrs(recipe, records))
    return Run(rd, metrics, trainer.history, trainer.stop_reason)


def _write_run_plots(trainer, test_metrics: dict[str, Any]) -> None:
    """Curves and LR plots from metrics.jsonl; the final test metrics into TensorBoard."""
    rd, recipe = trainer.run_dir, trainer.recipe
    if recipe.output.plots:
        from .track.plots import lr_figure, plot_curves, save_png  # matplotlib: only at the end of a run

        plot_curves(rd.metrics(), rd.plot("curves.png"), title=recipe.name)
        records = rd.metrics()
        save_png(lr_figure(records, scheduled_lrs(recipe, records)), rd.plot("lr.png"))
    if "tensorboard" in recipe.output.trackers:
        from .track.tensorboard import log_split_metrics

        log_split_metrics(rd.path, "test", test_metrics, trainer.epoch)


def _mark(rd: RunDir, **fields: Any) -> None:
    """Record how the run ended; failing to (disk full) must not hide the error that ended it."""
    try:
        rd.update_env(end=_now(), **fields)
    except (OSError, ValueError):
        pass


def evaluate_trainer(trainer, split: str, checkpoint: str) -> dict[str, Any]:
    """The full metric set of the trainer's current weights on `split`, written to eval/<split>.json
    (with the raw outputs and plots; see track/evaluation.py). The end of training and `evaluate()`
    both come through `write_evaluation`, so they report the same numbers (and the checkpoint's epoch)."""
    from .track.evaluation import write_evaluation

    return write_evaluation(trainer.run_dir, trainer.recipe, trainer.bundle, trainer.model, trainer.loss_fn,
                            trainer.device, trainer.channels_last, split, checkpoint,
                            _checkpoint_epoch(trainer.run_dir, checkpoint))


@dataclass
class LoadedRun:
    """A trained model from its run directory, with everything needed to use it on new inputs."""

    path: Path
    recipe: Recipe
    info: DataInfo               # task, input shape, classes, vocabulary size, columns, statistics
    model: torch.nn.Module       # in eval mode, on `device`
    device: torch.device
    checkpoint: str              # best or last
    epoch: int                   # the epoch the checkpoint was saved after (-1 if unknown)
    channels_last: bool = False
    preprocess: list = field(default_factory=list)  # data.preprocess as fitted on the training split
    vocab: dict[str, Any] | None = None             # text runs: level, lowercase, tokens or n-gram terms + idf
                                                    # (data/vocab.json)
    target_scaler: Any = None                       # regression trained on standardized targets: undone by predict

    @property
    def class_names(self) -> list[str] | None:
        return self.info.class_names

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Raw texts -> what a text run's model reads, from the run's data/vocab.json alone: token
        ids (unknown tokens <unk>, truncated and padded to the run's length) or, for `data.features:
        bow | tfidf`, the n-gram count / TF-IDF rows. Raises DataError for a run without text."""
        if self.vocab is None:
            raise DataError(f"{self.path}: not a text run (no data/vocab.json); give tensors, not texts")
        from .data.text import texts_to_inputs

        return texts_to_inputs(list(texts), self.vocab, int(self.info.input_shape[0]))

    def prepare(self, x: torch.Tensor | list[str]) -> torch.Tensor:
        """Inputs as the data source gives them (images as floats in [0, 1] or uint8 pixels, table
        rows as encoded features, texts as token ids or feature rows, or a text run's raw texts as
        a list of strings, see `encode_texts`) -> the model's inputs: the fitted `data.preprocess`
        applied in order."""
        if isinstance(x, (list, tuple)):
            x = self.encode_texts(x)
        if x.dtype == torch.uint8 and self.info.kind == "image":
            x = x.float().div_(255.0)
        elif self.info.kind != "tokens":
            x = x.float()
        for step in self.preprocess:
            x = step(x)
        return x

    @torch.no_grad()
    def predict(self, x: torch.Tensor | list[str], batch_size: int | None = None, prepared: bool = False) -> torch.Tensor:
        """The model's outputs (logits, or regression values in the target's original units, the
        run's `data.target_scaling` undone) for `x` (tensors, or a text run's raw texts), as float32
        on the CPU; `prepared`: `x` already went through `prepare` (e.g. a split of the run's own data)."""
        from .data import Split
        from .metrics import predict

        x = x if prepared else self.prepare(x)
        split = Split(x, torch.zeros(len(x)))
        out = predict(self.model, split, batch_size or self.recipe.data.eval_batch_size, self.device,
                      self.channels_last, self.recipe.train.precision)
        return out if self.target_scaler is None else self.target_scaler.unscale(out)


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = None,
             trust_code: bool = False) -> LoadedRun:
    """The trained model of a run directory, in eval mode, built from the directory alone (its
    recipe, data/info.json, fitted preprocessing, vocabulary and checkpoint): the training data is
    never read. `checkpoint`: best (falls back to last when the run kept no best) or last;
    `device`: default the recipe's `train.device`. Raises RunDirError for a missing or damaged run,
    and for a run whose model is user code (`model: custom`) unless `trust_code` (see `require_trust`)."""
    from .data import TargetScaler, fitted_preprocess, load_preprocess_state
    from .train.checkpoint import load_model_weights

    rd = RunDir.open(run_dir)
    which = _existing_checkpoint(rd, checkpoint)
    recipe = _run_recipe(rd)
    require_trust(rd.path, recipe, trust_code)
    info, vocab = _run_info(rd)
    dev = torch.device(device) if isinstance(device, torch.device) else resolve_device(
        device or recipe.train.device)
    model, channels_last = build_model_for(recipe, info, dev)
    load_model_weights(model, rd.checkpoint(which) / "model.safetensors")
    model.eval()
    state = load_preprocess_state(rd.path)
    steps = fitted_preprocess(recipe.data.preprocess, state)
    # the saved scaler, else data/info.json's record of it; a run from before target scaling has neither
    scaler = TargetScaler.from_state(state) or TargetScaler.from_stats(info.stats.get("target"))
    return LoadedRun(rd.path, recipe, info, model, dev, which, _checkpoint_epoch(rd, which), channels_last,
                     steps, vocab, scaler if info.task == "regression" else None)


def _existing_checkpoint(rd: RunDir, checkpoint: str, fallback: bool = True) -> str:
    """`checkpoint` if the run has it; with `fallback`, `last` for a run that kept no `best`."""
    if checkpoint not in ("best", "last"):
        raise RunDirError(f"checkpoint: expected 'best' or 'last', got {checkpoint!r}")
    for which in (checkpoint, "last") if fallback and checkpoint == "best" else (checkpoint,):
        if (rd.checkpoint(which) / "model.safetensors").is_file():
            return which
    have = sorted(p.name for p in (rd.path / "checkpoints").glob("*") if not p.name.startswith("."))
    raise RunDirError(f"{rd.path}: no {checkpoint!r} checkpoint (have: {', '.join(have) or 'none'})")


def _run_recipe(rd: RunDir) -> Recipe:
    """The run's own recipe; a text run reads its data with the vocabulary it was trained with."""
    raw = read_yaml(rd.recipe_path)
    vocab = rd.path / "data" / "vocab.json"
    if vocab.is_file():
        raw.setdefault("data", {})["vocab"] = str(vocab)
    return load_recipe(raw)


def _run_info(rd: RunDir) -> tuple[DataInfo, dict[str, Any] | None]:
    """data/info.json (runs before it: env.json's data section plus data/vocab.json) and the vocabulary."""
    vocab = rd.read_json("data/vocab.json") if (rd.path / "data" / "vocab.json").is_file() else None
    try:
        if (rd.path / "data" / "info.json").is_file():
            info = DataInfo.from_json(rd.read_json("data/info.json"))
        else:
            info = DataInfo.from_json(rd.read_json("env.json")["data"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunDirError(f"{rd.path}: cannot read what the data looked like (data/info.json, env.json): "
                          f"{type(e).__name__}: {e}") from None
    if vocab is not None and "tokens" in vocab and "vocab_size" not in info.extra:  # an older text run
        info.extra.update(vocab_size=len(vocab["tokens"]), pad_index=0, unk_index=1, level=vocab.get("level"))
    return info, vocab


def evaluate(run_dir: str | Path, split: str = "test", checkpoint: str = "best",
             trust_code: bool = False) -> dict[str, Any]:
    """Evaluate a run's checkpoint on a split of its data: the model from `load_run` (`trust_code`
    as there), the data rebuilt from the recipe with the run's own fitted preprocessing (never refitted)."""
    from .build import seed_everything
    from .data import build_data, load_preprocess_state
    from .losses import build_loss
    from .track.evaluation import write_evaluation

    with RunDir.open(run_dir).lock() as rd:  # it writes eval/ and plots/: one writer at a time
        _existing_checkpoint(rd, checkpoint, fallback=False)  # evaluating `best` of a run without one is an error
        run = load_run(rd.path, checkpoint, trust_code=trust_code)
        set_threads(run.recipe)
        recipe = run.recipe
        seed_everything(recipe.seed)
        # `or {}`: a run that saved no fitted state is rebuilt without any (no target scaling either)
        bundle = build_data(recipe.data, recipe.seed, load_preprocess_state(rd.path) or {})
        _check_same_data(rd, run.info, bundle)
        return write_evaluation(rd, recipe, bundle, run.model, build_loss(recipe.loss, bundle.info), run.device,
                                run.channels_last, split, checkpoint, run.epoch)


def _check_same_data(rd: RunDir, info: DataInfo, bundle: DataBundle) -> None:
    now = bundle.info
    for what, then, again in (("input shape", tuple(info.input_shape), tuple(now.input_shape)),
                              ("task", info.task, now.task), ("classes", info.num_classes, now.num_classes)):
        if then != again:
            raise DataError(f"{rd.path}: the data no longer matches the run: {what} was {then}, is now {again}")


def report(run_dir: str | Path, output: str | Path | None = None, trust_code: bool = False) -> Path:
    """Write the run's self-contained report.html (or `output`); evaluates the test split first
    when no eval/test.json exists yet, so a run directory alone is enough (`trust_code`: as for
    `load_run`, needed only then)."""
    from .track.report import write_report

    with RunDir.open(run_dir).lock() as rd:  # reentrant: the evaluate() below takes it again
        if not (rd.path / "eval" / "test.json").is_file():
            which = next((c for c in ("best", "last") if (rd.checkpoint(c) / "model.safetensors").is_file()), None)
            if which is not None:
                evaluate(rd.path, "test", which, trust_code=trust_code)
        return write_report(rd.path, output, schedule=lambda records: _replayed_lrs(rd, records))


def require_trust(run_dir: Path, recipe: Recipe, trust_code: bool) -> None:
    """Refuse to build a run's model when that would run code that is not trainlab's (`model: custom`
    names a Python file or module) unless the caller trusts it: `trust_code`, `--trust-code` or
    TRAINLAB_TRUST_CODE=1. A run directory may come from someone else; its recipe is data, its
    custom model is a program."""
    from .models import user_code

    code = user_code(recipe.model)
    if code and not (trust_code or os.environ.get("TRAINLAB_TRUST_CODE") == "1"):
        raise RunDirError(f"{run_dir}: its model is user code (model: custom) and loading it would run {code}; "
                          "if you trust it, pass --trust-code (or set TRAINLAB_TRUST_CODE=1; "
                          "in Python: trust_code=True)")


def _replayed_lrs(rd: RunDir, records: list[dict[str, Any]]) -> list[tuple[int, float]] | None:
    from .errors import TrainlabError

    try:
        return scheduled_lrs(load_recipe(rd.recipe_path), records)
    except TrainlabError:  # a recipe this version cannot read: the plot shows the logged LR only
        return None


def _checkpoint_epoch(rd: RunDir, which: str) -> int:
    import json

    try:
        state = json.loads((rd.checkpoint(which) / "state.json").read_text())
        trainer = next(v for k, v in state["__dict__"] if k == "trainer")
        return int(next(v for k, v in trainer["__dict__"] if k == "epoch"))
    except (OSError, ValueError, StopIteration, KeyError, TypeError):
        return -1


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")
