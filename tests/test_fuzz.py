"""The fuzzer (issue 17): Hypothesis writes recipes, `--set` overrides, CSV files and text files, the CLI
runs on each in-process (`trainlab.cli.main`, as `python -m trainlab` would), and every outcome must be

- exit 0, or exit 2 with exactly one `trainlab: error:` line — never exit 1 ("internal error"), a
  traceback or a crash;
- no run directory left unmarked: every env.json under the output root says how its run ended.

Bounded for CI: a fixed number of examples per test (derandomized, so every run tries the same cases),
no deadline per example, and a watchdog that dumps the stacks and ends the process should one case hang.
More cases: `TRAINLAB_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py` (then also random, not the fixed set).
The number of cases run and their exit statuses are printed at the end of `make test` (conftest.py).
"""
from __future__ import annotations

import contextlib
import csv
import faulthandler
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainlab.cli import main

EXAMPLES = int(os.environ.get("TRAINLAB_FUZZ_EXAMPLES", "0"))
FIXED = EXAMPLES == 0


def fuzz_settings(n: int):
    """`n` examples, the same ones every run (unless TRAINLAB_FUZZ_EXAMPLES asks for more, random)."""
    return settings(max_examples=EXAMPLES or n, deadline=None, derandomize=FIXED, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# --- running the CLI on one case ---------------------------------------------------------------------

def run_case(argv: list[str], cwd: Path, cases) -> tuple[int, str, str]:
    """Run `trainlab ARGV` in `cwd`; (exit status, stdout, stderr). Restores the process-wide torch
    settings a recipe may change (threads, deterministic algorithms), so cases stay independent."""
    out, err = io.StringIO(), io.StringIO()
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    faulthandler.dump_traceback_later(300, exit=True)  # a hung case ends the run with every stack
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:  # argparse's own usage errors
                rc = e.code if isinstance(e.code, int) else 2
    finally:
        faulthandler.cancel_dump_traceback_later()
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    cases[rc] += 1
    return rc, out.getvalue(), err.getvalue()


def check_outcome(rc: int, out: str, err: str, root: Path, what: str) -> None:
    context = f"{what}\n--- stderr ---\n{err[-3000:]}\n--- stdout ---\n{out[-1500:]}"
    assert rc in (0, 2), f"exit {rc}\n{context}"
    assert "Traceback (most recent call last)" not in out + err, context
    errors = [line for line in err.splitlines() if line.startswith("trainlab: error:")]
    if rc == 2:
        usage = err.lstrip().startswith("usage:")  # argparse: usage plus one error line
        assert usage or len(errors) == 1, f"expected one error line, got {len(errors)}\n{context}"
    else:
        assert not errors, context
    for env in root.rglob("env.json"):  # every run says how it ended
        status = json.loads(env.read_text()).get("status")
        assert status in ("finished", "failed", "interrupted"), f"{env}: status {status!r}\n{context}"


@contextlib.contextmanager
def case_dir():
    """A fresh folder per generated case (a pytest fixture would be shared by all of a test's cases)."""
    with tempfile.TemporaryDirectory(prefix="trainlab-fuzz-") as d:
        yield Path(d)


# --- strategies ---------------------------------------------------------------------------------------

# text a user might type, plus what breaks naive code: markup, paths, separators, quotes, unicode
nasty = st.sampled_from(["", " ", "[/x]", "[bold]b", "[link=https://evil.example]x[/link]", "../../escaped",
                         "a/b", "..", ".", "-", "x,y", 'q"uote', "tab\tbed", "ünï", "日本", "\u200b", "nan",
                         "inf", "-1", "0", "1e400", "None", "null", "true", "~", "{a: 1}", "[1, 2"])
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
texty = st.one_of(nasty, words)

number = st.one_of(st.integers(-3, 70), st.sampled_from([0.0, 0.5, 0.99, 1.0, 1.5, 2.0, -0.5, 1e-9, 1e9]),
                   st.floats(allow_nan=True, allow_infinity=True, width=32))
leaf = st.one_of(number, texty, st.booleans(), st.none(), st.lists(st.integers(-2, 16), max_size=3))
value = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.sampled_from(["a", "name", "lr"]), inner,
                                                                   max_size=2)), max_leaves=4)

