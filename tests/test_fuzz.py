"""The fuzzer (issue 17): Hypothesis writes recipes, `--set` overrides, CSV files and text files, the CLI
runs on each in-process (`trainlab.cli.main`, as `python -m trainlab` would), and every outcome must be

- exit 0, or exit 2 with exactly one `trainlab: error:` line — never exit 1 ("internal error"), a
  traceback or a crash;
- no run directory left unmarked: every env.json under the output root says how its run ended.

Bounded for CI: a fixed number of examples per test (derandomized: a fixed seed per test),
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


# values a user would plausibly write, so that a good share of the generated recipes train
PLAUSIBLE = {"seed": [0, 1, 7], "data.val_fraction": [0.1, 0.2, 0.0], "data.test_fraction": [0.2, 0.3],
             "data.batch_size": [8, 16, 150], "data.eval_batch_size": [7, 64], "data.subset": [0.5, 100, 1.0],
             "data.preprocess": [["normalize"], []], "data.augment": [[], ["noise"]],
             "data.loader": ["auto", "memory"], "model.name": ["mlp", "linear"],
             "model.widths": [[8], [32, 16], []], "model.dropout": [0.0, 0.1, 0.5],
             "model.activation": ["relu", "gelu", "tanh"], "optim.lr": [0.1, 0.01, 1e-3],
             "optim.weight_decay": [0.0, 0.01], "optim.momentum": [0.9], "optim.l1": [1e-4],
             "schedule.warmup": [0.1, 2], "train.precision": ["auto", "fp32", "bf16"], "train.grad_clip": [1.0],
             "train.accumulate": [1, 2], "train.checkpoint_every": [3, 10], "train.log_every": [1, 5],
             "train.on_nonfinite": ["skip", "rollback", "stop"], "early_stopping": [{"patience": 1}],
             "early_stopping.patience": [0, 1], "output.plots": [True], "output.report": [True],
             "output.trackers": [["tensorboard"], []]}


def key_value():
    def for_key(k):
        wild = NAMED.get(k, value)
        good = st.sampled_from(PLAUSIBLE[k]) if k in PLAUSIBLE else wild
        return st.tuples(st.just(k), st.one_of(good, good, wild))
    return st.sampled_from(KEYS).flatmap(for_key)


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


def as_set_value(v) -> str:
    return v if isinstance(v, str) else yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("\n...")


override = st.one_of(key_value().map(lambda kv: (kv[0], as_set_value(kv[1]))),
                     key_value().map(lambda kv: (kv[0], as_set_value(kv[1]))),
                     st.tuples(override_key, override_value))


@fuzz_settings(100)
@given(sets=st.lists(override, min_size=1, max_size=3), raw=st.sampled_from([False] * 5 + [True]))
def test_fuzz_overrides(sets, raw, fuzz_cases):
    """`--set KEY=VALUE` with generated keys and values, on a recipe that trains."""
    args = []
    for key, val in sets:
        args += ["--set", val if raw else f"{key}={val}"]  # raw: an argument that may lack `=`
    with case_dir() as d:
        (d / "recipe.yaml").write_text(yaml.safe_dump(base_recipe()))
        rc, out, err = run_case(["train", "recipe.yaml", *args], d, fuzz_cases)
        check_outcome(rc, out, err, d / "runs", f"overrides: {args}")


# --- CSV files ----------------------------------------------------------------------------------------

odd_cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-5, 5),
                     st.sampled_from(["", "NA", "nan", "inf", "-inf", "x", "1,5", "[/x]", " 3 ", "?"]), words)
column_name = st.one_of(st.sampled_from(["a", "b", "c", "d", "size", "colour"]), texty)


@st.composite
def csv_table(draw):
    """A CSV a user might have: 0–4 features, numeric (now and then a missing or odd cell) or
    categorical, a target of 1–4 classes or numbers; and now and then damage: ragged rows, non-UTF-8
    bytes, no rows, no header. Most tables are well-formed, so most cases also train."""
    n_feat = draw(st.sampled_from([1, 2, 3, 4] * 3 + [0]))
    header = draw(st.lists(column_name, min_size=n_feat, max_size=n_feat,
                           unique_by=lambda c: c.strip().lower()).filter(lambda h: "y" not in h)) + ["y"]
    n_rows = draw(st.sampled_from([12, 20, 30, 40] * 3 + [0, 1, 2, 5]))
    numeric = [draw(st.sampled_from([True, True, True, False])) for _ in range(n_feat)]
    odd = draw(st.sampled_from([0.0] * 3 + [0.05, 0.3]))  # share of odd cells
    categories = draw(st.lists(texty, min_size=1, max_size=4))
    labels = draw(st.one_of(st.sampled_from([["cat", "dog"], [0, 1, 2], ["yes", "no", "maybe"], [1, 2]]),
                            st.lists(texty, min_size=1, max_size=4, unique=True),
                            st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True)))
    regression = draw(st.sampled_from([False, False, True]))
    rows = []
    for _ in range(n_rows):
        row = []
        for num in numeric:
            if draw(st.floats(0, 1)) < odd:
                row.append(draw(odd_cell))
            else:
                row.append(draw(st.floats(-10, 10, width=32)) if num else draw(st.sampled_from(categories)))
        row.append(draw(st.floats(-5, 5, width=32)) if regression else draw(st.sampled_from(labels)))
        rows.append(row)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    data = buf.getvalue().encode()
    damage = draw(st.sampled_from(["none"] * 12 + ["ragged_long", "ragged_short", "latin1", "empty", "header_only",
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
                                   "val_fraction": st.sampled_from([0.2, 0.2, 0.0, 0.3, 0.99]),
                                   "test_fraction": st.sampled_from([0.2, 0.2, 0.5, 0.0, 0.99]),
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
    labels = draw(st.one_of(st.sampled_from([["pos", "neg"], ["a", "b", "c"]]),
                            st.lists(texty, min_size=1, max_size=3, unique=True)))
    sentence = st.lists(st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "ünï", "[/x]"]),
                        max_size=8).map(" ".join)
    texts = draw(st.lists(st.tuples(st.one_of(sentence, sentence, words, st.sampled_from(["", " ", "\n"])),
                                    st.sampled_from(labels)), min_size=draw(st.sampled_from([0, 20, 20])),
                          max_size=30))
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["text", "label"])
        w.writerows(texts)
        data = buf.getvalue().encode()
    else:
        data = "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in texts).encode()
    damage = draw(st.sampled_from(["none"] * 9 + ["latin1", "bad_line", "missing_key"]))
    if damage == "latin1":
        data += "caf\xe9,x\n".encode("latin-1")
    elif damage == "bad_line":
        data += b"{not json\n" if fmt == "jsonl" else b'"unclosed,x\n'
    elif damage == "missing_key":
        data += b'{"txt": "a"}\n' if fmt == "jsonl" else b"only_one_field\n"
    return fmt, data, damage


@fuzz_settings(80)
@given(doc=text_file(), model=st.sampled_from(["rnn", "transformer"] * 3 + ["mlp"]),
       level=st.sampled_from(["word", "char"]), val_fraction=st.sampled_from([0.0, 0.2, 0.2, 0.9]))
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
