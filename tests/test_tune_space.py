"""The `search:` language: parsing, validation against the recipe schema, sampling, baseline, grid."""
import optuna
import pytest

from trainlab.errors import RecipeError
from trainlab.recipe import load_recipe
from trainlab.recipe import parse_space

BASE = {
    "name": "t", "seed": 0,
    "data": {"source": "synthetic:linear", "batch_size": 64},
    "model": {"name": "linear"}, "loss": {"name": "mse"},
    "optim": {"name": "adamw", "lr": 0.01}, "train": {"epochs": 1},
}
SPACE = {
    "optim.lr": {"loguniform": [1.0e-3, 1.0e-1]},
    "optim.momentum": {"uniform": [0.5, 0.99], "when": {"optim.name": "sgd"}},
    "optim.name": {"choice": ["sgd", "adamw"]},
    "data.batch_size": {"choice": [32, 64]},
    "train.epochs": {"int": [1, 3]},
    "optim.weight_decay": {"uniform": [0.0, 0.1], "step": 0.05},
}


def recipe_with(space):
    return {**BASE, "search": space}


def test_recipe_keeps_search_section_and_omits_it_when_absent():
    r = load_recipe(recipe_with(SPACE))
    assert r.search == SPACE
    assert "search" in r.to_dict()
    assert "search" not in load_recipe(BASE).to_dict()


def test_conditions_come_before_the_parameters_that_use_them():
    space = parse_space(SPACE, load_recipe(BASE).to_dict())
    names = space.names()
    assert names.index("optim.name") < names.index("optim.momentum")
    assert set(names) == set(SPACE)


@pytest.mark.parametrize("name, has_momentum", [("sgd", True), ("adamw", False)])
def test_conditional_parameter_sampled_only_when_its_condition_holds(name, has_momentum):
    base = load_recipe(BASE).to_dict()
    space = parse_space(SPACE, base)
    fixed = {"optim.lr": 0.02, "optim.name": name, "optim.momentum": 0.9, "data.batch_size": 32,
             "train.epochs": 2, "optim.weight_decay": 0.05}
    values = space.sample(optuna.trial.FixedTrial(fixed), base)
    assert ("optim.momentum" in values) is has_momentum
    assert values["optim.name"] == name and values["train.epochs"] == 2 and values["data.batch_size"] == 32


def test_list_choices_round_trip_through_optuna():
    base = load_recipe({**BASE, "model": {"name": "mlp"}}).to_dict()
    space = parse_space({"model.widths": {"choice": [[16], [32, 16]]}}, base)
    p = space.get("model.widths")
    assert p.encoded == ("[16]", "[32, 16]")
    assert space.sample(optuna.trial.FixedTrial({"model.widths": "[32, 16]"}), base) == {"model.widths": [32, 16]}


@pytest.mark.parametrize("space, message", [
    ({"optim.lrr": {"uniform": [0.1, 1]}}, "search.optim.lrr: not a recipe path; did you mean optim.lr?"),
    ({"foo.bar": {"uniform": [0.1, 1]}}, "search.foo.bar: not a recipe path"),
    ({"seed.x": {"int": [0, 3]}}, "search.seed.x: not a recipe path"),
    ({"optim.lr.x": {"uniform": [0.1, 1]}}, "search.optim.lr.x: not a recipe path"),
    ({"optim": {"uniform": [0.1, 1]}}, "search.optim: name a field of the section"),
    ({"optim.lr": [0.1, 1]}, "search.optim.lr: expected a distribution"),
    ({"optim.lr": {"uniform": [1, 0.1]}}, "search.optim.lr: low must be below high"),
    ({"optim.lr": {"uniform": [0.1]}}, "search.optim.lr: uniform takes [low, high] numbers"),
    ({"optim.lr": {"loguniform": [0, 1]}}, "search.optim.lr: loguniform needs low > 0"),
    ({"optim.lr": {"uniform": [0.1, 1], "choice": [1]}}, "give exactly one of"),
    ({"optim.lr": {"normal": [0, 1]}}, "search.optim.lr: unknown key 'normal'"),
    ({"train.epochs": {"int": [1, 2.5]}}, "search.train.epochs: int takes [low, high] integers"),
    ({"train.epochs": {"int": [1, 4], "step": 0.5}}, "search.train.epochs.step: expected a positive integer"),
    ({"data.batch_size": {"choice": []}}, "search.data.batch_size: choice takes a non-empty list"),
    ({"data.batch_size": {"choice": [8, 8]}}, "choice lists a value twice"),
    ({"optim.lr": {"uniform": [0.1, 1], "when": {"optim.nme": "sgd"}}},
     "search.optim.lr.when.optim.nme: not a recipe path; did you mean optim.name?"),
    # values are checked by building the recipe: lr must be > 0
    ({"optim.lr": {"uniform": [-1, 1]}}, "search.optim.lr: value -1 makes an invalid recipe: optim.lr:"),
    # momentum is an option of sgd only: it needs a `when`
    ({"optim.name": {"choice": ["sgd", "adamw"]}, "optim.momentum": {"uniform": [0.5, 0.9]}},
     "search.optim.momentum: value 0.5 with optim.name=adamw makes an invalid recipe"),
    ({"optim.lr": {"uniform": [0.1, 1], "when": {"optim.momentum": 0.9}},
      "optim.momentum": {"uniform": [0.5, 0.9], "when": {"optim.lr": 0.5}}}, "conditions form a cycle"),
])
def test_bad_search_spaces_name_the_path(space, message):
    with pytest.raises(RecipeError) as e:
        load_recipe(recipe_with(space))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_baseline_is_the_recipes_own_values_including_factory_defaults():
    base = load_recipe({**BASE, "model": {"name": "mlp"}}).to_dict()
    space = parse_space({"optim.lr": {"loguniform": [1e-3, 1e-1]}, "model.dropout": {"uniform": [0.0, 0.5]},
                         "model.widths": {"choice": [[256], [64]]}}, base)
    params, why = space.baseline(base)
    assert params == {"optim.lr": 0.01, "model.dropout": 0.0, "model.widths": "[256]"} and why == ""
    outside = parse_space({"optim.lr": {"loguniform": [0.1, 1.0]}}, base)
    params, why = outside.baseline(base)
    assert params is None and "optim.lr = 0.01 lies outside" in why


def test_grid_enumerates_choices_and_stepped_ranges_only():
    base = load_recipe(BASE).to_dict()
    space = parse_space({"data.batch_size": {"choice": [32, 64]}, "train.epochs": {"int": [1, 3]},
                         "optim.weight_decay": {"uniform": [0.0, 0.1], "step": 0.05}}, base)
    assert space.grid() == {"data.batch_size": [32, 64], "train.epochs": [1, 2, 3],
                            "optim.weight_decay": [0.0, 0.05, 0.1]}
    with pytest.raises(RecipeError, match="search.optim.lr: --sampler grid needs"):
        parse_space({"optim.lr": {"loguniform": [1e-3, 1e-1]}}, base).grid()
    with pytest.raises(RecipeError, match="conditional"):
        parse_space(SPACE, base).grid()
