import pytest

from trainlab.errors import RecipeError
from trainlab.registry import Registry


def make():
    reg = Registry("model", "models", context=("info",))

    def mlp(info, widths: list[int] = [8], dropout: float = 0.0):
        return ("mlp", info, widths, dropout)

    reg.add("mlp", mlp, "an mlp", aliases=("perceptron",))
    return reg


def test_build_passes_context_and_typed_options():
    reg = make()
    assert reg.build("mlp", {"widths": ["4", 2]}, "model", info="I") == ("mlp", "I", [4, 2], 0.0)
    assert reg.get("perceptron").name == "mlp"


def test_unknown_name_suggests_close_match():
    with pytest.raises(RecipeError, match=r"model.name: unknown model 'mlpp'; did you mean 'mlp'"):
        make().build("mlpp", {}, "model")


def test_unknown_option_lists_accepted():
    with pytest.raises(RecipeError, match=r"^model\.widht: unknown key .*accepted: dropout, widths"):
        make().validate("mlp", {"widht": [3]}, "model")


def test_wrong_type_names_path():
    with pytest.raises(RecipeError, match=r"^model\.dropout: expected a number, got 'lots'"):
        make().validate("mlp", {"dropout": "lots"}, "model")


def test_duplicate_and_uppercase_names_refused():
    reg = make()
    with pytest.raises(ValueError):
        reg.add("mlp", lambda: None, "again")
    with pytest.raises(ValueError):
        reg.add("MLP2", lambda: None, "upper")


def test_builtin_registries_have_descriptions():
    from trainlab.catalog import registries

    for kind, reg in registries().items():
        assert reg.names(), kind
        for e in reg.entries():
            assert e.description and e.name == e.name.lower()
