"""The Optuna side: storage with heartbeats, samplers, pruners, and what counts as a finished trial.

Storage is an `RDBStorage` on any SQLAlchemy URL; by default an SQLite file in the study folder.
Two things a plain `optuna.create_study(storage=url)` gets wrong for us:

- SQLite under several writers answers "database is locked" once a writer waits longer than
  the driver's 5 s busy timeout (Optuna issue #820): we give it 60 s, and retry our own
  idempotent writes.
- A trial whose worker died stays RUNNING forever. With a heartbeat (`heartbeat_interval`) a
  trial that has not beaten for `grace_period` is failed by the next worker that looks, and
  `RetryHeartbeatStaleTrialCallback` (the successor of the deprecated RetryFailedTrialCallback)
  queues a copy with the same parameters.

Claiming a trial ("are fewer than N trials finished or running? then ask for one") must be
atomic across workers, or two workers each start the N-th trial. It runs under a lock: a file
lock beside an SQLite file, an advisory lock on PostgreSQL and MySQL.
"""
from __future__ import annotations

import contextlib
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import TrainlabError
from ..recipe import SearchSpace
from ..redact import redact

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "asha", "hyperband", "none")
MAX_RETRY = 2           # a trial whose worker died is re-run at most this many times
SQLITE_BUSY_TIMEOUT = 60


class TuneError(TrainlabError):
    """A tuning flag, storage or study is wrong; the message names it."""


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # ask() warns that heartbeats belong to study.optimize(); our workers run the same heartbeat
    # thread around each trial themselves (worker.run_trial)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def sqlite_path(url: str) -> Path | None:
    """The database file of an sqlite:/// URL, else None."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url[len("sqlite:///"):].split("?")[0]
    return Path(rest) if rest and rest != ":memory:" else None


def open_storage(url: str, heartbeat: int | None = 30) -> optuna.storages.RDBStorage:
    """An RDBStorage with heartbeats and a retry of trials whose worker died. Raises TuneError."""
    quiet_optuna()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=heartbeat,
            grace_period=2 * heartbeat if heartbeat else None,
            heartbeat_stale_trial_callback=(optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
                                            if heartbeat else None))
    except ImportError as e:  # the URL is used to connect, never shown: its password redacted
        raise TuneError(f"--storage {redact(url)}: the database driver is not installed ({redact(str(e))})") from None
    except Exception as e:  # noqa: BLE001 -- sqlalchemy ArgumentError, OperationalError ...: one line
        first = redact((str(e).splitlines() or [""])[0])
        raise TuneError(f"--storage {redact(url)}: cannot open ({type(e).__name__}: {first})") from None


def with_retry(fn: Callable, *args, tries: int = 6, **kwargs):
    """Call an idempotent storage operation, retrying while the database is locked."""
    for i in range(tries):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # StorageInternalError wraps sqlalchemy's OperationalError
            if "database is locked" not in f"{e} {e.__cause__}" or i == tries - 1:
                raise
            time.sleep(0.5 * 2 ** i)


@contextlib.contextmanager
def claim_lock(storage: optuna.storages.RDBStorage, study_name: str):
    """Serialize trial claims across processes (and machines, on a database server)."""
    url = storage.url
    path = sqlite_path(url)
    if path is not None:
        import fcntl

        with open(path.with_name(path.name + ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    dialect = storage.engine.dialect.name
    if dialect not in ("postgresql", "mysql", "mariadb"):
        yield  # no lock known for this database: a claim race can start one trial too many
        return
    from sqlalchemy import text

    key = zlib.crc32(f"trainlab-tune:{study_name}".encode())
    with storage.engine.connect() as conn:
        if dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        else:
            conn.execute(text("SELECT GET_LOCK(:k, 600)"), {"k": str(key)})
        try:
            yield
        finally:
            if dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            else:
                conn.execute(text("SELECT RELEASE_LOCK(:k)"), {"k": str(key)})
            conn.commit()


def fail_stale(study: optuna.Study) -> None:
    """Fail trials whose worker stopped beating (and queue their retries)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_retry(optuna.storages.fail_stale_trials, study)


# --- samplers and pruners ---------------------------------------------------------------------------
class _GridSampler(optuna.samplers.GridSampler):
    # GridSampler.after_trial calls study.stop(), which only works inside study.optimize();
    # our workers ask and tell themselves and check `is_exhausted` before each claim instead.
    def after_trial(self, study, trial, state, values) -> None:
        pass


def make_sampler(name: str, space: SearchSpace, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():  # multivariate/group/constant_liar are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _make_sampler(name, space, seed, n_trials)


def _make_sampler(name: str, space: SearchSpace, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # a short study should not spend 10 trials (Optuna's default) on random start-up
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, min(10, n_trials // 3)),
                                          multivariate=True, group=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _GridSampler(space.grid(), seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise TuneError("--sampler cmaes needs the `cmaes` package (pip install cmaes)") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise TuneError(f"--sampler {name!r}: expected one of {', '.join(SAMPLERS)}")


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise TuneError(f"--pruner {name!r}: expected one of {', '.join(PRUNERS)}")


def sampler_seed(seed: int, worker: int, started: int) -> int:
    """Distinct per worker, host and study size at start, so a resumed or second worker does not
    replay the first one's random draws."""
    import socket

    return zlib.crc32(f"{seed}:{worker}:{started}:{socket.gethostname()}".encode())


# --- counting -----------------------------------------------------------------------------------------
@dataclass
class Progress:
    finished: int      # complete + pruned + failed (failed ones that were retried do not count)
    running: int
    waiting: int
    by_state: dict[str, int]


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def progress(trials: list[FrozenTrial]) -> Progress:
    retried = retried_numbers(trials)
    finished = sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                   or (t.state == TrialState.FAIL and t.number not in retried))
    by_state: dict[str, int] = {}
    for t in trials:
        by_state[t.state.name.lower()] = by_state.get(t.state.name.lower(), 0) + 1
    return Progress(finished, sum(t.state == TrialState.RUNNING for t in trials),
                    sum(t.state == TrialState.WAITING for t in trials), by_state)


def direction_of(study: optuna.Study) -> str:
    return "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
