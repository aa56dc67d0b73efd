"""The foundation's acceptance points, through the CLI as a user runs it."""
import json

from safetensors.torch import load_file

from ..conftest import needs_fmnist


def only_run(tmp_path):
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_linear_regression_recovers_slope(cli, tmp_path):
    from pathlib import Path

    recipe = Path(__file__).parents[2] / "recipes" / "linear_regression.yaml"
    r = cli("train", recipe, "--set", f"output.root={tmp_path / 'runs'}")
    assert r.returncode == 0, r.stderr
    run = only_run(tmp_path)
    w = load_file(str(run / "checkpoints" / "best" / "model.safetensors"))
    assert abs(float(w["1.weight"]) - 2.0) < 0.05 and abs(float(w["1.bias"])) < 0.05
    for f in ("recipe.yaml", "env.json", "metrics.jsonl", "plots/curves.png", "eval/test.json",
              "checkpoints/last/manifest.json", "checkpoints/best/model.safetensors"):
        assert (run / f).is_file(), f
    test = json.loads((run / "eval" / "test.json").read_text())
    assert test["r2"] > 0.95 and test["samples"] == 400
    env = json.loads((run / "env.json").read_text())
    assert env["status"] == "finished" and env["seed"] == 0


def test_bad_value_exits_2_with_one_line_and_writes_nothing(cli, write_recipe, tmp_path):
    p = write_recipe({"data": {"source": "synthetic:linear"}, "model": {"name": "linear"},
                      "optim": {"lr": "fast"}})
    r = cli("train", p)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["trainlab: error: optim.lr: expected a number, got 'fast'"]
    assert not (tmp_path / "runs").exists()


def test_misspelled_model_suggests(cli, write_recipe):
    p = write_recipe({"data": {"source": "synthetic:linear"}})
    r = cli("train", p, "--set", "model.name=mlpp")
    assert r.returncode == 2 and "did you mean 'mlp'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_recipe_and_run_dir_exit_2(cli, tmp_path):
    assert cli("train", tmp_path / "none.yaml").returncode == 2
    r = cli("evaluate", tmp_path)
    assert r.returncode == 2 and "not a run directory" in r.stderr


def test_list_shows_every_kind(cli):
    r = cli("list")
    assert r.returncode == 0
    for name in ("fashion_mnist", "synthetic:linear", "mlp", "convnet", "cross_entropy", "adamw", "one_cycle"):
        assert name in r.stdout


@needs_fmnist
def test_fashion_mnist_mlp_reaches_088_and_evaluate_reproduces_it(cli, tmp_path):
    from pathlib import Path

    recipe = Path(__file__).parents[2] / "recipes" / "fashion_mnist_mlp.yaml"
    r = cli("train", recipe, "--set", f"output.root={tmp_path / 'runs'}")
    assert r.returncode == 0, r.stderr
    run = only_run(tmp_path)
    at_end = json.loads((run / "eval" / "test.json").read_text())
    assert at_end["samples"] == 10000 and at_end["accuracy"] >= 0.88
    r = cli("evaluate", run)
    assert r.returncode == 0, r.stderr
    again = json.loads((run / "eval" / "test.json").read_text())
    assert again["accuracy"] == at_end["accuracy"] and again["loss"] == at_end["loss"]
