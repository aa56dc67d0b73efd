"""What a study leaves in its folder: best_recipe.yaml, trials.csv, plots/*.png, report.html (the
template tune_report.html, rendered by track/html.py), and the rich table of trials printed by
`trainlab tune` and `trainlab tune --show`."""
from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from rich.markup import escape
from rich.table import Table

from ..redact import redact_all
from ..track.html import figure, render
from ..track.rundir import atomic_write
from .study import direction_of, progress, retried_numbers

PLOTS = {  # file stem -> (title, optuna.visualization.matplotlib function)
    "optimization_history": ("Optimization history", "plot_optimization_history"),
    "param_importances": ("Parameter importances (fANOVA)", "plot_param_importances"),
    "parallel_coordinate": ("Parallel coordinates", "plot_parallel_coordinate"),
    "intermediate_values": ("Objective per epoch (pruned trials stop early)", "plot_intermediate_values"),
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def note(t: FrozenTrial, trials: list[FrozenTrial]) -> str:
    """Why a trial ended as it did, in a few words."""
    if t.state == TrialState.PRUNED:
        return f"pruned after epoch {t.last_step}" if t.last_step is not None else "pruned"
    retry_of = t.system_attrs.get("failed_trial")
    retry = f"retry of trial {retry_of}" if retry_of is not None else ""
    if t.state == TrialState.FAIL:
        again = next((u.number for u in trials if t.number in u.system_attrs.get("retry_history", [])), None)
        err = t.user_attrs.get("error") or "worker stopped (no heartbeat)"
        return "; ".join(x for x in (err, f"re-run as trial {again}" if again is not None else "", retry) if x)
    return retry


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def trials_table(study: optuna.Study, objective: str, limit: int | None = None) -> Table:
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    best = best_trial(study)
    # the study name, the objective, parameter paths and error notes come from the user: escaped
    table = Table(title=escape(f"study {study.study_name}: {objective} ({direction_of(study)})"), title_justify="left")
    for col in ("#", "state", objective, "epochs", "seconds", *names, "note"):
        table.add_column(escape(col), justify="right" if col not in ("state", "note") else "left")
    shown = trials if limit is None else trials[-limit:]
    for t in shown:
        mark = "*" if best is not None and t.number == best.number else ""
        value = t.value if t.state == TrialState.COMPLETE else (
            t.intermediate_values.get(t.last_step) if t.last_step is not None else None)
        table.add_row(f"{t.number}{mark}", t.state.name.lower(), _fmt(value), _fmt(t.user_attrs.get("epochs")),
                      _fmt(t.user_attrs.get("seconds")), *(escape(_fmt(t.params.get(n))) for n in names),
                      escape(note(t, trials)))
    return table


def best_recipe(study: optuna.Study) -> tuple[dict, FrozenTrial] | None:
    best = best_trial(study)
    if best is None or "recipe" not in best.user_attrs:
        return None
    return best.user_attrs["recipe"], best


def write_best_recipe(study: optuna.Study, path: Path, objective: str) -> FrozenTrial | None:
    """The best trial's resolved recipe: `trainlab train` on it reproduces the trial (same seed)."""
    found = best_recipe(study)
    if found is None:
        return None
    recipe, best = found
    head = (f"# Best trial {best.number} of study {study.study_name!r}: {objective} {best.value:.6g}\n"
            f"# Written by `trainlab tune` on {dt.datetime.now():%Y-%m-%d %H:%M}. The trial's run: "
            f"{best.user_attrs.get('run_dir', '?')}\n")
    atomic_write(path, head + yaml.safe_dump(recipe, sort_keys=False))
    return best


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    trials = study.get_trials(deepcopy=False)
    df = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params"))
    if len(df):
        df["epochs"] = [t.user_attrs.get("epochs") for t in trials]
        df["note"] = [note(t, trials) for t in trials]
        df["run_dir"] = [t.user_attrs.get("run_dir") for t in trials]
    atomic_write(path, df.to_csv(index=False))


def write_plots(study: optuna.Study, folder: Path, objective: str) -> tuple[dict[str, Path], dict[str, str]]:
    """PNG plots by Optuna's matplotlib visualization; returns written files and why others were skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written, skipped = {}, {}
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    for stem, (title, fn) in PLOTS.items():
        if not complete:
            skipped[stem] = "no complete trial"
            continue
        if stem == "param_importances" and len(complete) < 2:
            skipped[stem] = "fANOVA needs at least 2 complete trials"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kw = {"target_name": objective} if stem != "intermediate_values" else {}
                ax = getattr(ovm, fn)(study, **kw)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(8, 5)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
            plt.close(fig)
            path = folder / f"{stem}.png"
            atomic_write(path, buf.getvalue())
            written[stem] = path
        except Exception as e:  # noqa: BLE001 -- e.g. fANOVA on parameters that never varied: skip that plot
            plt.close("all")
            skipped[stem] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return written, skipped


def summary(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    p = progress(trials)
    best = best_trial(study)
    base = next((t for t in trials if t.user_attrs.get("baseline") and t.state == TrialState.COMPLETE), None)
    return {
        "study": study.study_name, "direction": direction_of(study), "finished": p.finished,
        "states": p.by_state, "retried": sorted(retried_numbers(trials)),
        "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params},
        "baseline": None if base is None else {"number": base.number, "value": base.value},
        **{k: redact_all(v) for k, v in study.user_attrs.items() if k in ("objective", "target_trials", "storage")},
    }


def write_report(study: optuna.Study, path: Path, objective: str, plots: dict[str, Path],
                 skipped: dict[str, str], space: dict, best_yaml: Path | None) -> None:
    """A self-contained study page: summary, plots (embedded PNG), trials, search space, best recipe."""
    s = summary(study)
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    rows = [[str(t.number), t.state.name.lower(), _fmt(t.value if t.state == TrialState.COMPLETE else None),
             _fmt(t.user_attrs.get("epochs")), _fmt(t.user_attrs.get("seconds")),
             *(_fmt(t.params.get(n)) for n in names), note(t, trials)] for t in trials]
    figures = [figure(p.read_bytes(), PLOTS[stem][0], alt=stem) for stem, p in plots.items()]
    best = s["best"]
    states = ", ".join(f"{n} {k}" for k, n in s["states"].items())
    lines = [f"{s['finished']} finished trials ({states}), {objective} to {s['direction']}."]
    if best:
        lines.append(f"Best: trial {best['number']}, {objective} {best['value']:.4f}.")
    if s["baseline"] and best:
        lines.append(f"The recipe as written (trial {s['baseline']['number']}): {s['baseline']['value']:.4f}.")
    recipe_text = best_yaml.read_text() if best_yaml and best_yaml.is_file() else "(no complete trial yet)"
    page = render("tune_report.html", study=s["study"], lines=lines, figures=figures,
                  skipped=[(PLOTS[k][0], why) for k, why in skipped.items()],
                  trials={"header": ["#", "state", objective, "epochs", "seconds", *names, "note"], "rows": rows},
                  space=yaml.safe_dump(space, sort_keys=False), best_recipe=recipe_text,
                  written=f"{dt.datetime.now():%Y-%m-%d %H:%M}")
    atomic_write(path, page)


def write_outputs(study: optuna.Study, folder: Path, objective: str, space: dict) -> dict[str, Any]:
    """Every study output; returns what was written (for the command's closing lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    best_path = folder / "best_recipe.yaml"
    best = write_best_recipe(study, best_path, objective)
    write_trials_csv(study, folder / "trials.csv")
    plots, skipped = write_plots(study, folder / "plots", objective)
    write_report(study, folder / "report.html", objective, plots, skipped, space, best_path if best else None)
    atomic_write(folder / "summary.json", json.dumps(summary(study), indent=2) + "\n")
    return {"best": best, "best_recipe": best_path if best else None, "plots": plots, "skipped": skipped,
            "report": folder / "report.html"}


def print_study(console, study: optuna.Study, objective: str, outputs: dict[str, Any] | None = None) -> None:
    """The table of trials and a few closing lines (what `trainlab tune` and `--show` print)."""
    table = trials_table(study, objective)
    if console.is_terminal:
        console.print(table)
    else:  # a log file is not 80 columns wide: print the table unsqueezed
        from rich.measure import Measurement

        width = console.width
        console.width = max(width, Measurement.get(console, console.options.update(width=1000), table).maximum)
        console.print(table)
        console.width = width
    s = summary(study)
    states = ", ".join(f"{n} {k}" for k, n in s["states"].items())
    target = f" of {s['target_trials']}" if "target_trials" in s else ""
    lines = [f"study {s['study']}: {s['finished']}{target} trials finished ({states})"]
    if s["best"]:
        params = "  ".join(f"{k}={_fmt(v)}" for k, v in s["best"]["params"].items())
        lines.append(f"best trial {s['best']['number']}: {objective} {s['best']['value']:.4f}  {params}")
    if s["baseline"]:
        lines.append(f"the recipe as written (trial {s['baseline']['number']}): {objective} "
                     f"{s['baseline']['value']:.4f}")
    if outputs:
        if outputs.get("best_recipe"):
            lines.append(f"best recipe: {outputs['best_recipe']}  (`trainlab train` it to reproduce trial "
                         f"{outputs['best'].number})")
        plots = ", ".join(p.name for p in outputs["plots"].values()) or "none"
        lines.append(f"report: {outputs['report']}  plots: {plots}")
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
