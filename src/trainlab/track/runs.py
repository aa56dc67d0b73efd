"""The runs index: summaries of run directories (`trainlab runs`) and side-by-side comparison.

Reads only what runs wrote (recipe.yaml, env.json, metrics.jsonl, eval/test.json); never writes
into a run. A run's status is env.json's "status" (running / finished / failed / interrupted),
except that a "running" run whose process is gone is reported as "interrupted" with
`stale: true`: a run killed by SIGKILL, a power cut or an OOM kill never gets to update env.json.
The process is gone when env.json's host is this machine and its pid no longer exists, or now
belongs to a process that started at another time than the recorded one (`pid_start`), i.e. a
reused pid. Runs written on another host keep "running": they cannot be checked from here.
A run whose recipe.yaml, env.json, metrics.jsonl or eval/test.json cannot be read is listed with
status "damaged" and the reason (`damaged`), and the listing goes on.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import RunDirError
from .process import process_start
from .rundir import RunDir

MAX_DEPTH = 3  # runs may sit in sub-folders (e.g. one per study), not deeper


@dataclass
class RunSummary:
    path: Path
    recipe: dict[str, Any]
    env: dict[str, Any]
    records: list[dict[str, Any]] = field(repr=False, default_factory=list)
    test: dict[str, Any] | None = None
    damaged: str | None = None  # why some of its files could not be read

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def task(self) -> str:
        return (self.env.get("data") or {}).get("task") or (
            "classification" if any("accuracy" in r for r in self.records) else "regression")

    @property
    def monitor(self) -> str:
        """The metric that picked the best checkpoint (train.monitor, resolved like the trainer does)."""
        from ..metrics import resolve_monitor

        return resolve_monitor(self.recipe, self.task, any(r.get("split") == "val" for r in self.records))

    def best(self) -> tuple[str, float | None]:
        """(monitor, the value of the epoch checkpoints/best holds): env.json's `best` (the trainer's
        pick, where a tie within one validation sample went to the lower val.loss); for runs from
        before it, the best value over the epochs logged so far."""
        from ..metrics import higher_is_better

        picked = self.picked()
        if picked is not None and isinstance(picked.get("value"), (int, float)):
            return str(picked.get("monitor") or self.monitor), float(picked["value"])
        split, _, key = self.monitor.partition(".")
        vals = [r[key] for r in self.records if r.get("split") == split and key in r and
                (split != "train" or "time" in r)]
        if not vals:
            return self.monitor, None
        return self.monitor, (max(vals) if higher_is_better(self.monitor) else min(vals))

    def picked(self) -> dict[str, Any] | None:
        """env.json's `best`: monitor, epoch, value, val.loss and the reason it was picked (None for
        runs from before it, or a run that has not finished an epoch)."""
        b = self.env.get("best")
        return b if isinstance(b, dict) else None

    def epochs(self) -> tuple[int, int]:
        done = max((r.get("epoch", 0) for r in self.records if r.get("split") in ("train", "val")
                    and "step" in r and ("time" in r or r.get("split") == "val")), default=0)
        return int(self.env.get("epochs_run", done) or done), int((self.recipe.get("train") or {}).get("epochs", 0))

    def status(self) -> tuple[str, bool]:
        """(status, stale): see the module docstring."""
        if self.damaged:
            return "damaged", False
        status = self.env.get("status", "unknown")
        if status == "running" and process_gone(self.env):
            return "interrupted", True
        return status, False

    def duration_s(self) -> float | None:
        start, end = _time(self.env.get("start")), _time(self.env.get("end"))
        if start is None:
            return None
        if end is None:
            if self.status()[0] != "running":  # died without an end time: the epochs it logged
                times = [r["time"] for r in self.records if r.get("split") == "train" and "time" in r]
                return sum(times) if times else None
            end = dt.datetime.now()
        return (end - start).total_seconds()

    def test_metric(self) -> tuple[str, float | None]:
        if not self.test:
            return "", None
        key = "accuracy" if "accuracy" in self.test else "r2" if "r2" in self.test else "loss"
        return key, self.test.get(key)


def process_gone(env: dict[str, Any]) -> bool:
    pid, host = env.get("pid"), env.get("host")
    if not isinstance(pid, int) or host != platform.node():
        return False  # not ours to judge: written before pids were recorded, or on another machine
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by someone else
    start = env.get("pid_start")
    now = process_start(pid)
    return start is not None and now is not None and now != start


def _time(s: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(s) if s else None
    except (TypeError, ValueError):
        return None


def load_run(path: str | Path) -> RunSummary:
    """What a run wrote. Files that cannot be read count as empty and are named in `damaged`."""
    rd = RunDir.open(path)
    problems: list[str] = []
    try:
        recipe = yaml.safe_load(rd.recipe_path.read_text())
        if not isinstance(recipe, dict):
            problems.append("recipe.yaml: not a mapping")
            recipe = {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        problems.append(f"recipe.yaml: {_first_line(e)}")
        recipe = {}
    env = _read_json(rd.path / "env.json", problems) or {}
    try:
        records = rd.metrics()
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"metrics.jsonl: {_first_line(e)}")
        records = []
    if any(not isinstance(r, dict) for r in records):
        problems.append("metrics.jsonl: lines that are not records")
        records = [r for r in records if isinstance(r, dict)]
    test = _read_json(rd.path / "eval" / "test.json", problems)
    return RunSummary(rd.path, recipe, env, records, test, "; ".join(problems) or None)


def _read_json(p: Path, problems: list[str] | None = None) -> dict[str, Any] | None:
    """The JSON object in `p`; None if missing or unreadable (then noted in `problems`)."""
    if not p.exists():
        return None
    try:
        obj = json.loads(p.read_text())
        if isinstance(obj, dict):
            return obj
        why = "not a JSON object"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        why = _first_line(e)
    if problems is not None:
        problems.append(f"{p.parent.name + '/' if p.parent.name == 'eval' else ''}{p.name}: {why}")
    return None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def find_runs(root: str | Path) -> list[RunSummary]:
    """Every run directory under `root` (or `root` itself), oldest first."""
    root = Path(root)
    if not root.is_dir():
        raise RunDirError(f"{root}: no such folder")
    if (root / "recipe.yaml").is_file():
        return [load_run(root)]
    found, frontier = [], [root]
    for _ in range(MAX_DEPTH):
        nxt = []
        for d in frontier:
            for child in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if (child / "recipe.yaml").is_file():
                    found.append(load_run(child))
                else:
                    nxt.append(child)
        frontier = nxt
    return sorted(found, key=lambda r: (str(r.env.get("start") or ""), r.name))


def resolve_run(arg: str, root: str | Path) -> RunSummary:
    """A run given as a path, or as a folder name under `root`."""
    for cand in (Path(arg), Path(root) / arg):
        if (cand / "recipe.yaml").is_file():
            return load_run(cand)
    raise RunDirError(f"{arg}: not a run directory (looked for {Path(arg) / 'recipe.yaml'} "
                      f"and {Path(root) / arg / 'recipe.yaml'})")


def summary_row(r: RunSummary) -> dict[str, Any]:
    """One row of `trainlab runs` (also its --json form); a run whose files hold values of the wrong
    kinds is a "damaged" row, never an error that ends the listing."""
    try:
        return {**_row(r), "damaged": r.damaged}
    except (AttributeError, TypeError, ValueError, KeyError) as e:  # e.g. `optim: 3` in recipe.yaml
        why = f"{type(e).__name__}: {_first_line(e)}"
        return {"run": r.name, "path": str(r.path), "date": "", "model": "?", "optimizer": "?", "epochs": 0,
                "epochs_planned": 0, "monitor": "", "best": None, "best_epoch": None, "best_reason": None,
                "test_metric": "", "test": None, "baseline": None,
                "duration_s": None, "status": "damaged", "stale": False,
                "damaged": "; ".join(filter(None, [r.damaged, why]))}


def _row(r: RunSummary) -> dict[str, Any]:
    optim = r.recipe.get("optim") or {}
    monitor, best = r.best()
    test_key, test = r.test_metric()
    status, stale = r.status()
    done, planned = r.epochs()
    picked = r.picked() or {}
    base = (r.test or {}).get("baseline")
    return {"run": r.name, "path": str(r.path), "date": (r.env.get("start") or "")[:16].replace("T", " "),
            "model": (r.recipe.get("model") or {}).get("name", "?"),
            "optimizer": f"{optim.get('name', '?')} lr={optim.get('lr', '?')}",
            "epochs": done, "epochs_planned": planned, "monitor": monitor, "best": best,
            "best_epoch": picked.get("epoch"), "best_reason": picked.get("reason"),
            "test_metric": test_key, "test": test,
            "baseline": base.get(test_key) if isinstance(base, dict) else None,
            "duration_s": r.duration_s(), "status": status, "stale": stale}


# --- comparison --------------------------------------------------------------------------------
def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} -> {'optim.lr': 0.1}; lists stay values."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


MISSING = "—"


def recipe_differences(runs: list[RunSummary]) -> dict[str, list[Any]]:
    """Recipe keys whose values are not the same in every run: key -> value per run (MISSING if absent)."""
    flat = [flatten(r.recipe) for r in runs]
    keys = sorted({k for f in flat for k in f})
    diff = {}
    for k in keys:
        vals = [f.get(k, MISSING) for f in flat]
        if any(v != vals[0] for v in vals[1:]):
            diff[k] = vals
    return diff


def final_metrics(runs: list[RunSummary]) -> dict[str, list[Any]]:
    """Rows of the comparison's metrics table: best val metric, test scalars, epochs, time, status."""
    rows: dict[str, list[Any]] = {}
    monitors = {r.best()[0] for r in runs}
    for m in sorted(monitors):
        rows[f"best {m}"] = [r.best()[1] if r.best()[0] == m else None for r in runs]
    if any(r.picked() for r in runs):
        rows["best epoch"] = [(r.picked() or {}).get("epoch") for r in runs]
    keys: list[str] = []
    for r in runs:
        for k, v in (r.test or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epoch", "seconds", "samples") \
                    and k not in keys:
                keys.append(k)
    for k in keys:
        rows[f"test {k}"] = [(r.test or {}).get(k) for r in runs]
        base = [((r.test or {}).get("baseline") or {}).get(k) for r in runs]
        if any(isinstance(b, (int, float)) for b in base):  # the trivial predictor, beside the model
            rows[f"test {k} (baseline)"] = base
    rows["epochs"] = [r.epochs()[0] for r in runs]
    rows["duration_s"] = [r.duration_s() for r in runs]
    rows["status"] = [r.status()[0] for r in runs]
    return rows


def compare(args: list[str], root: str | Path = "runs", plot: str | Path | None = None) -> dict[str, Any]:
    """`trainlab runs --compare`: recipe differences, final metrics, and an overlay plot of the
    runs' validation curves (written to `plot`, default compare.png beside the first run)."""
    from .plots import overlay_figure, save_png

    runs = [resolve_run(a, root) for a in args]
    if len(runs) < 2:
        raise RunDirError("runs --compare: give at least two runs")
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # same folder name under different roots: use the paths
        names = [str(r.path) for r in runs]
    path = Path(plot) if plot else runs[0].path.parent / "compare.png"
    save_png(overlay_figure({n: r.records for n, r in zip(names, runs)}), path)
    return {"runs": names, "paths": [str(r.path) for r in runs], "differences": recipe_differences(runs),
            "metrics": final_metrics(runs), "plot": str(path)}
