"""Start-up stays light (issue 18): what a fresh process has imported after `trainlab --help`, a usage
error, `import trainlab` and a training's first step. The tests look at sys.modules, never at a clock
(benchmarks/startup.py has the timings)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from trainlab.commands import COMMANDS

from .conftest import REPO

# what `trainlab --help` and a usage error must not import: each costs from ~0.1 s (tensorboard) to
# ~2 s (torchmetrics, through scipy.signal and matplotlib)
HEAVY = ("torch", "numpy", "scipy", "torchmetrics", "matplotlib", "optuna", "tensorboard", "pandas", "sklearn")

# runs the CLI in this process (as `python -m trainlab` does), then prints its exit status and the
# heavy top-level packages it left in sys.modules
CLI_PROBE = """
import json, os, runpy, sys
os.environ["TRAINLAB_FAST_EXIT"] = "0"  # the normal exit (SystemExit), so that this probe gets to print
heavy = set(sys.argv[1].split(","))
sys.argv = ["trainlab", *sys.argv[2:]]
try:
    runpy.run_module("trainlab", run_name="__main__", alter_sys=True)
    code = None
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "heavy": sorted({m.split(".")[0] for m in sys.modules} & heavy)}))
"""


def run_python(code: str, *args: str) -> str:
    """stdout of `python -c CODE ARGS` in a fresh process with this checkout's src/ first."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    return out.stdout


def cli_probe(*argv: str) -> dict:
    return json.loads(run_python(CLI_PROBE, ",".join(HEAVY), *argv).splitlines()[-1])


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    ([], 2),  # no command: the help, exit 2
    *[([name, "--help"], 0) for name in COMMANDS.names()],  # every command, a new one too
    (["no-such-command"], 2),
    (["train", "--no-such-flag"], 2),
    (["list", "no-such-kind"], 2),
    (["train"], 2),  # no recipe: a usage error raised in run(), before trainlab.api is imported
    (["train", "--resume", "some/run", "--set", "optim.lr=0.1"], 2),
    (["tune"], 2),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_help_and_usage_errors_import_nothing_heavy(argv, code):
    got = cli_probe(*argv)
    assert got == {"code": code, "heavy": []}


