"""The comparison lab's pieces: fairness by construction (same batches and initial weights per seed
across optimizers), the target and optimizer arguments, the LR grids and the table's ranking."""
import hashlib

import pytest
import torch

from tests.conftest import FMNIST, needs_fmnist
from trainlab.compare.protocol import (
    CompareError,
    lr_grid,
    lr_grid_point,
    parse_optimizers,
    parse_target,
    run_recipe,
)
from trainlab.compare.runs import _bundle
from trainlab.compare.table import markdown_table, summarize
from trainlab.errors import RecipeError
from trainlab.recipe import load_recipe
from trainlab.train import Trainer

ADDITION = {"name": "add", "seed": 3, "data": {"source": "synthetic:addition", "n": 300, "batch_size": 16},
            "model": {"name": "linear"}, "loss": {"name": "mse"},
            "optim": {"name": "adam", "lr": 0.01, "betas": [0.8, 0.99]}, "train": {"epochs": 1, "threads": 1}}
FASHION = {"name": "fm", "seed": 0, "data": {"source": "fashion_mnist", "root": str(FMNIST), "subset": 1500,
                                              "preprocess": [{"normalize": "standard"}], "batch_size": 128},
           "model": {"name": "mlp", "widths": [32]}, "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4},
           "schedule": {"name": "one_cycle"}, "train": {"epochs": 1, "threads": 1}}


def first_epoch_batches(base: dict, optimizer: str, lr: float, seed: int) -> tuple[list[str], list[torch.Tensor]]:
    """Train one epoch as `trainlab compare` does; hashes of the batches the trainer actually trained
    on, and the weights it started from."""
    recipe = load_recipe(run_recipe(load_recipe(base).to_dict(), optimizer, lr, seed, 1, None, 1))
    trainer = Trainer(recipe, bundle=_bundle(recipe)[0], progress=False)
    start = [p.detach().clone() for p in trainer.model.parameters()]
    seen, train_batch = [], trainer.train_batch

    def record(xb, yb, *args, **kwargs):
        seen.append(hashlib.sha256(xb.numpy().tobytes() + yb.numpy().tobytes()).hexdigest())
        return train_batch(xb, yb, *args, **kwargs)

    trainer.train_batch = record
    trainer.fit()
    return seen, start


@pytest.mark.parametrize("base", [ADDITION, pytest.param(FASHION, marks=needs_fmnist)], ids=["addition", "fashion"])
def test_two_optimizers_see_the_same_first_epoch_batches_and_initial_weights(base):
    sgd_batches, sgd_init = first_epoch_batches(base, "sgd", 0.05, seed=base["seed"])
    ada_batches, ada_init = first_epoch_batches(base, "adadelta", 1.0, seed=base["seed"])
    assert len(sgd_batches) > 3 and sgd_batches == ada_batches
    assert all(torch.equal(a, b) for a, b in zip(sgd_init, ada_init))
    other, other_init = first_epoch_batches(base, "sgd", 0.05, seed=base["seed"] + 1)  # another seed differs
    assert other != sgd_batches
    assert not all(torch.equal(a, b) for a, b in zip(sgd_init, other_init))


def test_run_recipe_keeps_common_keys_and_drops_options_the_optimizer_does_not_take():
    raw = run_recipe(load_recipe(ADDITION).to_dict(), "sgd", 0.1, 7, 4, 100, 1)
    assert raw["optim"]["name"] == "sgd" and raw["optim"]["lr"] == 0.1 and "betas" not in raw["optim"]
    assert raw["seed"] == 7 and raw["train"]["epochs"] == 4 and raw["data"]["subset"] == 100
    assert raw["early_stopping"] is None and raw["output"]["report"] is False
    assert load_recipe(raw).optim.name == "sgd"


@pytest.mark.parametrize("text, metric, value, mode", [
    ("val.accuracy=0.85", "val.accuracy", 0.85, "max"), ("val.loss=1e-3", "val.loss", 1e-3, "min"),
    ("train.loss = 0.2", "train.loss", 0.2, "min")])
def test_target_parses_with_its_mode(text, metric, value, mode):
    t = parse_target(text)
    assert (t.metric, t.value, t.mode) == (metric, value, mode)
    assert t.reached(value) and not t.reached(float("nan"))


@pytest.mark.parametrize("text", ["val.accuracy", "accuracy=0.8", "val.accuracy=high", "val.loss=inf", "=0.1"])
def test_malformed_target_names_the_flag(text):
    with pytest.raises(CompareError, match="^--target"):
        parse_target(text)


