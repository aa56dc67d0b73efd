"""The recipe: one YAML file, validated by this pydantic schema, that drives a whole run.

This schema is the single source of truth for every option: its default, type and the one-line
description under each field. `trainlab recipe-doc` and the README's recipe reference are
generated from it. Component sections (data source, model, loss, optimizer, schedule) also
accept the keyword options of the chosen registry entry; those are checked against the
entry's factory signature by `Recipe.check()`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from pydantic_core import PydanticCustomError

from .errors import RecipeError


def _recipe_error(message: str) -> PydanticCustomError:
    """A validator's error that already names its recipe path: `format_validation_error` shows it as is."""
    return PydanticCustomError("recipe_error", "{message}", {"message": message})


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Component(BaseModel):
    """A section whose extra keys are the options of a registry entry."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(Component):
    source: str = Field("fashion_mnist", description="Data source registry name (`trainlab list sources`).")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0,
                                description="Share of the training split held out for validation (stratified for classification).")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0,
                                 description="Share held out for test when the source has no test split of its own.")
    batch_size: int = Field(128, ge=1, description="Training batch size.")
    eval_batch_size: int = Field(1024, ge=1, description="Batch size for validation, test and prediction.")
    subset: float | int | None = Field(None, gt=0,
                                       description="Keep only this many training samples (int) or this share (float < 1); for quick runs.")
    preprocess: list[dict[str, Any] | str] = Field(
        default_factory=list, description="Transforms fitted on the training split, e.g. `[{normalize: standard}]`.")
    augment: list[dict[str, Any] | str] = Field(
        default_factory=list, description="Batched training-time augmentations, e.g. `[{hflip: 0.5}]`.")
    on_device: bool = Field(True, description="Keep in-memory data on the training device (no copy per step).")
    loader: Literal["auto", "memory", "stream"] = Field(
        "auto", description="Training loader: `memory` (whole-tensor batches), `stream` (torch DataLoader with "
                            "workers and pinned memory), `auto`: memory when the split fits `memory_budget_mb`.")
    memory_budget_mb: float = Field(4096.0, gt=0, description="Largest training split (MB) that `loader: auto` "
                                                              "keeps on the in-memory fast path.")
    workers: int = Field(2, ge=0, description="DataLoader worker processes of the streaming loader.")


class ModelConfig(Component):
    name: str = Field("mlp", description="Model registry name (`trainlab list models`); other keys are its options.")


class LossConfig(Component):
    name: str = Field("auto", description="Loss registry name; `auto` picks cross_entropy for classification, mse for regression.")


class OptimConfig(Component):
    name: str = Field("adamw", description="Optimizer registry name (`trainlab list optimizers`); other keys are its options.")
    lr: float = Field(1e-3, gt=0, description="Base learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="L2 (coupled) or decoupled weight decay, as the optimizer defines it.")
    decay_bias_and_norm: bool = Field(False, description="Also apply weight decay to biases and normalization weights.")
    l1: float = Field(0.0, ge=0, description="L1 penalty coefficient added to the loss.")
    lr_mult: dict[str, float] = Field(default_factory=dict,
                                      description="Per-module learning-rate multipliers by parameter-name prefix, e.g. `{head: 10}`.")


class ScheduleConfig(Component):
    name: str = Field("constant", description="LR schedule registry name (`trainlab list schedules`); stepped every optimizer step.")
    warmup: float | None = Field(None, ge=0, description="Linear warm-up before the schedule: a share of the run "
                                 "(< 1, e.g. 0.05) or a number of optimizer steps; default none (warmup_cosine: 0.05).")


class TrainConfig(Section):
    epochs: int = Field(5, ge=1, description="Number of passes over the training split.")
    device: str = Field("auto", description="`auto` (cuda, then mps, then cpu), or a torch device string.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Autocast precision; `auto`: bf16 on CUDA GPUs that support it; on a CPU, bf16 when "
                            "a training step is ≥ 1 GFLOP and the CPU's measured bf16 matmul peak is ≥ 1.5× its fp32 "
                            "one (AMX), else fp32 (without AMX bf16 runs at half the fp32 rate). Evaluation on a CPU "
                            "is fp32.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the global gradient norm to this value.")
    grad_clip_value: float | None = Field(None, gt=0, description="Clip each gradient element to ±this value.")
    accumulate: int = Field(1, ge=1, description="Accumulate gradients over this many batches per optimizer step.")
    monitor: str = Field("auto", description="Metric that picks the `best` checkpoint; `auto`: val.accuracy or val.loss.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: one per physical core, at most "
                                "the CPUs this process may use (reported in env.json and the train summary).")
    channels_last: bool = Field(True, description="Use channels_last memory format for 4-D inputs (BN conv nets "
                                "20-65% faster on CPU; see docs/performance.md).")
    compile: bool = Field(False, description="torch.compile the model before training. Off by default: on CPU it "
                          "made 5 of 6 models slower and costs 5-20 s to compile; worth trying on CUDA.")
    lean_step: bool = Field(True, description="Call PyTorch's fused SGD/Adam/AdamW kernel directly instead of "
                            "`optimizer.step()`: the same update without its per-step Python wrapper (~20% of an "
                            "MLP step on CPU); false: always `optimizer.step()` (see docs/performance.md).")
    pin_memory: bool = Field(True, description="On CUDA, with data kept on the CPU (`data.on_device: false`): copy "
                             "each batch through pinned memory so its host-to-device copy is asynchronous.")
    log_every: int = Field(50, ge=1, description="Steps between progress-bar loss updates (each is one device sync).")
    metrics: list[str] = Field(
        default_factory=list,
        description="Metrics computed on the validation split each epoch, e.g. `[accuracy, f1_macro, auroc]` "
                    "(empty: accuracy, or mse/rmse/mae/r2 for regression); see docs/evaluation.md.")

    @pydantic.field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        from .metrics import METRICS

        for i, name in enumerate(names):
            if name not in METRICS:
                raise _recipe_error(METRICS.unknown(name, f"train.metrics[{i}]"))
        return names
    checkpoint_every: int | None = Field(
        1000, ge=1, description="Also checkpoint every N optimizer steps inside an epoch (a crash loses at most N steps); "
                                "epoch ends always checkpoint. null: epoch ends only.")
    on_nonfinite: Literal["skip", "rollback", "stop"] = Field(
        "skip", description="On a non-finite loss or gradient: skip the step (then roll back, then stop), roll back "
                            "to the last good checkpoint with the LR halved (then stop), or stop.")
    nonfinite_skips: int = Field(3, ge=0, description="Non-finite steps in a row that `skip` skips before rolling back.")
    nonfinite_rollbacks: int = Field(1, ge=0, description="Rollbacks (each halves the LR) before a non-finite run stops.")
    deterministic: bool = Field(False, description="torch.use_deterministic_algorithms plus the cuDNN/cuBLAS "
                                                   "settings for repeatable runs (recorded in env.json).")


class EarlyStoppingConfig(Section):
    monitor: str = Field("val.loss", description="Logged metric to watch, e.g. `val.accuracy`.")
    mode: Literal["auto", "min", "max"] = Field("auto", description="Whether smaller or larger is better; auto: max for accuracy-like metrics.")
    patience: int = Field(3, ge=0, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as an improvement.")
    restore_best: bool = Field(True, description="Evaluate with the best weights at the end.")


class OutputConfig(Section):
    root: str = Field("runs", description="Folder under which run directories are created.")
    plots: bool = Field(True, description="Write plots/*.png at the end of training.")
    trackers: list[str] = Field(
        ["tensorboard"],
        description="Trackers that log the run besides metrics.jsonl (`trainlab list trackers`); `tensorboard`: "
                    "losses, metrics, LR, throughput and the recipe in tb/. `[]`: none. The older "
                    "`tensorboard: false` still works (it removes tensorboard) but is deprecated.")
    report: bool = Field(True, description="Write the self-contained report.html at the end of training.")
    _tensorboard_false: bool = PrivateAttr(False)  # the deprecated key was given: build_trackers notes it

    @pydantic.model_validator(mode="wrap")
    @classmethod
    def _tensorboard_flag(cls, data: Any, handler):
        """`tensorboard: false` (recipes before `trackers`) takes tensorboard out of `trackers`;
        `tensorboard: true` is what every older resolved recipe.yaml says, and changes nothing."""
        flag = None
        if isinstance(data, dict) and "tensorboard" in data:
            data = dict(data)
            flag = data.pop("tensorboard")
            if not isinstance(flag, bool):
                raise _recipe_error(f"output.tensorboard: expected true or false, got {flag!r}")
            trackers = data.get("trackers", ["tensorboard"])
            if flag is False and isinstance(trackers, list):
                data["trackers"] = [t for t in trackers if t != "tensorboard"]
        out = handler(data)
        if flag is False:
            out._tensorboard_false = True
        return out

    @property
    def tensorboard(self) -> bool:
        """Deprecated: whether `tensorboard` is among `trackers`."""
        return "tensorboard" in self.trackers


class Recipe(Section):
    """A whole run: data → model → loss → optimizer and schedule → training → output."""

    name: str = Field("run", description="Run name; the run directory is `<root>/<name>-<timestamp>`.")
    seed: int = Field(0, description="Seed for splits, initialization, data order and augmentation.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    early_stopping: EarlyStoppingConfig | None = Field(None, description="Stop when the monitored metric stops improving.")
    output: OutputConfig = Field(default_factory=OutputConfig)
    search: dict[str, Any] | None = Field(
        None, exclude_if=lambda v: v is None,
        description="Search space for `trainlab tune`: recipe path -> distribution, e.g. "
                    "`{optim.lr: {loguniform: [1.0e-4, 1.0e-1]}}` (see docs/tuning.md).")

    def check(self) -> "Recipe":
        """Validate every component's options against its registry entry. Raises RecipeError."""
        from .data import SOURCES
        from .losses import LOSSES
        from .models import MODELS
        from .optim import OPTIMIZERS, SCHEDULES

        for where, reg, section in (("data", SOURCES, self.data), ("model", MODELS, self.model),
                                    ("optim", OPTIMIZERS, self.optim), ("schedule", SCHEDULES, self.schedule)):
            name = section.source if where == "data" else section.name
            entry = reg.get(name, f"{where}.{'source' if where == 'data' else 'name'}")
            try:
                reg.validate(entry.name, section.options(), where)
            except RecipeError as e:
                # name the section's own keys too among the accepted ones
                own = [k for k in type(section).model_fields if k not in ("name", "source")]
                msg = str(e)
                if "accepted:" in msg and own:
                    msg = msg.replace("accepted: ", "accepted: " + ", ".join(own) + ", ", 1)
                raise RecipeError(msg) from None
        from .data.augment import parse_augment
        from .data.preprocess import parse_preprocess

        parse_preprocess(self.data.preprocess)  # names and options of data.preprocess
        parse_augment(self.data.augment)  # names and options of data.augment
        if self.loss.name != "auto":
            entry = LOSSES.get(self.loss.name, "loss.name")
            LOSSES.validate(entry.name, self.loss.options(), "loss")
        from .track.trackers import check_trackers

        check_trackers(self.output.trackers)  # output.trackers names registered trackers
        if self.search is not None:
            from .tune.space import parse_space  # paths, distributions and every value they reach

            parse_space(self.search, self.to_dict())
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_TYPE_WORDS = {
    "float": "a number", "int": "an integer", "bool": "true or false", "string": "a string",
    "list": "a list", "dict": "a mapping", "literal": "one of",
}


