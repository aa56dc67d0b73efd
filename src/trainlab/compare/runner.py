"""`compare()`: validate, find each optimizer's LR, run every (optimizer, seed), write the folder.

Everything is checked before the first run, and the output folder appears whole at the end (built
beside it and renamed into place), so bad input or an interrupted comparison leaves nothing behind.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..recipe import Recipe, load_recipe
from ..track.rundir import safe_name
from .protocol import (
    CHECKS_PER_EPOCH,
    DEFAULT_OPTIMIZERS,
    LR_RANGES,
    LR_SEARCHES,
    QUICK_EPOCHS,
    QUICK_SUBSET,
    CompareError,
    Settings,
    default_lr,
    lr_grid_point,
    parse_optimizers,
    parse_target,
    run_recipe,
)
from .runs import _bundle, make_pool, run_all

GRID_EXTENSIONS = 2  # extra LRs the grid search may try beyond an edge of an optimizer's grid


@dataclass
class CompareResult:
    folder: Path
    rows: list[dict[str, Any]]
    data: dict[str, Any]   # what compare.json holds


def compare(recipe: str | Path | dict | Recipe, optimizers: str | list[str] | tuple[str, ...] = DEFAULT_OPTIMIZERS,
            seeds: int | None = None, target: str | None = None, lr_search: str = "grid",
            budget_epochs: int | None = None, workers: int = 1, out: str | Path | None = None,
            quick: bool = False, overrides: list[str] | None = None, eval_every: int | None = None,
            say: Callable[[str], None] | None = None) -> CompareResult:
    """Compare optimizers on a recipe's workload, each at its best LR, over several seeds.

    Raises CompareError / RecipeError on bad arguments before anything runs or is written.
    """
    say = say or (lambda m: None)
    base = load_recipe(recipe, overrides)
    settings = _settings(base, optimizers, seeds, target, lr_search, budget_epochs, workers, quick, eval_every)
    folder = _out_folder(base, out)
    raw = base.to_dict()
    for name in settings.optimizers:  # every run's recipe is valid, or nothing runs
        load_recipe(_raw(raw, settings, name, 1e-3, settings.seeds[0], settings.budget_epochs, "final"))
    first = load_recipe(_raw(raw, settings, settings.optimizers[0], 1e-3, settings.seeds[0], 1))
    bundle = _bundle(first)[0]
    _check_metric(settings, first, bundle)
    if settings.eval_every is None:  # about CHECKS_PER_EPOCH target checks per epoch
        steps = math.ceil(math.ceil(len(bundle.train) / first.data.batch_size) / first.train.accumulate)
        settings.eval_every = max(1, round(steps / CHECKS_PER_EPOCH)) if settings.target else 0

    pool = make_pool(settings.workers)
    try:
        search, chosen = _search(raw, settings, pool, say)
        specs = [_spec(raw, settings, name, chosen[name], seed, settings.budget_epochs, "final")
                 for seed in settings.seeds for name in settings.optimizers]  # seed-major: data built once per seed
        say(f"training {len(specs)} runs ({len(settings.optimizers)} optimizers × {len(settings.seeds)} seeds, "
            f"{settings.budget_epochs} epochs each) on {settings.workers} worker(s)")
        runs = run_all(specs, pool, lambda r: say(_line(r, settings)))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    from .output import write_outputs

    data = _document(base, settings, search, chosen, runs)
    if not data["fairness"]["same_data_order_and_init_per_seed"]:
        say("warning: runs of one seed saw different data order or initial weights (see compare.json)")
    write_outputs(folder, base, data)
    return CompareResult(folder, data["table"], data)


def _settings(base: Recipe, optimizers, seeds, target, lr_search, budget_epochs, workers, quick,
              eval_every) -> Settings:
    names = parse_optimizers(optimizers if isinstance(optimizers, str) else ",".join(optimizers))
    tgt = parse_target(target)
    if seeds is not None and seeds < 1:
        raise CompareError(f"--seeds {seeds}: expected at least 1")
    if workers < 1:
        raise CompareError(f"--workers {workers}: expected at least 1")
    if budget_epochs is not None and budget_epochs < 1:
        raise CompareError(f"--budget-epochs {budget_epochs}: expected at least 1")
    if eval_every is not None and eval_every < 0:
        raise CompareError(f"--eval-every {eval_every}: expected 0 (epoch ends only) or a number of steps")
    if lr_search not in LR_SEARCHES:
        raise CompareError(f"--lr-search {lr_search!r}: expected one of {', '.join(LR_SEARCHES)}")
    n_seeds = seeds if seeds is not None else (1 if quick else 3)
    budget = budget_epochs or base.train.epochs
    subset = base.data.subset
    if quick:
        budget = min(budget, QUICK_EPOCHS) if budget_epochs is None else budget
        subset = QUICK_SUBSET if subset is None or (isinstance(subset, int) and subset > QUICK_SUBSET) else subset
    threads = base.train.threads or max(1, (os.cpu_count() or 1) // workers)
    metric = tgt.metric if tgt else "auto"
    return Settings(optimizers=names, seeds=[base.seed + i for i in range(n_seeds)], target=tgt, metric=metric,
                    mode=tgt.mode if tgt else "max", lr_search=lr_search, eval_every=eval_every, grid_points=3 if quick else 5,
                    search_epochs=max(1, budget // 4), budget_epochs=budget, subset=subset, threads=threads,
                    workers=workers, quick=quick)


def _out_folder(base: Recipe, out: str | Path | None) -> Path:
    if out is not None:
        p = Path(out)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise CompareError(f"--out {p}: exists and is not an empty folder (nothing is overwritten)")
        return p
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = safe_name(base.name)  # `name: ../x` must not put the folder outside output.root
    p = Path(base.output.root) / "compare" / f"{name}-{stamp}"
    i = 1
    while p.exists():
        i += 1
        p = Path(base.output.root) / "compare" / f"{name}-{stamp}-{i}"
    return p


def _check_metric(settings: Settings, recipe: Recipe, bundle) -> None:
    """The target's metric is one the runs log each epoch; without a target, judge by the monitor's default."""
    from ..metrics import higher_is_better, resolve_monitor, validation_metrics

    task = bundle.info.task
    logged = ["train.loss"] + (["train.accuracy"] if task == "classification" else [])
    if bundle.val is not None:
        logged += ["val.loss"] + [f"val.{m}" for m in validation_metrics(recipe, task)]
    if settings.target is None:
        settings.metric = resolve_monitor(recipe, task, bundle.val is not None)
        settings.mode = "max" if higher_is_better(settings.metric) else "min"
    elif settings.metric not in logged:
        extra = "; add it to train.metrics" if settings.metric.startswith("val.") and bundle.val is not None else ""
        raise CompareError(f"--target {settings.metric}: not logged each epoch by this recipe "
                           f"(logged: {', '.join(logged)}){extra}")


def _raw(raw: dict, settings: Settings, name: str, lr: float, seed: int, epochs: int, phase: str = "search") -> dict:
    return run_recipe(raw, name, lr, seed, epochs, settings.subset, settings.threads,
                      settings.eval_every if phase == "final" else 0)


def _spec(raw: dict, settings: Settings, name: str, lr: float, seed: int, epochs: int, phase: str,
          lr_find: dict | None = None) -> dict[str, Any]:
    t = settings.target
    return {"recipe": _raw(raw, settings, name, lr, seed, epochs, phase), "optimizer": name, "lr": lr,
            "phase": phase, "eval_every": settings.eval_every if phase == "final" else 0,
            "metric": settings.metric, "mode": settings.mode, "lr_find": lr_find,
            "target": {"metric": t.metric, "value": t.value, "mode": t.mode} if t else None}


def _search(raw: dict, settings: Settings, pool, say) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each optimizer's LR: the grid point with the best metric after a short budget (first seed), the
    LR range test's minimum / 10, or (none) the middle of its usual range."""
    names, seed = settings.optimizers, settings.seeds[0]
    if settings.lr_search == "none":
        return [], {n: default_lr(n) for n in names}
    if settings.lr_search == "lr-find":
        specs = []
        for n in names:
            low, high = LR_RANGES.get(n, (1e-4, 1e-1))
            finder = {"start_lr": low / 10, "end_lr": high * 100, "steps": 100 if settings.quick else 200}
            specs.append(_spec(raw, settings, n, default_lr(n), seed, 1, "search", finder))
        say(f"LR range test for {len(names)} optimizers")
        found = run_all(specs, pool)
        chosen = {r["optimizer"]: r["lr"] if r["lr"] else default_lr(r["optimizer"]) for r in found}
        return found, chosen
    ks = {n: list(range(settings.grid_points)) for n in names}  # grid points by index (lr_grid_point)
    specs = [_spec(raw, settings, n, lr_grid_point(n, settings.grid_points, k), seed, settings.search_epochs,
                   "search") for n in names for k in ks[n]]
    say(f"LR search: {settings.grid_points} learning rates × {len(names)} optimizers, "
        f"{settings.search_epochs} epoch(s) each, seed {seed}")
    found: list[dict[str, Any]] = []
    for _ in range(1 + GRID_EXTENSIONS):
        found += run_all(specs, pool, lambda r: say(_line(r, settings)))
        chosen = {n: _best_lr(found, n, settings.mode) for n in names}
        # a best LR at the edge of the grid may not be the best: try one more point beyond it
        specs = []
        for n in names:
            at = {lr_grid_point(n, settings.grid_points, k): k for k in ks[n]}.get(chosen[n])
            k = min(ks[n]) - 1 if at == min(ks[n]) else max(ks[n]) + 1 if at == max(ks[n]) else None
            if k is not None:
                ks[n].append(k)
                specs.append(_spec(raw, settings, n, lr_grid_point(n, settings.grid_points, k), seed,
                                   settings.search_epochs, "search"))
        if not specs:
            break
        say(f"LR search: best LR at the edge of the grid for {', '.join(s['optimizer'] for s in specs)}; "
            "one more point beyond it")
    return found, {n: chosen[n] if chosen[n] is not None else default_lr(n) for n in names}