def test_optimizers_resolve_aliases_and_reject_unknown_and_repeated_names():
    assert parse_optimizers("sgd, ADAM,l-bfgs") == ["sgd", "adam", "lbfgs"]
    with pytest.raises(RecipeError, match="--optimizers: unknown optimizer 'adamm'; did you mean 'adam'"):
        parse_optimizers("sgd,adamm")
    with pytest.raises(CompareError, match="listed twice"):
        parse_optimizers("sgd,sgd")


def test_every_registered_optimizer_has_a_grid_around_its_usual_lr():
    from trainlab.optim import OPTIMIZERS

    for name in OPTIMIZERS.names():
        grid = lr_grid(name, 5)
        assert grid == sorted(grid) and grid[-1] / grid[0] == pytest.approx(100, rel=0.01)
        assert lr_grid_point(name, 5, 5) > grid[-1] and lr_grid_point(name, 5, -1) < grid[0]
    assert 0.5 <= lr_grid("adadelta", 5)[2] <= 2  # Adadelta's LR is ~1, Adam's ~1e-3
    assert lr_grid("adam", 5)[2] == pytest.approx(1e-3)


def test_table_ranks_reached_in_every_seed_first_then_steps_then_final_metric():
    def run(opt, seed, steps, final):
        return {"optimizer": opt, "lr": 0.1, "seed": seed, "status": "done", "reached": steps is not None,
                "steps_to_target": steps, "epochs_to_target": None, "seconds_to_target": None, "final": final,
                "best": final, "final_train_loss": 0.1, "ms_per_step": 1.0}
    runs = [run("a", 0, 40, 0.90), run("a", 1, None, 0.80),           # reached with one seed of two
            run("b", 0, 60, 0.91), run("b", 1, 80, 0.92),             # both, 70 steps
            run("c", 0, 60, 0.95), run("c", 1, 80, 0.93),             # both, 70 steps, better final
            run("d", 0, None, 0.99), run("d", 1, None, 0.99)]         # never
    rows = summarize(runs, ["a", "b", "c", "d"], "max")
    assert [r["optimizer"] for r in rows] == ["c", "b", "a", "d"]
    assert rows[0]["steps_to_target_mean"] == 70 and rows[0]["steps_to_target_std"] == pytest.approx(14.142, 1e-3)
    assert "| 1 | c | 0.1 | 2/2 | 70 ± 14 |" in markdown_table(rows, "val.accuracy", "val.accuracy ≥ 0.9")


@pytest.mark.parametrize("search", ["lr-find", "none"])
def test_lr_range_test_and_no_search_choose_an_lr_per_optimizer(tmp_path, search):
    from trainlab.compare import compare
    from trainlab.compare.protocol import default_lr

    res = compare(ADDITION, "sgd,adadelta", seeds=1, target="val.loss=0.05", lr_search=search, budget_epochs=2,
                  out=tmp_path / "out")
    chosen = res.data["chosen_lr"]
    if search == "none":
        assert chosen == {"sgd": default_lr("sgd"), "adadelta": default_lr("adadelta")} and not res.data["search"]
        assert not (tmp_path / "out" / "plots" / "lr_sensitivity.png").exists()
    else:
        assert all(r["lr_find"]["lrs"] for r in res.data["search"])
        assert chosen["adadelta"] > 10 * chosen["sgd"]  # each from its own sweep
        assert (tmp_path / "out" / "plots" / "lr_sensitivity.png").is_file()
    assert [r["lr"] for r in res.data["runs"]] == [chosen["sgd"], chosen["adadelta"]]


def test_target_checks_between_epochs_do_not_change_the_training():
    """Checking the target every 2 steps (eval mode, no gradients) leaves the run bitwise as it is
    without checks, even with dropout and batch norm, whose modes and RNG the checks must not disturb."""
    from trainlab.compare.runs import run_one

    base = {**ADDITION, "model": {"name": "mlp", "widths": [16], "dropout": 0.2, "norm": "batch"},
            "train": {"epochs": 2, "threads": 1}}
    raw = load_recipe(base).to_dict()
    target = {"metric": "val.loss", "value": 0.02, "mode": "min"}

    def run(every):
        spec = {"recipe": run_recipe(raw, "adam", 0.01, 3, 2, None, 1, every), "optimizer": "adam", "lr": 0.01,
                "phase": "final", "metric": "val.loss", "mode": "min", "target": target, "eval_every": every}
        return run_one(spec)

    plain, checked = run(0), run(2)
    strip = [{k: v for k, v in p.items() if k != "seconds"} for p in plain["curve"]]
    assert strip == [{k: v for k, v in p.items() if k != "seconds"} for p in checked["curve"]]
    steps = [c["step"] for c in checked["checks"]]
    assert steps[:3] == [2, 4, 6] and steps == sorted(steps) and not plain["checks"]
    if checked["reached"]:
        assert checked["steps_to_target"] in steps