def format_validation_error(e: pydantic.ValidationError, prefix: str = "", accepted: str = "",
                            what: str = "") -> str:
    """One line naming the recipe path of the first problem (and how many more there are)."""
    errs = e.errors()
    first = errs[0]
    loc = [str(p) for p in first["loc"] if not str(p).startswith(("function-", "union["))]
    # pydantic adds the union member type to loc (e.g. 'int', 'float'); drop those
    loc = [p for p in loc if p not in ("int", "float", "str", "bool", "dict[str,any]", "none")]
    path = ".".join([prefix] + loc if prefix else loc) or "recipe"
    kind = first["type"]
    got = first.get("input")
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    if kind == "recipe_error":
        return f"{first['msg']}{more}"
    if kind == "extra_forbidden":
        msg = f"unknown key{' for ' + what if what else ''}"
        if accepted:
            msg += f"; accepted: {accepted}"
    elif kind == "missing":
        msg = "required key is missing"
    elif kind.endswith(("_parsing", "_type")):
        word = next((w for k, w in _TYPE_WORDS.items() if kind.startswith(k)), None)
        msg = f"expected {word}, got {got!r}" if word else f"{first['msg'].lower()}, got {got!r}"
    elif kind == "literal_error":
        msg = f"{first['msg'].lower()}, got {got!r}"
    else:
        msg = f"{first['msg'][0].lower()}{first['msg'][1:]}, got {got!r}"
    return f"{path}: {msg}{more}"


