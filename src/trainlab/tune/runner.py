"""`trainlab tune`: validate the recipe and its search space, open (or continue) the study, run K
worker processes against its storage, and write the study's outputs. `show()` prints a study."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RecipeError
from ..recipe import apply_overrides, parse_recipe, read_yaml
from ..track.rundir import atomic_write, safe_name
from ..recipe import parse_space
from .study import (
    PRUNERS,
    SAMPLERS,
    TuneError,
    direction_of,
    make_sampler,
    open_storage,
    progress,
    quiet_optuna,
    sqlite_path,
)
from .worker import CHILD, TuneSettings, run_worker, settings_json


@dataclass
class TuneResult:
    study: str
    folder: Path
    status: str                       # done, exhausted, timeout, interrupted
    finished: int
    best_number: int | None = None
    best_value: float | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


def _check_flags(trials, workers, timeout, sampler, pruner, objective, direction, heartbeat) -> None:
    if trials < 1:
        raise TuneError(f"--trials {trials}: expected at least 1")
    if workers < 1:
        raise TuneError(f"--workers {workers}: expected at least 1")
    if timeout is not None and timeout <= 0:
        raise TuneError(f"--timeout {timeout}: expected a positive number of seconds")
    if heartbeat < 1:
        raise TuneError(f"--heartbeat {heartbeat}: expected at least 1 second")
    if sampler not in SAMPLERS:
        raise TuneError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise TuneError(f"--pruner {pruner!r}: expected one of {', '.join(PRUNERS)}")
    if direction not in ("auto", "maximize", "minimize"):
        raise TuneError(f"--direction {direction!r}: expected maximize, minimize or auto")
    if objective != "auto" and not objective.startswith(("val.", "train.")):
        raise TuneError(f"--objective {objective!r}: expected a per-epoch metric such as val.accuracy, "
                        f"val.loss or train.loss")


def load_tune_recipe(recipe: str | Path | dict, space_file: str | Path | None, overrides: list[str] | None):
    """The validated recipe with its search space (from --space FILE if given)."""
    raw = dict(recipe) if isinstance(recipe, dict) else read_yaml(recipe)
    if space_file is not None:
        sp = read_yaml(space_file)
        raw["search"] = sp.get("search", sp) if isinstance(sp.get("search"), dict) else sp
    raw = apply_overrides(raw, overrides)
    try:
        rec = parse_recipe(raw)
    except RecipeError as e:
        if space_file is not None and str(e).startswith("search."):
            raise RecipeError(f"{space_file}: {e}") from None
        raise
    if not rec.search:
        raise RecipeError("search: the recipe has no search space; add a `search:` section or pass --space FILE")
    return rec


def _auto_objective(rec) -> str:
    """The trainer's own monitor (see `metrics.resolve_monitor`)."""
    from ..data import SOURCES
    from ..metrics import resolve_monitor

    if rec.train.monitor != "auto":
        return rec.train.monitor
    # the default depends on the task; building the source is the way to learn it
    src = SOURCES.build(rec.data.source, rec.data.options(), "data", seed=rec.seed, cache=rec.data.cache)
    return resolve_monitor(rec, src.task, rec.data.val_fraction > 0)


def _study_name(name: str) -> str:
    """The study's name, also its folder's (runs/tune/<name>): made a safe file name, with a note."""
    safe = safe_name(name, default="study")
    if safe != name:
        print(f"trainlab: note: study name {name!r} is not a safe folder name; using {safe!r}",
              file=sys.stderr, flush=True)
    return safe


def _public_url(url: str) -> str:
    """The storage URL as shown and stored (study.json, messages): its password redacted."""
    from ..redact import redact

    return redact(url)


def open_study(s: TuneSettings, objective_flag: str, direction_flag: str, rec, space, say: Callable):
    """Create the study, or load it to continue; checks it optimizes the same thing."""
    import optuna

    from ..metrics import higher_is_better

    storage = open_storage(s.storage, s.heartbeat)
    try:
        existing = optuna.load_study(study_name=s.study, storage=storage)
    except KeyError:
        existing = None
    if existing is not None:
        stored = existing.user_attrs.get("objective")
        if objective_flag == "auto" and stored:
            s.objective = stored
        if stored and s.objective != stored:
            raise TuneError(f"--objective {s.objective}: study {s.study!r} optimizes {stored}; "
                            f"use another --study name")
    elif s.objective == "auto":
        s.objective = _auto_objective(rec)
    s.direction = direction_flag if direction_flag != "auto" else (
        "maximize" if higher_is_better(s.objective) else "minimize")
    if existing is not None and direction_of(existing) != s.direction:
        raise TuneError(f"--direction {s.direction}: study {s.study!r} was created to {direction_of(existing)}")
    study = optuna.create_study(study_name=s.study, storage=storage, direction=s.direction, load_if_exists=True)
    if existing is None:
        study.set_user_attr("objective", s.objective)
        study.set_user_attr("created", dt.datetime.now().isoformat(timespec="seconds"))
        if s.sampler != "grid":
            params, why = space.baseline(s.recipe)
            if params is not None:
                # trial 0 is the recipe as written, so the study shows whether tuning beat it
                study.enqueue_trial(params, user_attrs={"baseline": True})
            else:
                say(f"note: the recipe's own values are not trial 0 ({why})")
    else:
        p = progress(study.get_trials(deepcopy=False))
        say(f"continuing study {s.study!r}: {p.finished} of {s.trials} trials finished")
    study.set_user_attr("target_trials", s.trials)
    return study


