"""The `trainlab` command: thin; parses arguments and calls the Python API."""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Callable

from rich.console import Console
from rich.table import Table

from .errors import TrainlabError

console = Console()
if not console.is_terminal:  # logs and pipes: one line per message, never wrapped at 80 columns
    console.soft_wrap = True
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(fn):
    COMMANDS[fn.__name__.removeprefix("cmd_").replace("_", "-")] = fn
    return fn


def _registries():
    from .data import AUGMENTS, SOURCES
    from .losses import LOSSES
    from .models import MODELS
    from .optim import OPTIMIZERS, SCHEDULES

    return {"sources": SOURCES, "models": MODELS, "losses": LOSSES, "optimizers": OPTIMIZERS,
            "schedules": SCHEDULES, "augments": AUGMENTS}


@command
def cmd_train(args) -> int:
    from .api import resume, train

    if args.resume:
        if args.recipe or args.set or args.run_dir:
            raise TrainlabError("train --resume RUN_DIR continues a run with its own recipe: "
                                "give no recipe, --set or --run-dir with it")
        run = resume(args.resume)
    elif args.recipe:
        run = train(args.recipe, args.set, args.run_dir)
    else:
        raise TrainlabError("train: give a recipe file, or --resume RUN_DIR")
    m = run.metrics
    from .metrics import HEADLINE

    shown = ", ".join(f"{k} {m[k]:.4f}" for k in HEADLINE if isinstance(m.get(k), float))
    if run.stop_reason:
        console.print(run.stop_reason)
    console.print(f"test ({m['checkpoint']} checkpoint, epoch {m['epoch']}): {shown}")
    from .perf import summary_line  # model FLOP utilization and the thread count (issue 9)

    env = run.dir.read_json("env.json")
    mfu_line = summary_line(run.history, env.get("threads"), env.get("precision"))
    if mfu_line:
        console.print(mfu_line, highlight=False)
    console.print(f"run directory: {run.path}")
    return 0


@command
def cmd_evaluate(args) -> int:
    from .api import evaluate
    from .track.tables import metrics_table, per_class_table

    m = evaluate(args.run_dir, args.split, args.checkpoint)
    console.print(metrics_table(m, f"{args.split} split, {args.checkpoint} checkpoint (epoch {m['epoch']}), "
                                   f"{m['samples']} samples"))
    if m.get("per_class"):
        console.print(per_class_table(m["per_class"]))
    console.print(f"wrote {args.run_dir}/eval/{args.split}.json")
    return 0


@command
def cmd_report(args) -> int:
    from .api import report

    console.print(f"wrote {report(args.run_dir, args.output)}")
    return 0


@command
def cmd_runs(args) -> int:
    from .track import runs as index
    from .track.tables import runs_table, side_by_side

    if args.compare:
        c = index.compare(args.compare, args.root, args.plot)
        if args.json:
            print(json.dumps(c, indent=2, default=str))
            return 0
        diff = c["differences"]
        console.print(side_by_side("recipe differences", "key", c["runs"], diff) if diff
                      else "the recipes are identical")
        console.print(side_by_side("final metrics", "metric", c["runs"], c["metrics"], numbers=True))
        console.print(f"validation curves: {c['plot']}")
        return 0
    rows = [index.summary_row(r) for r in index.find_runs(args.root)]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    # a runs table is wide: piped output is not cut to rich's default of 80 columns
    out = console if console.is_terminal else Console(width=max(console.width, 150))
    out.print(runs_table(rows, f"runs in {args.root}") if rows else f"no run directories under {args.root}")
    if any(r["stale"] for r in rows):
        console.print("† env.json says running, but its process no longer exists (killed?)")
    return 0


@command
def cmd_lr_find(args) -> int:
    from .lr_find import lr_find

    res, path = lr_find(args.recipe, args.set, args.run_dir)
    console.print(res.stopped)
    for name, lr in (("steepest descent", res.steepest), ("minimum / 10", res.min_div10)):
        console.print(f"suggested lr ({name}): {lr:.3g}" if lr is not None else f"no {name} suggestion")
    console.print(f"wrote {path}/lr_find.json and {path}/plots/lr_find.png")
    return 0