def _best_lr(found: list[dict[str, Any]], name: str, mode: str) -> float | None:
    """The LR whose short run had the best metric (a tie goes to the smaller LR); None if all diverged."""
    ok = [r for r in found if r["optimizer"] == name and r["best"] is not None]
    if not ok:
        return None
    sign = 1 if mode == "max" else -1
    return max(ok, key=lambda r: (sign * r["best"], -r["lr"]))["lr"]


def _line(r: dict[str, Any], settings: Settings) -> str:
    v = r.get("final") if r["phase"] == "final" else r.get("best")
    what = f"{'final' if r['phase'] == 'final' else 'best'} {settings.metric} {v:.4f}" if v is not None else r["status"]
    hit = ""
    if r["phase"] == "final" and settings.target is not None:
        hit = f", target at step {r['steps_to_target']}" if r["reached"] else ", target not reached"
    return f"  {r['phase']:6s} {r['optimizer']:>10s} lr {r['lr']:<8.3g} seed {r['seed']}: {what}{hit}"


def _fair(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per seed: do all optimizers share the first epoch's batch order, initial weights and training data?"""
    by_seed: dict[int, set[str]] = {}
    for r in runs:
        by_seed.setdefault(r["seed"], set()).add(json.dumps(r["fingerprint"], sort_keys=True))
    return {"same_data_order_and_init_per_seed": all(len(v) == 1 for v in by_seed.values()),
            "fingerprints": {str(s): json.loads(next(iter(v))) if len(v) == 1 else sorted(v)
                             for s, v in by_seed.items()}}


def _document(base: Recipe, settings: Settings, search, chosen, runs) -> dict[str, Any]:
    from .. import __version__
    from .table import summarize

    rows = summarize(runs, settings.optimizers, settings.mode)
    fair = _fair(runs)
    return {
        "trainlab": __version__, "created": dt.datetime.now().isoformat(timespec="seconds"),
        "recipe": base.name, "settings": settings.to_dict(), "protocol": protocol_lines(base, settings, runs),
        "fairness": fair, "chosen_lr": chosen, "table": rows, "runs": runs, "search": search,
    }


def protocol_lines(base: Recipe, settings: Settings, runs: list[dict[str, Any]]) -> list[str]:
    s, t = settings, settings.target
    steps = runs[0]["steps"] // max(runs[0]["epochs"], 1) if runs and runs[0]["epochs"] else None
    search = {
        "grid": f"{s.grid_points} log-spaced LRs per optimizer over a 100× range around its usual LR, "
                f"{s.search_epochs} epoch(s) each on seed {s.seeds[0]}; the LR with the best {s.metric} wins "
                f"(a tie goes to the smaller LR); when it is at an edge of the grid, the grid grows one point "
                f"past that edge, up to {GRID_EXTENSIONS} times",
        "lr-find": f"the LR range test (Smith 2017) per optimizer on seed {s.seeds[0]}, from a tenth of the "
                   "bottom of its usual range to 100× its top; the LR of the smoothed loss's minimum, divided by "
                   "10, is used",
        "none": "no search: each optimizer runs at the middle of its usual LR range",
    }[s.lr_search]
    data = f"{base.data.source}" + (f", {s.subset} training samples" if s.subset is not None else "")
    lines = [
        (f"Workload: recipe {base.name!r}: model {base.model.name}, data {data}, batch size {base.data.batch_size}, "
        f"loss {base.loss.name}, schedule {base.schedule.name}; every optimizer keeps the recipe's weight decay, "
        "L1 and LR multipliers and its own defaults for everything else."),
        f"Budget: {s.budget_epochs} epochs per run" + (f" ({steps} optimizer steps per epoch)" if steps else "")
        + "; no early stopping. A non-finite loss or gradient ends a run (counted as diverged).",
        (f"Seeds: {', '.join(map(str, s.seeds))}. For each seed every optimizer gets the same data split, the same "
        "batch order in every epoch and the same initial weights (the loader's order is a function of "
        "(seed, epoch); the model is built right after seeding); compare.json records hashes of both per run."),
        f"LR search: {search}.",
        (f"Target: {t}. It is checked on the validation split "
         + (f"every {s.eval_every} optimizer steps and " if s.eval_every else "")
         + "at each epoch end; time to target is the first check that meets it, counted in optimizer steps, "
         "epochs and training seconds (validation excluded)." if t
         else f"No target: optimizers are judged by the final {s.metric}."),
        f"Ranking: optimizers that reach the target with every seed first, by mean steps to target, then by "
        f"mean final {s.metric}. Mean ± sample standard deviation over seeds."
        if t else f"Ranking: by mean final {s.metric}; mean ± sample standard deviation over seeds.",
        (f"Compute: {s.threads} thread(s) per run, {s.workers} worker process(es). Metrics are exactly repeatable "
        "on the CPU for the same thread count; timings are not."),
    ]
    return lines