def _run_workers(s: TuneSettings, say: Callable) -> str:
    """K child processes, each a worker on the same storage; Ctrl-C is passed on to each once."""
    import trainlab

    env = dict(os.environ)
    src = str(Path(trainlab.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs = []
    for i in range(s.workers):
        # own process group: a terminal's Ctrl-C reaches only us, and we forward it exactly once
        p = subprocess.Popen([sys.executable, "-c", CHILD, str(i)], stdin=subprocess.PIPE,
                             env=env, text=True, process_group=0)
        p.stdin.write(settings_json(s))
        p.stdin.close()
        procs.append(p)
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()  # its trial goes stale and is re-run by the next worker
        return "interrupted"
    if any(c == 2 for c in codes):
        raise TuneError("a worker stopped with the error above")
    if any(c not in (0, 130) for c in codes):
        say(f"note: worker exit codes {codes}; their running trials are re-run after the heartbeat grace period")
    return "interrupted" if 130 in codes else "done"


def tune(recipe: str | Path | dict, trials: int = 20, space: str | Path | None = None,
         overrides: list[str] | None = None, run_dir: str | Path | None = None, workers: int = 1,
         timeout: float | None = None, study: str | None = None, storage: str | None = None,
         sampler: str = "tpe", pruner: str = "median", objective: str = "auto", direction: str = "auto",
         heartbeat: int = 30, say: Callable = print) -> TuneResult:
    """Run (or continue) an Optuna study over the recipe's search space; see docs/tuning.md.

    Raises TrainlabError (RecipeError, TuneError) on bad input, before anything is written.
    """
    _check_flags(trials, workers, timeout, sampler, pruner, objective, direction, heartbeat)
    quiet_optuna()
    rec = load_tune_recipe(recipe, space, overrides)
    base = rec.to_dict()
    space_raw = base.pop("search")
    sp = parse_space(space_raw, base, probe=False)
    if sampler == "grid":
        sp.grid()  # raises for continuous or conditional parameters
    name = _study_name(study or rec.name)
    folder = Path(run_dir) if run_dir is not None else Path(rec.output.root) / "tune" / name
    if storage is None:
        url = f"sqlite:///{(folder / 'study.db').resolve()}"
    else:
        url = storage
    s = TuneSettings(recipe=base, space=space_raw, study=name, storage=url, study_dir=str(folder.resolve()),
                     trials=trials, sampler=sampler, pruner=pruner, objective=objective, direction=direction,
                     heartbeat=heartbeat, workers=workers,
                     deadline=time.time() + timeout if timeout is not None else None)
    make_sampler(sampler, sp, 0, trials)  # a missing package or a bad grid fails before anything is written
    db = sqlite_path(url)
    if objective == "auto" and db is not None and not db.is_file():
        s.objective = _auto_objective(rec)  # a new study: learn the task (and check the data) first
    if db is None:  # a database server: no driver or no connection fails before the folder exists
        open_storage(url, heartbeat=None)
    folder.mkdir(parents=True, exist_ok=True)
    st = open_study(s, objective, direction, rec, sp, say)
    atomic_write(folder / "study.json", json.dumps({
        "study": name, "storage": _public_url(url), "objective": s.objective, "direction": s.direction,
        "trials": trials, "sampler": sampler, "pruner": pruner, "workers": workers, "heartbeat": heartbeat,
        "recipe": str(recipe) if not isinstance(recipe, dict) else None, "search": space_raw,
        "updated": dt.datetime.now().isoformat(timespec="seconds")}, indent=2) + "\n")
    say(f"study {name!r}: {trials} trials, {s.objective} ({s.direction}), sampler {sampler}, pruner {pruner}, "
        f"{workers} worker{'s' if workers > 1 else ''}; storage {_public_url(url)}")
    status = run_worker(s, 0, say) if workers == 1 else _run_workers(s, say)
    return finish(st, folder, s.objective, space_raw, status, say)


def finish(study, folder: Path, objective: str, space_raw: dict, status: str, say: Callable) -> TuneResult:
    from .report import write_outputs

    p = progress(study.get_trials(deepcopy=False))
    out = write_outputs(study, folder, objective, space_raw)
    best = out["best"]
    res = TuneResult(study.study_name, folder, status, p.finished, best.number if best else None,
                     best.value if best else None, out)
    return res


def show(study_ref: str, storage: str | None = None, folder: str | Path | None = None):
    """Load a study from its storage (nothing runs). Returns (study, objective).

    `study_ref` is a study folder, or a study name: looked up as runs/tune/<name>, in `folder`, or
    in the `storage` URL."""
    import optuna

    p = Path(study_ref)
    places = [Path(folder)] if folder is not None else [p, Path("runs") / "tune" / study_ref]
    info_path = next((c / "study.json" for c in places if (c / "study.json").is_file()), None)
    info = json.loads(info_path.read_text()) if info_path else {}
    name = info.get("study", study_ref)
    url = storage or info.get("storage")
    if url is None:
        looked = " and ".join(str(c / "study.json") for c in places)
        raise TuneError(f"--show {study_ref}: no study folder here (looked for {looked}); "
                        f"pass --storage URL for a database")
    db = sqlite_path(url)
    if db is not None and not db.is_file():
        raise TuneError(f"--show {study_ref}: storage file {db} does not exist")
    st = open_storage(url, heartbeat=None)
    try:
        study = optuna.load_study(study_name=name, storage=st)
    except KeyError:
        names = optuna.get_all_study_names(st)
        raise TuneError(f"--show {study_ref}: no study {name!r} in {_public_url(url)} "
                        f"(studies there: {', '.join(names) or 'none'})") from None
    return study, study.user_attrs.get("objective", info.get("objective", "value"))
