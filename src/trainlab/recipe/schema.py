"""The recipe: one YAML file, validated by this pydantic schema, that drives a whole run.

This schema is the single source of truth for every option: its default, type and the one-line
description under each field. `trainlab recipe-doc` and the README's recipe reference are
generated from it. Component sections (data source, model, loss, optimizer, schedule) also
accept the keyword options of the chosen registry entry; those are checked against the
entry's factory signature by `check_recipe()` (recipe/load.py).
"""
from __future__ import annotations

from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from pydantic_core import PydanticCustomError



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
                                       description="Keep only this many training samples (an integer) or this share (a number ≤ 1.0, e.g. 0.1); for quick runs.")
    preprocess: list[dict[str, Any] | str] = Field(
        default_factory=list, description="Transforms fitted on the training split, e.g. `[{normalize: standard}]`.")
    target_scaling: Literal["auto", "standard", "none"] = Field(
        "auto", description="Regression targets: `standard` trains on (y - mean) / std of the training split and "
                            "reports predictions and metrics in the original units; `none`; `auto`: standard, except "
                            "the synthetic known-answer sources. Ignored for classification.")
    augment: list[dict[str, Any] | str] = Field(
        default_factory=list, description="Batched training-time augmentations, e.g. `[{hflip: 0.5}]`.")
    on_device: bool = Field(True, description="Keep in-memory data on the training device (no copy per step).")
    loader: Literal["auto", "memory", "stream"] = Field(
        "auto", description="Training loader: `memory` (whole-tensor batches), `stream` (torch DataLoader with "
                            "workers and pinned memory), `auto`: memory when the split fits `memory_budget_mb`.")
    memory_budget_mb: float = Field(4096.0, gt=0, description="Largest training split (MB) that `loader: auto` "
                                                              "keeps on the in-memory fast path.")
    workers: int = Field(2, ge=0, description="DataLoader worker processes of the streaming loader.")
    sampler: Literal["none", "balanced"] = Field(
        "none", description="Training order: `none` (a permutation per epoch), `balanced` (classes drawn equally: "
                            "each epoch samples with replacement, weighted by inverse class frequency).")
    cache: bool = Field(True, description="Keep decoded IDX (MNIST, Fashion-MNIST) and CIFAR-10 files in "
                        "`$TRAINLAB_CACHE` (default ~/.cache/trainlab/decoded) and memory-map them on the next run; "
                        "false (or env `TRAINLAB_DATA_CACHE=0`): decode every time (docs/data.md).")

    @pydantic.field_validator("subset")
    @classmethod
    def _subset_share(cls, v: float | int | None) -> float | int | None:
        if isinstance(v, float) and v > 1:
            raise _recipe_error(f"data.subset: {v} is a share and must be at most 1.0; "
                                f"give a number of samples as an integer ({int(v)})")
        return v


class ModelConfig(Component):
    name: str = Field("mlp", description="Model registry name (`trainlab list models`); other keys are its options.")


class LossConfig(Component):
    name: str = Field("auto", description="Loss registry name (`trainlab list losses`); `auto` picks cross_entropy "
                      "for classification, bce for multi-label, mse for regression; other keys are its options.")


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
                            "is fp32. fp16 trains with a loss scaler (torch's GradScaler; not with lbfgs).")
    grad_clip: float | None = Field(None, gt=0, description="Clip the global gradient norm to this value.")
    grad_clip_value: float | None = Field(None, gt=0, description="Clip each gradient element to ±this value.")
    accumulate: int = Field(1, ge=1, description="Accumulate gradients over this many batches per optimizer step.")
    monitor: str = Field("auto", description="Metric that picks the `best` checkpoint; `auto`: val.accuracy or val.loss.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: one per physical core, at most "
                                "the CPUs this process may use, and one when a training step is under 20 MFLOP "
                                "(reported in env.json and the train summary).")
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
        from ..metrics import METRICS

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

    name: str = Field("run", description="Run name; the run directory is `<root>/<name>-<timestamp>`, with the name "
                                         "made a safe file name (letters, digits, `.-_`; others become `_`; a note says so).")
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
    compress: dict[str, Any] | None = Field(
        None, exclude_if=lambda v: v is None,
        description="Written by `trainlab compress` into the run it makes: `method` (prune, quantize, distill), "
                    "`parent` (the run it was made from), `checkpoint` and the method's options; `load_run` "
                    "rebuilds the model with it (see docs/compress.md).")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


