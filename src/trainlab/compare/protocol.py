"""What a comparison is: its settings, the target, each optimizer's LR grid, and the recipe of one run.

Fairness comes from how a run's recipe is made (`run_recipe`): every run of a seed gets the same
recipe except `optim.name` and `optim.lr` (and the options only the base optimizer knows), so data
split, data order, model initialization, schedule and budget are the same for every optimizer.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import TrainlabError
from ..metrics import higher_is_better

# (low, high) of each optimizer's LR grid: a decade either side of its usual learning rate, so a
# grid finds the best LR of an optimizer whose scale differs (Adadelta's LR multiplies an update
# that is already unit-scaled, hence ~1; Adam's ~1e-3; SGD with momentum 0.9 ~3e-2).
LR_RANGES: dict[str, tuple[float, float]] = {
    "sgd": (3e-3, 3e-1), "adam": (1e-4, 1e-2), "adamw": (1e-4, 1e-2), "nadam": (1e-4, 1e-2),
    "radam": (1e-4, 1e-2), "adamax": (2e-4, 2e-2), "rmsprop": (3e-5, 3e-3), "adagrad": (1e-3, 1e-1),
    "adadelta": (1e-1, 1e1), "adafactor": (1e-3, 1e-1), "lbfgs": (3e-2, 3.0), "muon": (1e-3, 1e-1),
    "lion": (3e-5, 3e-3), "schedule_free_adamw": (3e-4, 3e-2),
}
DEFAULT_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adafactor", "muon")
LR_SEARCHES = ("grid", "lr-find", "none")
COMMON_OPTIM_KEYS = ("name", "lr", "weight_decay", "decay_bias_and_norm", "l1", "lr_mult")
QUICK_SUBSET = 5000   # training samples in --quick mode
QUICK_EPOCHS = 3      # budget cap in --quick mode
CHECKS_PER_EPOCH = 10  # target checks per epoch in the final runs unless --eval-every says otherwise


class CompareError(TrainlabError):
    """A `trainlab compare` argument is malformed (the message names the flag)."""


@dataclass(frozen=True)
class Target:
    """`val.accuracy=0.85`: reached when the metric is at least (max mode) or at most (min mode) `value`."""

    metric: str
    value: float
    mode: str  # "max" or "min"

    def reached(self, v: float | None) -> bool:
        if v is None or not math.isfinite(v):
            return False
        return v >= self.value if self.mode == "max" else v <= self.value

    def __str__(self) -> str:
        return f"{self.metric} {'≥' if self.mode == 'max' else '≤'} {self.value:g}"


def parse_target(text: str | None) -> Target | None:
    """`METRIC=VALUE` with METRIC a per-epoch metric (val.* or train.*); the mode follows the metric."""
    if text is None:
        return None
    metric, sep, value = text.partition("=")
    metric = metric.strip()
    if not sep or not metric.startswith(("val.", "train.")) or len(metric.split(".")) != 2:
        raise CompareError(f"--target {text!r}: expected METRIC=VALUE with a per-epoch metric, "
                           "e.g. val.accuracy=0.88 or val.loss=0.01")
    try:
        v = float(value)
    except ValueError:
        raise CompareError(f"--target {text!r}: {value.strip()!r} is not a number") from None
    if not math.isfinite(v):
        raise CompareError(f"--target {text!r}: the value must be finite")
    return Target(metric, v, "max" if higher_is_better(metric) else "min")


def parse_optimizers(text: str) -> list[str]:
    """Comma-separated registry names (aliases resolved), each once. Raises RecipeError naming `--optimizers`."""
    from ..optim import OPTIMIZERS

    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise CompareError("--optimizers: give at least one optimizer, e.g. sgd,adam")
    out: list[str] = []
    for n in names:
        canonical = OPTIMIZERS.get(n, "--optimizers").name
        if canonical in out:
            raise CompareError(f"--optimizers: {n!r} is listed twice")
        out.append(canonical)
    return out


def lr_grid_point(optimizer: str, points: int, k: int) -> float:
    """Point k of the optimizer's `points`-point log grid over its LR range (k < 0 or k >= points lie
    beyond the range, on the same spacing), rounded to 3 significant digits."""
    low, high = LR_RANGES.get(optimizer, (1e-4, 1e-1))
    step = (high / low) ** (1 / (points - 1)) if points > 1 else 10 ** 0.5
    return float(f"{low * step ** k:.3g}")


def lr_grid(optimizer: str, points: int) -> list[float]:
    """`points` log-spaced LRs over the optimizer's range (its usual LR in the middle)."""
    return [lr_grid_point(optimizer, points, k) for k in range(points)]


def default_lr(optimizer: str) -> float:
    """The geometric middle of the optimizer's range: the LR `--lr-search none` uses."""
    low, high = LR_RANGES.get(optimizer, (1e-4, 1e-1))
    return float(f"{math.sqrt(low * high):.3g}")


@dataclass
class Settings:
    """Everything that decides a comparison's results (written to compare.json as the protocol)."""

    optimizers: list[str]
    seeds: list[int]
    target: Target | None
    metric: str                  # what the LR search and the table judge: the target's metric or the monitor
    mode: str                    # max or min, for `metric`
    lr_search: str
    eval_every: int | None       # steps between target checks in the final runs (0: epoch ends only)
    grid_points: int
    search_epochs: int
    budget_epochs: int
    subset: int | float | None
    threads: int
    workers: int
    quick: bool

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = None if self.target is None else asdict(self.target)
        return d


def run_recipe(base: dict[str, Any], optimizer: str, lr: float, seed: int, epochs: int,
               subset: float | None, threads: int, eval_every: int = 0) -> dict[str, Any]:
    """The raw recipe of one run: the base recipe with this optimizer, LR, seed and budget.

    Options of the base optimizer that `optimizer` does not take (e.g. Adam's betas for SGD) are
    dropped; the common keys (weight decay, L1, LR multipliers) stay. Early stopping is removed so
    every run gets the whole budget; nothing is written (no plots, report, TensorBoard). With
    `eval_every`, `train.log_every` becomes that interval: the callbacks that check the target run then.
    """
    from ..optim import OPTIMIZERS

    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    accepted = set(OPTIMIZERS.option_names(optimizer)) | set(COMMON_OPTIM_KEYS)
    raw["optim"] = {k: v for k, v in base["optim"].items() if k in accepted}
    raw["optim"].update(name=optimizer, lr=float(lr))
    raw["seed"] = int(seed)
    raw["train"] = {**base["train"], "epochs": int(epochs), "threads": int(threads), "on_nonfinite": "stop"}
    if eval_every:
        raw["train"]["log_every"] = int(eval_every)
    raw["early_stopping"] = None
    raw["output"] = {**base["output"], "plots": False, "trackers": [], "report": False}
    if subset is not None:
        raw["data"] = {**base["data"], "subset": subset}
    raw.pop("search", None)
    return raw