# keys a recipe has (and a few it does not), with values that stay bounded in time: epochs stays small
KEYS = ["name", "seed", "data.source", "data.val_fraction", "data.test_fraction", "data.batch_size",
        "data.eval_batch_size", "data.subset", "data.preprocess", "data.augment", "data.loader",
        "data.on_device", "data.memory_budget_mb", "model.name", "model.widths", "model.dropout",
        "model.activation", "model.norm", "model.dim", "model.heads", "model.depth", "model.hidden",
        "model.cell", "model.channels", "loss.name", "loss.label_smoothing", "optim.name", "optim.lr",
        "optim.weight_decay", "optim.momentum", "optim.betas", "optim.l1", "optim.lr_mult", "schedule.name",
        "schedule.warmup", "schedule.step_size", "schedule.gamma", "train.device", "train.precision",
        "train.grad_clip", "train.grad_clip_value", "train.accumulate", "train.monitor", "train.metrics",
        "train.log_every", "train.checkpoint_every", "train.on_nonfinite", "train.nonfinite_skips",
        "train.restore_best", "early_stopping", "early_stopping.monitor", "early_stopping.patience",
        "early_stopping.mode", "output.plots", "output.trackers", "output.report", "bogus", "data.bogus",
        "train.bogus.deeper"]
SOURCES = ["sklearn:iris", "sklearn:wine", "sklearn:diabetes", "synthetic:classification", "synthetic:linear",
           "csv", "text_csv", "image_folder", "bogus", ""]
MODELS = ["mlp", "linear", "convnet", "lenet5", "resnet", "rnn", "transformer", "gpt", "custom", "bogus"]
NAMED = {"data.source": st.sampled_from(SOURCES), "model.name": st.sampled_from(MODELS),
         "optim.name": st.sampled_from(["sgd", "adam", "adamw", "lion", "muon", "lbfgs", "adafactor", "bogus"]),
         "schedule.name": st.sampled_from(["cosine", "one_cycle", "step", "reduce_on_plateau", "bogus"]),
         "loss.name": st.sampled_from(["cross_entropy", "mse", "auto", "bogus"]),
         "train.monitor": st.sampled_from(["auto", "val.loss", "val.accuracy", "val.bogus", "train.loss",
                                           "test.accuracy", "accuracy", ""]),
         "early_stopping.monitor": st.sampled_from(["val.loss", "val.acuracy", "val.r2", "loss"]),
         "train.device": st.sampled_from(["cpu", "auto", "cuda", "mps", "tpu", "cuda:7"]),
         "train.metrics": st.lists(st.sampled_from(["accuracy", "f1_macro", "r2", "top3_accuracy", "bogus"]),
                                   max_size=3)}


def key_value():
    return st.sampled_from(KEYS).flatmap(lambda k: st.tuples(st.just(k), NAMED.get(k, value)))


def base_recipe(source: str = "sklearn:iris") -> dict:
    return {"name": "fuzz", "data": {"source": source, "batch_size": 32},
            "model": {"name": "mlp", "widths": [16]}, "train": {"epochs": 1, "device": "cpu"},
            "output": {"root": "runs", "plots": False, "report": False, "trackers": []}}


def set_path(recipe: dict, key: str, val) -> None:
    *parents, last = key.split(".")
    node = recipe
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[last] = val


# --- recipes ------------------------------------------------------------------------------------------

@fuzz_settings(120)
@given(changes=st.lists(key_value(), min_size=1, max_size=4),
       damage=st.sampled_from(["none"] * 8 + ["latin1", "binary", "not_yaml", "list", "empty"]))