@command
def cmd_list(args) -> int:
    regs = _registries()
    kinds = [args.kind] if args.kind else list(regs)
    for kind in kinds:
        reg = regs[kind]
        table = Table(title=kind, show_header=True, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        table.add_column("options")
        for e in reg.entries():
            alias = f" ({', '.join(e.aliases)})" if e.aliases else ""
            table.add_row(e.name + alias, e.description, ", ".join(reg.option_names(e.name)))
        console.print(table)
    return 0


@command
def cmd_reference(args) -> int:
    from .docgen import reference, write_into

    if args.write:
        changed = write_into(args.write)
        console.print(f"{args.write}: {'updated' if changed else 'already up to date'}")
    else:
        print(reference(), end="")
    return 0


@command
def cmd_summary(args) -> int:
    import json

    from pathlib import Path

    from .recipe import load_recipe
    from .summary import human, human_bytes, summarize

    if Path(args.recipe).is_dir():  # a run directory: its trained model, without its data
        if args.set:
            raise TrainlabError("summary RUN_DIR shows the run as trained: give no --set with it")
        s = summarize(run_dir=args.recipe, max_depth=args.depth)
    else:
        s = summarize(load_recipe(args.recipe, args.set), max_depth=args.depth)
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    table = Table(title=f"{s['model']} on inputs {tuple(s['input_shape'])} → {s['outputs']} outputs",
                  title_justify="left")
    for col, just in (("layer", "left"), ("type", "left"), ("output shape", "left"), ("params", "right"),
                      ("FLOPs/sample", "right")):
        table.add_column(col, justify=just)
    for r in s["layers"]:
        shape = "(" + ", ".join(map(str, r["output_shape"])) + ")" if isinstance(r["output_shape"], list) else r["output_shape"]
        table.add_row("  " * (r["depth"] - 1) + r["name"].split(".")[-1] if r["depth"] > 1 else r["name"], r["type"],
                      shape, f"{r['params']:,}", human(r["flops_forward"]) if r["flops_forward"] else "")
    console.print(table)
    m = s["memory_bytes"]
    console.print(f"parameters: {s['params_total']:,} total, {s['params_trainable']:,} trainable")
    console.print(f"FLOPs per sample: forward {human(s['flops_forward_per_sample'])} ({s['flops_forward_per_sample']:,}), "
                  f"training step {human(s['flops_train_step_per_sample'])} ({s['flops_train_step_per_sample']:,})")
    console.print(f"FLOPs per training step at batch size {s['batch_size']}: {human(s['flops_train_step'])}")
    console.print(f"memory: weights {human_bytes(m['weights'])}, buffers {human_bytes(m['buffers'])}, "
                  f"gradients {human_bytes(m['gradients'])}, optimizer state ({s['optimizer']}) "
                  f"{human_bytes(m['optimizer_state'])}, activations saved for backward ≈ "
                  f"{human_bytes(m['activations_per_batch'])} per batch")
    return 0


@command
def cmd_tune(args) -> int:
    from .tune import show, tune
    from .tune.report import print_study

    if args.show:
        print_study(console, *show(args.show, args.storage, args.run_dir))
        return 0
    if not args.recipe:
        raise TrainlabError("tune: give a RECIPE to tune, or --show STUDY")
    res = tune(args.recipe, args.trials, args.space, args.set, args.run_dir, args.workers, args.timeout,
               args.study, args.storage, args.sampler, args.pruner, args.objective, args.direction,
               args.heartbeat, say=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True))
    print_study(console, *show(str(res.folder), args.storage), outputs=res.outputs)
    if res.status == "interrupted":
        console.print(f"interrupted: {res.finished} finished trials kept; run the same command again to continue")
        return 130
    return 0


@command
def cmd_data(args) -> int:
    from pathlib import Path

    from .describe import describe, print_summary, write_augment_png
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, args.set)
    bundle, summary = describe(recipe)
    print_summary(console, summary)
    png = write_augment_png(bundle, recipe, Path(args.out) if args.out else Path(recipe.output.root) / f"{recipe.name}-data")
    console.print(f"wrote {png}" if png else "no augmented sample written (no image augmentation in the recipe)",
                  highlight=False)
    return 0


