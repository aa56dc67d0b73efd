"""One tuning worker: claim a trial, train it as a full trainlab run, record the outcome.

It runs inside the `trainlab tune` process (`--workers 1`) or as a child process started with
`CHILD` (below), reading its settings as JSON on stdin. A trial's outcome
is a recorded Optuna state — complete, pruned or failed with its error — never a crash of the
study (as in optuna's own `study/_optimize.py`).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import TrainlabError
from ..train import signals
from ..train.callbacks import Callback
from ..recipe import SearchSpace, parse_space, set_path
from ..redact import redact
from .study import (
    claim_lock,
    fail_stale,
    make_pruner,
    make_sampler,
    open_storage,
    progress,
    quiet_optuna,
    sampler_seed,
    with_retry,
)


@dataclass
class TuneSettings:
    """Everything a worker needs (JSON-able, so child processes get it on stdin)."""

    recipe: dict            # the validated base recipe, without its search section
    space: dict             # the search section
    study: str
    storage: str
    study_dir: str
    trials: int             # finished trials the study should reach
    sampler: str = "tpe"
    pruner: str = "median"
    objective: str = "val.accuracy"
    direction: str = "maximize"
    heartbeat: int = 30
    workers: int = 1
    deadline: float | None = None   # wall-clock time after which no new trial starts


class ObjectiveError(TrainlabError):
    """The objective metric is not logged: every trial would fail the same way, so the study stops."""


class ReportCallback(Callback):
    """Reports the objective to Optuna after every epoch; raises TrialPruned when the pruner says so."""

    def __init__(self, trial: optuna.Trial, objective: str, maximize: bool):
        self.trial, self.objective, self.maximize = trial, objective, maximize
        self.best: float | None = None
        self.epochs = 0

    def on_epoch_end(self, trainer, logs):
        if self.objective not in logs:
            logged = ", ".join(sorted(k for k in logs if k.startswith(("train.", "val."))))
            raise ObjectiveError(f"--objective {self.objective!r} is not logged by this recipe; logged: {logged}")
        value, epoch = float(logs[self.objective]), int(logs["epoch"])
        self.epochs = epoch
        if not math.isnan(value) and (self.best is None or (value > self.best if self.maximize else value < self.best)):
            self.best = value
        with_retry(self.trial.report, value, epoch)
        # after the last epoch the run is complete: pruning it then would only throw the result away
        if epoch < trainer.epochs and not trainer.should_stop and with_retry(self.trial.should_prune):
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {self.objective} {value:.4f}")


def trial_recipe(base: dict, values: dict[str, Any], workers: int) -> dict:
    """The base recipe with the sampled values set; threads split between local workers."""
    raw = json.loads(json.dumps(base))
    for path, v in values.items():
        set_path(raw, path, v)
    if workers > 1 and not (raw.get("train") or {}).get("threads"):
        # two workers each using every core collapse under contention (FACTS.md); recorded in
        # the trial's recipe so best_recipe.yaml reproduces it exactly
        set_path(raw, "train.threads", max(1, (os.cpu_count() or 1) // workers))
    return raw


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _tell(study: optuna.Study, trial: optuna.Trial, say: Callable, **kw) -> bool:
    try:
        with_retry(study.tell, trial, **kw)
        return True
    except ValueError as e:
        if "Cannot tell" not in str(e):
            raise
        say(f"trial {trial.number}: already marked failed by another worker (its heartbeat was lost); "
            f"result not recorded")
        return False


def _is_interrupt(e: BaseException) -> bool:
    """Ctrl-C: a KeyboardInterrupt, or a trainer's own stop on a signal (also a BaseException, not an Exception)."""
    return not isinstance(e, (Exception, SystemExit, GeneratorExit))


def _set_attrs(trial: optuna.Trial, **attrs: Any) -> None:
    try:
        for k, v in attrs.items():
            with_retry(trial.set_user_attr, k, v)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # failed meanwhile by another worker (lost heartbeat); _tell says so


def _interrupted(study: optuna.Study, trial: optuna.Trial, say: Callable) -> None:
    """Record a trial stopped by Ctrl-C as failed, and queue a copy so a re-run trains it again."""
    _set_attrs(trial, error="interrupted (Ctrl-C)")
    if _tell(study, trial, say, state=TrialState.FAIL):
        frozen = study._storage.get_trial(trial._trial_id)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, frozen)


