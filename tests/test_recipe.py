import pytest

from trainlab.errors import RecipeError
from trainlab.recipe import apply_overrides, load_recipe

BASE = {"data": {"source": "synthetic:linear"}, "model": {"name": "linear"}, "loss": {"name": "mse"}}


def test_defaults_and_overrides_are_typed():
    r = load_recipe(BASE, ["optim.lr=0.05", "train.epochs=3", "model.bias=false", "data.n=100"])
    assert r.optim.lr == 0.05 and r.train.epochs == 3
    assert r.model.options() == {"bias": False}
    assert r.data.options() == {"n": 100}


@pytest.mark.parametrize("override, message", [
    ("optim.lr=fast", r"^optim\.lr: expected a number, got 'fast'$"),
    ("train.epochs=0", r"^train\.epochs: input should be greater than or equal to 1"),
    ("train.epohcs=3", r"^train\.epohcs: unknown key; accepted: epochs"),
    ("model.name=mlpp", r"^model\.name: unknown model 'mlpp'; did you mean 'mlp'"),
    ("optim.momentun=0.9", r"^optim\.momentun: unknown key for optimizer 'sgd'; accepted: .*momentum"),
    ("colour=red", r"^colour: unknown key; accepted: name, seed, data"),
    ("data.n=many", r"^data\.n: expected an integer, got 'many'"),
])
def test_bad_values_name_their_path(override, message):
    raw = {**BASE, "optim": {"name": "sgd"}}
    with pytest.raises(RecipeError, match=message):
        load_recipe(raw, [override])


def test_set_requires_key_value():
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        apply_overrides({}, ["optim.lr"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(RecipeError, match=r"bad.yaml \(line \d+\): not valid YAML"):
        load_recipe(bad)


def test_shipped_recipes_validate():
    from pathlib import Path

    import yaml

    paths = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
    assert len(paths) >= 10, paths
    for p in paths:
        raw = yaml.safe_load(p.read_text())
        r = load_recipe(p)  # raises RecipeError on any unknown key, value or registry name
        assert r.name == raw["name"] and r.seed == raw.get("seed", 0), p
        for section in ("data", "model", "optim", "train"):  # every value written survives validation
            dumped = getattr(r, section).model_dump()
            for key, value in (raw.get(section) or {}).items():
                assert dumped[key] == value, f"{p.name}: {section}.{key}"


def test_readme_reference_is_generated_from_the_schema():
    from pathlib import Path

    from trainlab.docgen import END, START, reference

    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = text.split(START, 1)[1].split(END, 1)[0]
    assert block == "\n" + reference(), "README is stale: run `trainlab reference --write README.md`"