def test_fuzz_recipes(changes, damage, fuzz_cases):
    """Recipes with keys set to generated values (and recipe files that are not YAML or not text)."""
    recipe = base_recipe()
    for key, val in changes:
        set_path(recipe, key, val)
    text = yaml.safe_dump(recipe, allow_unicode=True).encode()
    text = {"none": text, "latin1": text + "# caf\xe9\n".encode("latin-1"), "binary": b"\x00\xff\xfe" + text,
            "not_yaml": b"data: {source: [\n", "list": b"- 1\n- 2\n", "empty": b""}[damage]
    with case_dir() as d:
        (d / "recipe.yaml").write_bytes(text)
        rc, out, err = run_case(["train", "recipe.yaml"], d, fuzz_cases)
        check_outcome(rc, out, err, d / "runs", f"recipe ({damage}): {recipe}")


# --- --set overrides ----------------------------------------------------------------------------------

override_key = st.one_of(st.sampled_from(KEYS), st.sampled_from(["", ".", "data.", ".lr", "a..b", "[x]", "=",
                                                                 "model.widths.0", "data.source.x"]))
override_value = st.one_of(nasty, st.sampled_from(["[-1]", "[8, 8]", "{", "}", "[", "0.99", "-0", "1e-400",
                                                   "2", "mlp", "sgd", "cpu", "true", "[val.loss]"]), words)


@fuzz_settings(100)
@given(sets=st.lists(st.tuples(override_key, override_value), min_size=1, max_size=3),
       raw=st.booleans())
def test_fuzz_overrides(sets, raw, fuzz_cases):
    """`--set KEY=VALUE` with generated keys and values, on a recipe that trains."""
    args = []
    for key, val in sets:
        args += ["--set", val if raw and not key else f"{key}={val}"]  # raw: an argument without `=`
    with case_dir() as d:
        (d / "recipe.yaml").write_text(yaml.safe_dump(base_recipe()))
        rc, out, err = run_case(["train", "recipe.yaml", *args], d, fuzz_cases)
        check_outcome(rc, out, err, d / "runs", f"overrides: {args}")


# --- CSV files ----------------------------------------------------------------------------------------

cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-5, 5),
                 st.sampled_from(["", "NA", "nan", "inf", "-inf", "x", "1,5", "[/x]", " 3 "]), words)


@st.composite
def csv_table(draw):
    """A CSV a user might have: 0–4 features of mixed types, a target of 1–4 classes or numbers, missing
    and odd cells, and now and then damage: ragged rows, non-UTF-8 bytes, no rows, no header."""
    n_feat = draw(st.integers(0, 4))
    header = [draw(st.one_of(st.sampled_from(["a", "b", "c", "d"]), texty)) for _ in range(n_feat)] + ["y"]
    n_rows = draw(st.integers(0, 24))
    numeric = [draw(st.booleans()) for _ in range(n_feat)]
    labels = draw(st.one_of(st.lists(texty, min_size=1, max_size=4), st.lists(st.integers(0, 3), min_size=1,
                                                                              max_size=4)))
    regression = draw(st.booleans())
    rows = []
    for _ in range(n_rows):
        row = [draw(st.floats(-10, 10, width=32)) if num and draw(st.integers(0, 9)) else draw(cell)
               for num in numeric]
        row.append(draw(st.floats(-5, 5, width=32)) if regression else draw(st.sampled_from(labels)))
        rows.append(row)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode()
    damage = draw(st.sampled_from(["none"] * 6 + ["ragged_long", "ragged_short", "latin1", "empty", "header_only",
                                                  "no_newline_junk"]))
    lines = data.split(b"\n")
    if damage == "ragged_long" and len(lines) > 2:
        lines[1] += b",extra,fields"
    elif damage == "ragged_short" and len(lines) > 2:
        lines[-2] = lines[-2].split(b",")[0]
    elif damage == "latin1" and len(lines) > 2:
        lines[1] += "\xe9".encode("latin-1")
    elif damage == "empty":
        lines = []
    elif damage == "header_only":
        lines = lines[:1]
    elif damage == "no_newline_junk":
        lines.append(b"\x00\x01")
    return b"\n".join(lines), damage


