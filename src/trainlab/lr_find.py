"""The LR range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017, §3.3).

Train for a few hundred steps while the LR grows exponentially from `start_lr` to `end_lr`, record
the loss, smooth it with a bias-corrected exponential moving average, and stop once it diverges.
Two suggestions come out: the LR where the smoothed loss falls fastest (steepest descent per
decade of LR) and the LR of its minimum divided by 10. The model, optimizer, schedule, loader and
RNG are restored afterwards, so a trainer can go on to `fit()` as if nothing had happened.
"""
from __future__ import annotations

import copy
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RecipeError, RunDirError


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    steepest: float | None  # LR at the steepest descent of the smoothed loss
    min_div10: float | None  # LR at the smoothed loss's minimum, divided by 10
    stopped: str  # why the sweep ended
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["suggestion"] = {"steepest": self.steepest, "min_div10": self.min_div10}
        return d


def _snapshot(trainer) -> dict[str, Any]:
    from .train.checkpoint import rng_state

    return copy.deepcopy({
        "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
        "schedule": trainer.schedule.state_dict(), "loader": trainer.loader.state_dict(), "rng": rng_state(),
        "counters": (trainer.step, trainer.batches_done, trainer.lr_used),
    })


def _restore(trainer, saved: dict[str, Any]) -> None:
    from .train.checkpoint import set_rng_state

    trainer.model.load_state_dict(saved["model"])
    trainer.optimizer.load_state_dict(saved["optimizer"])
    trainer.schedule.load_state_dict(saved["schedule"])
    trainer.loader.load_state_dict(saved["loader"])
    set_rng_state(saved["rng"])
    trainer.step, trainer.batches_done, trainer.lr_used = saved["counters"]
    trainer.optimizer.zero_grad(set_to_none=True)


def _batches(loader):
    while True:  # as many epochs as the sweep needs
        yield from loader


def suggestions(lrs: list[float], smoothed: list[float], skip_start: int = 10) -> tuple[float | None, float | None]:
    """(steepest, min/10): the steepest fall of the smoothed loss per log-LR before its minimum,
    ignoring the first `skip_start` points (the average is still settling there)."""
    if len(lrs) < 3:
        return None, None
    loss = np.asarray(smoothed)
    lo = int(np.argmin(loss))
    min_div10 = lrs[lo] / 10
    start = min(skip_start, max(0, lo - 2))
    if lo - start < 2:
        return None, min_div10
    slope = np.gradient(loss[start:lo + 1], np.log10(np.asarray(lrs[start:lo + 1])))
    return lrs[start + int(np.argmin(slope))], min_div10


def lr_range_test(trainer, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 200, beta: float = 0.98,
                  diverge: float = 4.0) -> LRFindResult:
    """Sweep the LR of `trainer`'s optimizer from start_lr to end_lr over `steps` optimizer steps.

    Every group keeps its multiplier (`lr_mult`). Stops early when the smoothed loss exceeds
    `diverge` × its minimum or the loss is not finite. Restores the trainer's state afterwards.
    """
    if not 0 < start_lr < end_lr:
        raise RecipeError(f"lr-find: need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    from .optim import set_train_mode

    saved = _snapshot(trainer)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stopped, avg, best = f"reached end_lr after {steps} steps", 0.0, math.inf
    try:
        trainer.model.train()
        set_train_mode(trainer.optimizer, True)
        batches = _batches(trainer.loader)
        for k in range(steps):
            lr = start_lr * (end_lr / start_lr) ** (k / max(1, steps - 1))
            for g in trainer.optimizer.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)
            _, loss, _ = trainer.train_batch(*trainer.prepare_batch(*next(batches)))
            value = loss.item()  # a sync per step: the sweep must see each loss to stop on divergence
            if not math.isfinite(value):
                stopped = f"loss not finite at lr {lr:.3g} (step {k})"
                break
            avg = beta * avg + (1 - beta) * value
            smooth = avg / (1 - beta ** (k + 1))
            lrs.append(lr), losses.append(value), smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > diverge * best:
                stopped = f"diverged at lr {lr:.3g} (step {k}): smoothed loss above {diverge:g}x its minimum"
                break
    finally:
        _restore(trainer, saved)
    steepest, min_div10 = suggestions(lrs, smoothed)
    settings = {"start_lr": start_lr, "end_lr": end_lr, "steps": steps, "beta": beta, "diverge": diverge,
                "optimizer": trainer.recipe.optim.name, "batch_size": trainer.recipe.data.batch_size}
    return LRFindResult(lrs, losses, smoothed, steepest, min_div10, stopped, settings)


def plot_lr_find(result: LRFindResult, title: str = "") -> bytes:
    """The loss against the LR (log scale) with both suggestions marked, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.plot(result.lrs, result.losses, color="0.75", lw=0.8, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed loss")
    for lr, name, color in ((result.steepest, "steepest", "C3"), (result.min_div10, "min/10", "C2")):
        if lr is not None:
            ax.axvline(lr, color=color, ls="--", label=f"{name}: {lr:.2g}")
    if result.smoothed:  # the divergence tail would flatten the interesting part
        lo, hi = min(min(result.losses), min(result.smoothed)), result.smoothed[0]
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-12), max(hi, lo) + 0.3 * (hi - lo + 1e-12))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate"), ax.set_ylabel("training loss"), ax.grid(alpha=0.3), ax.legend()
    ax.set_title(title or "LR range test")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def lr_find(recipe, overrides: list[str] | None = None, run_dir: str | Path | None = None,
            **options: Any) -> tuple[LRFindResult, Path]:
    """Run the LR range test on a recipe; write lr_find.json and plots/lr_find.png into `run_dir`
    (default: a new `<output.root>/<name>-lr-find-<time>`). Returns (result, folder)."""
    from .recipe import load_recipe
    from .track.rundir import RunDir, atomic_write
    from .train import Trainer

    recipe = load_recipe(recipe, overrides)
    trainer = Trainer(recipe, progress=False)  # bad input fails here, before anything is written
    out = Path(run_dir) if run_dir is not None else None
    if out is not None:
        for rel in ("lr_find.json", "plots/lr_find.png"):
            if (out / rel).exists():
                raise RunDirError(f"--run-dir {out}: {rel} exists (nothing is overwritten)")
    result = lr_range_test(trainer, **options)
    if out is None:
        rd = RunDir.create(recipe.output.root, f"{recipe.name}-lr-find")  # created and locked
    else:
        out.mkdir(parents=True, exist_ok=True)
        rd = RunDir(out).lock()  # --run-dir may be a run: not while another process writes it
    with rd:
        if not rd.recipe_path.exists():
            rd.write_recipe(recipe)
        rd.write_json("lr_find.json", result.to_dict())
        atomic_write(rd.plot("lr_find.png"), plot_lr_find(result, f"{recipe.name}: {recipe.optim.name}"))
    return result, rd.path