def test_import_trainlab_imports_no_torch():
    got = run_python("import json, sys, trainlab; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    assert not set(json.loads(got)) & set(HEAVY)


def test_public_names_still_import_from_the_package():
    out = run_python("""
import sys, trainlab
from trainlab import LoadedRun, Recipe, Run, RunDir, Trainer, TrainlabError, evaluate, load_recipe, load_run, resume, train
import trainlab.api as api
import trainlab.train.checkpoint  # the subpackage of the same name, imported after the function was read
assert train is api.train and trainlab.train is api.train, trainlab.train
assert load_run is api.load_run and evaluate is api.evaluate and resume is api.resume
assert Trainer is sys.modules["trainlab.train"].Trainer
from trainlab.recipe import Recipe as R
assert Recipe is R
assert set(trainlab.__all__) <= set(dir(trainlab))
try:
    trainlab.no_such_name
except AttributeError as e:
    print("AttributeError", e)
""")
    assert "AttributeError" in out and "no_such_name" in out


def test_the_subpackage_first_then_the_function():
    # a process whose first import is the subpackage (`from trainlab.train import Trainer`) still gets the
    # function from `trainlab.train`
    out = run_python("""
from trainlab.train import Trainer
import trainlab, trainlab.api
print(trainlab.train is trainlab.api.train, Trainer.__module__)
""")
    assert out.split() == ["True", "trainlab.train.trainer"]


FIRST_STEP = """
import json, os, sys
import trainlab
from trainlab.events import Callback

class First(Callback):
    def on_step(self, trainer, logs):
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))), flush=True)
        os._exit(0)

recipe = {"name": "startup", "seed": 0, "data": {"source": "synthetic:linear", "batch_size": 64},
          "model": {"name": "linear"}, "loss": {"name": "mse"}, "optim": {"name": "sgd", "lr": 0.1},
          "train": {"epochs": 1, "log_every": 1}}
trainlab.train(recipe, run_dir=sys.argv[1], progress=False, callbacks=[First()])
"""


def test_training_reaches_its_first_step_without_metrics_or_plot_libraries(tmp_path):
    # torchmetrics comes with the first validation, matplotlib with the end-of-run plots
    later = ("scipy", "torchmetrics", "matplotlib", "optuna", "pandas", "sklearn")
    out = run_python(FIRST_STEP, str(tmp_path / "run"), ",".join(later))
    assert json.loads(out.splitlines()[-1]) == []


def test_list_and_reference_answer_without_torch_from_the_catalogue_snapshot(tmp_path):
    # the first call builds the registries (torch and all) and stores what it shows; the second is
    # read from the snapshot and prints the very same text without importing torch
    probe = CLI_PROBE.replace('print(json.dumps({"code"', 'sys.stdout.flush(); print(json.dumps({"code"')
    for argv in (["list"], ["list", "models"], ["reference"]):
        env = {"TRAINLAB_CACHE": str(tmp_path / "-".join(argv))}
        outs = []
        for _ in range(2):
            e = dict(os.environ, PYTHONPATH=str(REPO / "src"), **env)
            r = subprocess.run([sys.executable, "-c", probe, ",".join(HEAVY), *argv], env=e, capture_output=True,
                               text=True, timeout=300, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, r.stderr
            *text, last = r.stdout.splitlines()
            outs.append(("\n".join(text), json.loads(last)))
        (cold, cold_probe), (warm, warm_probe) = outs
        assert cold == warm and cold.strip()
        assert "torch" in cold_probe["heavy"] and warm_probe["heavy"] == [] and warm_probe["code"] in (0, None), argv


def test_a_snapshot_of_other_sources_or_a_damaged_one_is_never_used(tmp_path, monkeypatch):
    from trainlab import catalog

    monkeypatch.setenv("TRAINLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(catalog, "registries_loaded", lambda: False)  # as in a fresh `trainlab list`
    made = []
    monkeypatch.setattr(catalog, "source_digest", lambda: "aaa")
    assert catalog.cached("k", lambda: made.append(1) or {"v": 1}) == {"v": 1}
    assert catalog.cached("k", lambda: made.append(1) or {"v": 2}) == {"v": 1} and len(made) == 1
    monkeypatch.setattr(catalog, "source_digest", lambda: "bbb")  # trainlab or torch changed
    assert catalog.cached("k", lambda: made.append(1) or {"v": 3}) == {"v": 3} and len(made) == 2
    (tmp_path / "catalog-k-bbb.json").write_text('{"val')  # torn or garbled
    assert catalog.cached("k", lambda: made.append(1) or {"v": 4}) == {"v": 4} and len(made) == 3
    assert json.loads((tmp_path / "catalog-k-bbb.json").read_text()) == {"value": {"v": 4}}


def test_the_source_digest_follows_the_source_files(tmp_path, monkeypatch):
    import shutil

    from trainlab import catalog

    pkg = tmp_path / "trainlab"
    shutil.copytree(REPO / "src" / "trainlab", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(catalog, "__file__", str(pkg / "catalog.py"))
    before = catalog.source_digest()
    assert catalog.source_digest() == before
    with open(pkg / "losses.py", "a") as f:
        f.write("\n# a new loss\n")
    assert catalog.source_digest() != before


def test_an_entry_registered_in_this_process_is_listed_although_a_snapshot_exists(tmp_path, monkeypatch, capsys):
    from trainlab.cli import main
    from trainlab.losses import LOSSES

    e = dict(os.environ, PYTHONPATH=str(REPO / "src"), TRAINLAB_CACHE=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "trainlab", "list", "losses"], env=e, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and list(tmp_path.glob("catalog-list-*.json"))  # the snapshot is written
    monkeypatch.setenv("TRAINLAB_CACHE", str(tmp_path))
    LOSSES.add("snapshot_probe_loss", lambda: None, "a loss only this process knows")
    try:
        assert main(["list", "losses"]) == 0
        assert "snapshot_probe_loss" in capsys.readouterr().out
    finally:
        LOSSES.remove("snapshot_probe_loss")