@fuzz_settings(150)
@given(table=csv_table(), command=st.sampled_from(["train"] * 4 + ["data"]),
       opts=st.fixed_dictionaries({"missing": st.sampled_from(["mean", "median", "most_frequent", "drop"]),
                                   "val_fraction": st.sampled_from([0.0, 0.1, 0.3, 0.99]),
                                   "test_fraction": st.sampled_from([0.0, 0.2, 0.5, 0.99]),
                                   "batch_size": st.sampled_from([1, 4, 64]),
                                   "task": st.sampled_from(["auto", "auto", "classification", "regression"])}))
def test_fuzz_csv(table, command, opts, fuzz_cases):
    """`trainlab train` / `trainlab data` on generated CSV files."""
    data, damage = table
    recipe = base_recipe("csv")
    recipe["data"].update(path="t.csv", target="y", **opts)
    with case_dir() as d:
        (d / "t.csv").write_bytes(data)
        (d / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        what = f"csv ({damage}, {opts}):\n{data[:600]!r}"
        rc, out, err = run_case([command, "recipe.yaml"], d, fuzz_cases)
        check_outcome(rc, out, err, d / "runs", what)
        if rc == 0 and command == "train":  # the trained run, read back by the commands that read runs
            run = next((d / "runs").iterdir())
            for argv in (["evaluate", str(run), "--split",
                          "test" if opts["test_fraction"] else "val" if opts["val_fraction"] else "train"],
                         ["runs", "runs"], ["summary", str(run)]):
                rc, out, err = run_case(argv, d, fuzz_cases)
                check_outcome(rc, out, err, d / "runs", f"{' '.join(argv[:1])} of {what}")


# --- text files ---------------------------------------------------------------------------------------

@st.composite
def text_file(draw):
    """Labelled texts as CSV or JSONL: empty and whitespace texts, unicode, markup in labels, 1–3 classes;
    now and then a line that is not JSON, a missing key, or non-UTF-8 bytes."""
    fmt = draw(st.sampled_from(["csv", "jsonl"]))
    labels = draw(st.lists(texty, min_size=1, max_size=3, unique=True))
    texts = draw(st.lists(st.tuples(st.one_of(words, st.sampled_from(["", " ", "\n", "the cat sat",
                                                                      "[/x] y"])),
                                    st.sampled_from(labels)), max_size=20))
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["text", "label"])
        w.writerows(texts)
        data = buf.getvalue().encode()
    else:
        data = "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in texts).encode()
    damage = draw(st.sampled_from(["none"] * 5 + ["latin1", "bad_line", "missing_key"]))
    if damage == "latin1":
        data += "caf\xe9,x\n".encode("latin-1")
    elif damage == "bad_line":
        data += b"{not json\n" if fmt == "jsonl" else b'"unclosed,x\n'
    elif damage == "missing_key":
        data += b'{"txt": "a"}\n' if fmt == "jsonl" else b"only_one_field\n"
    return fmt, data, damage


@fuzz_settings(80)
@given(doc=text_file(), model=st.sampled_from(["rnn", "transformer", "mlp"]),
       level=st.sampled_from(["word", "char"]), val_fraction=st.sampled_from([0.0, 0.2, 0.9]))
def test_fuzz_text(doc, model, level, val_fraction, fuzz_cases):
    """`trainlab train` on generated labelled-text files (text_csv, text_jsonl)."""
    fmt, data, damage = doc
    recipe = base_recipe(f"text_{fmt}")
    recipe["data"].update(path=f"t.{fmt}", level=level, max_len=8, val_fraction=val_fraction, test_fraction=0.2)
    recipe["model"] = {"name": model} if model != "mlp" else {"name": "mlp", "widths": [8]}
    with case_dir() as d:
        (d / f"t.{fmt}").write_bytes(data)
        (d / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        rc, out, err = run_case(["train", "recipe.yaml"], d, fuzz_cases)
        check_outcome(rc, out, err, d / "runs", f"text ({fmt}, {damage}, {model}, {level}):\n{data[:600]!r}")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