def run_trial(study: optuna.Study, trial: optuna.Trial, s: TuneSettings, space: SearchSpace,
              say: Callable) -> str:
    """Train one trial; returns its state name. Interrupts (Ctrl-C) and ObjectiveError propagate."""
    from optuna.storages._heartbeat import get_heartbeat_thread  # the heartbeat study.optimize uses

    from ..api import train
    from ..recipe import load_recipe
    from ..track.rundir import RunDir

    run_dir = Path(s.study_dir) / "trials" / f"{trial.number:04d}"
    cb = ReportCallback(trial, s.objective, s.direction == "maximize")
    t0 = time.perf_counter()
    values: dict[str, Any] = {}
    fatal: BaseException | None = None
    with get_heartbeat_thread(trial._trial_id, study._storage):
        try:
            for k, v in {"run_dir": str(run_dir), "worker": f"{socket.gethostname()}:{os.getpid()}",
                         "error": None}.items():
                with_retry(trial.set_user_attr, k, v)
            values = space.sample(trial, s.recipe)
            recipe = load_recipe(trial_recipe(s.recipe, values, s.workers))
            with_retry(trial.set_user_attr, "recipe", recipe.to_dict())
            train(recipe, run_dir=run_dir, progress=False, callbacks=[cb])
            if cb.best is None:
                raise ValueError(f"{s.objective} was NaN in every epoch")
            state, note, tell = "complete", f"{s.objective} {cb.best:.4f}", {"values": cb.best}
        except optuna.TrialPruned as e:
            state, note, tell = "pruned", str(e), {"state": TrialState.PRUNED}
            if (run_dir / "env.json").is_file():
                with RunDir(run_dir).lock() as rd:  # the trial's run: one writer at a time
                    rd.update_env(status="pruned", error=None, stop_reason=str(e))
        except Exception as e:  # noqa: BLE001 -- any error fails this trial, never the study
            error = redact(f"{type(e).__name__}: {e}".splitlines()[0])[:500]  # stored in the study
            _set_attrs(trial, error=error)
            state, note, tell = "failed", error, {"state": TrialState.FAIL}
            fatal = e if isinstance(e, ObjectiveError) else None
        except BaseException as e:
            if _is_interrupt(e):
                _interrupted(study, trial, say)
            raise
        seconds = time.perf_counter() - t0
        _set_attrs(trial, seconds=round(seconds, 2), epochs=cb.epochs)
        _tell(study, trial, say, **tell)
    if fatal is not None:
        raise fatal
    params = "  ".join(f"{k}={_fmt(v)}" for k, v in values.items())
    say(f"trial {trial.number} {state}: {note}  ({cb.epochs} epochs, {seconds:.1f} s)  {params}")
    return state


@contextlib.contextmanager
def deferred_sigint():
    """Hold Ctrl-C until the block ends: a claim interrupted half-way would leave a trial RUNNING
    that no worker owns."""
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
    if main:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if main:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_worker(s: TuneSettings, index: int = 0, say: Callable = print, parent_pid: int | None = None,
               poll: float = 1.0) -> str:
    """Claim and run trials until the study has `s.trials` finished ones (or time runs out).

    Returns why it stopped: done, exhausted (grid), timeout, orphaned, or interrupted (Ctrl-C).
    """
    quiet_optuna()
    storage = open_storage(s.storage, s.heartbeat)
    space = parse_space(s.space, s.recipe, probe=False)
    study = optuna.load_study(study_name=s.study, storage=storage)
    started = len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(s.sampler, space, sampler_seed(s.recipe.get("seed", 0), index, started), s.trials)
    study.pruner = make_pruner(s.pruner, int(s.recipe["train"]["epochs"]))
    target = s.trials
    if s.sampler == "grid":  # every grid point once, not a random repeat
        target = min(target, len(study.sampler._all_grids))
    trial = None
    noting = threading.current_thread() is threading.main_thread()
    if noting:  # Ctrl-C is noted before it is raised: see signals.note
        previous = signal.signal(signal.SIGINT, _note_and_raise)
    try:
        while True:
            if signals.take_noted() is not None:  # a Ctrl-C whose KeyboardInterrupt was swallowed
                return "interrupted"
            if s.deadline is not None and time.time() >= s.deadline:
                return "timeout"
            if parent_pid is not None and os.getppid() != parent_pid:
                return "orphaned"
            with deferred_sigint(), claim_lock(storage, s.study):
                fail_stale(study)
                p = progress(with_retry(study.get_trials, deepcopy=False))
                if p.finished >= target:
                    return "done" if target == s.trials else "exhausted"
                if p.finished + p.running < target:
                    trial = study.ask()
                    # a RUNNING trial that never beat is never found stale: beat before anything else
                    if s.heartbeat:
                        storage.record_heartbeat(trial._trial_id)
            if trial is None:  # the rest are running elsewhere: wait for them to finish or go stale
                time.sleep(poll)
                continue
            run_trial(study, trial, s, space, say)
            trial = None
    except BaseException as e:
        if not _is_interrupt(e):
            raise
        if trial is not None and with_retry(study._storage.get_trial, trial._trial_id).state == TrialState.RUNNING:
            _interrupted(study, trial, say)
        return "interrupted"
    finally:
        if noting:
            signal.signal(signal.SIGINT, previous)
            signals.take_noted()


def _note_and_raise(signum, frame) -> None:
    signals.note(signum)
    raise KeyboardInterrupt


# Child processes start with this: a Ctrl-C that arrives while torch is still importing is noted
# (not raised half-way through an import) and honoured once the worker is ready.
CHILD = ("import signal, sys; got = []; signal.signal(signal.SIGINT, lambda *a: got.append(1)); "
         "from trainlab.tune.worker import main; sys.exit(main(got))")


def main(interrupted: list | None = None) -> int:
    """Child-process entry: settings as JSON on stdin, worker index as the argument."""
    index = int(sys.argv[1])
    s = TuneSettings(**json.loads(sys.stdin.read()))
    prefix = f"[worker {index}] "
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:
        return 130
    try:
        why = run_worker(s, index, lambda m: print(prefix + m, flush=True), parent_pid=os.getppid())
    except TrainlabError as e:
        print(f"trainlab: error: {e}", file=sys.stderr, flush=True)
        return 2
    return 130 if why == "interrupted" else 0


def settings_json(s: TuneSettings) -> str:
    return json.dumps(asdict(s))


if __name__ == "__main__":
    sys.exit(main())