def _set_path(d: dict, path: str, value: Any) -> None:
    keys = path.split(".")
    node = d
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """Apply `a.b=c` overrides; values are parsed as YAML (so the schema types them)."""
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        if "=" not in item:
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise RecipeError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        _set_path(raw, key, value)
    return raw


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{p}: recipe file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise RecipeError(f"{p}{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{p}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    return raw


def parse_recipe(raw: dict, source: str = "recipe") -> Recipe:
    try:
        recipe = Recipe.model_validate(raw)
    except pydantic.ValidationError as e:
        accepted = ""
        if e.errors()[0]["type"] == "extra_forbidden":
            loc = e.errors()[0]["loc"]
            model: type[BaseModel] = Recipe
            for part in loc[:-1]:
                field = model.model_fields.get(str(part))
                ann = getattr(field, "annotation", None)
                model = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)
                              and issubclass(a, BaseModel)), model)
            accepted = ", ".join(model.model_fields)
        raise RecipeError(format_validation_error(e, accepted=accepted)) from None
    return recipe.check()


def load_recipe(source: str | Path | dict | Recipe, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe. Raises RecipeError with the path of the bad key."""
    if isinstance(source, Recipe):
        raw = source.to_dict()
    elif isinstance(source, dict):
        raw = source
    else:
        raw = read_yaml(source)
    return parse_recipe(apply_overrides(raw, overrides))