@command
def cmd_compare(args) -> int:
    from .compare import compare
    from .compare.output import str_target
    from .compare.table import rich_table

    res = compare(args.recipe, args.optimizers, args.seeds, args.target, args.lr_search, args.budget_epochs,
                  args.workers, args.out, args.quick, args.set, args.eval_every,
                  say=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True))
    s = res.data["settings"]
    out = console if console.is_terminal else Console(width=max(console.width, 160))
    out.print(rich_table(res.rows, s["metric"], str_target(s["target"]),
                         f"{res.data['recipe']}: {len(s['seeds'])} seed(s), {s['budget_epochs']} epochs"))
    console.print(f"wrote {res.folder}/compare.json, table.md, plots/ and report.html")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainlab", description="A deep-learning training and optimization lab.")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error (anywhere on the line)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a recipe; writes a run directory")
    t.add_argument("recipe", nargs="?", help="recipe YAML file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set optim.lr=0.01 (repeatable)")
    t.add_argument("--run-dir", help="write the run here instead of <output.root>/<name>-<time>")
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted or crashed run from its newest complete checkpoint")

    e = sub.add_parser("evaluate", help="evaluate a run's checkpoint on a split; writes eval/<split>.json")
    e.add_argument("run_dir", help="run directory")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--checkpoint", default="best", choices=["best", "last"])

    r = sub.add_parser("report", help="write the run's self-contained report.html")
    r.add_argument("run_dir", help="run directory")
    r.add_argument("--output", help="write the page here instead of RUN_DIR/report.html")

    rs = sub.add_parser("runs", help="table of the runs under ROOT; --compare RUN_A RUN_B ... side by side")
    rs.add_argument("root", nargs="?", default="runs", help="folder holding run directories (default: runs)")
    rs.add_argument("--compare", nargs="+", metavar="RUN",
                    help="compare these runs (paths, or names under ROOT): recipe differences, final "
                         "metrics and one overlay plot of their validation curves")
    rs.add_argument("--plot", help="where --compare writes its plot (default: compare.png beside the first run)")
    rs.add_argument("--json", action="store_true", help="print JSON instead of tables")

    f = sub.add_parser("lr-find", help="LR range test: suggests a learning rate, writes plots/lr_find.png")
    f.add_argument("recipe", help="recipe YAML file")
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, e.g. --set optim.name=sgd (repeatable)")
    f.add_argument("--run-dir", help="write lr_find.json and plots/ here instead of <output.root>/<name>-lr-find-<time>")

    sm = sub.add_parser("summary", help="layer table, parameter counts, FLOPs and memory of a recipe's model "
                                        "or a trained run's")
    sm.add_argument("recipe", help="recipe YAML file, or a run directory (its model, without its data)")
    sm.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    sm.add_argument("--depth", type=int, default=2, help="show modules nested up to this depth (default 2)")
    sm.add_argument("--json", action="store_true", help="print the summary as JSON")

    tu = sub.add_parser("tune", help="search hyperparameters with Optuna over the recipe's `search:` space")
    tu.add_argument("recipe", nargs="?", help="recipe YAML file with a search: section (or pass --space)")
    tu.add_argument("--trials", type=int, default=20, help="finished trials the study should reach (default 20)")
    tu.add_argument("--space", metavar="FILE", help="YAML search space to use instead of the recipe's search:")
    tu.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe field of the base recipe (repeatable)")
    tu.add_argument("--run-dir", help="study folder (default <output.root>/tune/<study>)")
    tu.add_argument("--workers", type=int, default=1, help="trial processes on this machine (default 1)")
    tu.add_argument("--timeout", type=float, help="start no new trial after this many seconds")
    tu.add_argument("--study", help="study name (default: the recipe's name)")
    tu.add_argument("--storage", help="SQLAlchemy URL (default: SQLite file study.db in the study folder)")
    tu.add_argument("--sampler", default="tpe", choices=["tpe", "random", "grid", "cmaes"])
    tu.add_argument("--pruner", default="median", choices=["median", "asha", "hyperband", "none"])
    tu.add_argument("--objective", default="auto", help="per-epoch metric to optimize, e.g. val.accuracy "
                                                        "(default: val.accuracy or val.loss by task)")
    tu.add_argument("--direction", default="auto", choices=["auto", "maximize", "minimize"])
    tu.add_argument("--heartbeat", type=int, default=30,
                    help="seconds between a running trial's heartbeats; a trial silent for twice this is re-run")
    tu.add_argument("--show", metavar="STUDY", help="print a study (folder or name) from its storage and exit")

    ls = sub.add_parser("list", help="list registered sources, models, losses, optimizers, schedules, augments")
    ls.add_argument("kind", nargs="?", choices=["sources", "models", "losses", "optimizers", "schedules", "augments"])
    ref = sub.add_parser("reference", help="print the recipe reference (markdown) generated from the schema")
    ref.add_argument("--write", metavar="FILE", help="replace the reference block in FILE (e.g. README.md)")

    da = sub.add_parser("data", help="what a recipe's data section resolves to: splits, classes, statistics, "
                                     "and augmented samples in plots/augment.png")
    da.add_argument("recipe", help="recipe YAML file")
    da.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    da.add_argument("--out", help="folder for plots/augment.png (default <output.root>/<name>-data)")

    cp = sub.add_parser("compare", help="compare optimizers, each at its best LR, over seeds: time to target, "
                                        "table, convergence plots, report.html")
    cp.add_argument("recipe", help="recipe YAML file (the workload: data, model, loss, schedule, budget)")
    cp.add_argument("--optimizers", default="sgd,adam,adamw,rmsprop,adagrad,adadelta,adafactor,muon",
                    help="comma-separated optimizer names (default: %(default)s)")
    cp.add_argument("--seeds", type=int, help="seeds per optimizer: recipe seed, +1, ... (default 3; 1 with --quick)")
    cp.add_argument("--target", metavar="METRIC=VALUE",
                    help="per-epoch target, e.g. val.accuracy=0.88 or val.loss=0.01 (min/max from the metric)")
    cp.add_argument("--lr-search", default="grid", choices=["grid", "lr-find", "none"],
                    help="how each optimizer's LR is found: a short log-grid search, the LR range test, or none")
    cp.add_argument("--budget-epochs", type=int, help="epochs per run (default: the recipe's train.epochs)")
    cp.add_argument("--workers", type=int, default=1, help="runs in parallel processes (default 1)")
    cp.add_argument("--eval-every", type=int, metavar="STEPS",
                    help="check the target on the validation split every STEPS optimizer steps of the final runs "
                         "(default: about 10 checks per epoch; 0: epoch ends only)")
    cp.add_argument("--out", help="output folder (default <output.root>/compare/<name>-<time>)")
    cp.add_argument("--quick", action="store_true",
                    help="demo mode: 1 seed, at most 3 epochs, 5000 training samples, 3-point LR grids")
    cp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe field of the base recipe (repeatable)")

    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere, so every subcommand has it
    parser = build_parser()
    args = parser.parse_args([a for a in argv if a != "--debug"])
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - the CLI edge: every error becomes one line and a status
        return report_error(e, debug)


def exit_status(e: BaseException) -> tuple[int, str]:
    """The exit status and the one line for an error: 2 for what the user can fix, 1 for a bug in trainlab."""
    import errno

    import torch

    from .train.signals import TrainingInterrupted

    if isinstance(e, TrainingInterrupted):
        where = getattr(e, "run_dir", None)
        return e.exit_code, f"{e}" + (f"; resume with: trainlab train --resume {where}" if where else "")
    if isinstance(e, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(e, TrainlabError):
        return 2, f"error: {e}"  # the message names the recipe key or the file
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return 2, ("error: out of memory; lower data.batch_size or data.eval_batch_size, use a smaller model, "
                   "or set train.device: cpu")
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return 2, f"error: disk full{where}; free some space (completed checkpoints are intact)"
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return 2, f"error: permission denied{where}; choose a writable output.root or --run-dir"
        return 2, f"error: {e.strerror or e}{where}"
    first = (str(e).splitlines() or [""])[0]
    return 1, f"internal error: {type(e).__name__}: {first} (run again with --debug for the traceback)"


def report_error(e: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(e)
    code, line = exit_status(e)
    print(f"trainlab: {line}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
