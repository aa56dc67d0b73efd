"""Issue 17, data and recipe checks: bad input is exit 2 with one line naming the recipe key, or the
file and line, before any training and before a run directory exists (cli.main in-process)."""
from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import yaml

from trainlab.cli import main
from trainlab.data import build_data
from trainlab.data.splits import split_indices
from trainlab.errors import RecipeError
from trainlab.models import MODELS
from trainlab.recipe import load_recipe

import torch


def write_table(path, n: int = 40, label=lambda i: i % 2, edit: dict | None = None):
    """a, b numeric features and a label; `edit` replaces whole lines (1-based, header = line 1)."""
    rng = np.random.default_rng(0)
    lines = ["a,b,label"] + [f"{rng.normal():.3f},{rng.normal():.3f},{label(i)}" for i in range(n)]
    for number, text in (edit or {}).items():
        lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def recipe_file(tmp_path, data: dict, model: dict | None = None, **sections) -> str:
    recipe = {"data": data, "model": model or {"name": "mlp", "widths": [8]},
              "train": {"epochs": 1, "device": "cpu", **sections.pop("train", {})},
              "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False, "trackers": []},
              **sections}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def train(tmp_path, capsys, data: dict | None = None, *sets: str, recipe: str | None = None, **kw) -> str:
    """Run `trainlab train` in-process; assert exit 2, one line, no run directory; return the line."""
    if recipe is None:
        recipe = recipe_file(tmp_path, data or {"source": "csv", "path": str(write_table(tmp_path / "t.csv")),
                                                "target": "label"}, **kw)
    capsys.readouterr()
    code = main(["train", recipe, *[f"--set={s}" for s in sets]])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("trainlab: error: ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists(), "bad input must leave no run directory behind"
    return err


def csv_data(path, **options) -> dict:
    return {"source": "csv", "path": str(path), "target": "label", **options}


# --- 1. files that are not UTF-8, inf in a feature, fractions, tiny tables, model options -------
def test_recipe_that_is_not_utf8_names_the_byte_and_offset(tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_bytes(b"name: x\ndata:\n  source: csv # caf\xe9\n")
    err = train(tmp_path, capsys, recipe=str(path))
    assert f"{path}: not UTF-8 text (byte 0xe9 at offset 33, line 3)" in err


def test_jsonl_that_is_not_utf8_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"text": "good", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    err = train(tmp_path, capsys, {"source": "text_jsonl", "path": str(path)}, model={"name": "rnn"})
    assert f"{path}:2: not UTF-8 text (byte 0xe9" in err


def test_csv_that_is_not_utf8_names_the_file_and_line(tmp_path, capsys):
    path = write_table(tmp_path / "t.csv")
    path.write_bytes(path.read_bytes().replace(b"label\n", b"label\n\xff", 1))
    err = train(tmp_path, capsys, csv_data(path))
    assert f"{path}:2: not UTF-8 text (byte 0xff" in err


def test_inf_in_a_csv_feature_names_the_column_and_line(tmp_path, capsys):
    path = write_table(tmp_path / "t.csv", edit={6: "0.5,-inf,1", 9: "inf,0.1,0"})
    err = train(tmp_path, capsys, csv_data(path))
    assert f"{path}:6: column 'b' is -inf (2 infinite cells)" in err
    assert "data.infinite: missing" in err


def test_inf_is_imputed_only_when_the_recipe_asks_for_it(tmp_path):
    path = write_table(tmp_path / "t.csv", edit={6: "0.5,-inf,1"})
    b = build_data(load_recipe({"data": csv_data(path, infinite="missing")}).data, 0)
    assert b.info.input_shape == (2,)
    assert all(bool(torch.isfinite(s.x).all()) for s in (b.train, b.val, b.test))
    assert any("1 infinite cells of column 'b' read as missing" in n for n in b.info.notes)
    assert any("imputed 1 missing cells" in n for n in b.info.notes)


def test_test_fraction_that_leaves_no_training_data_names_the_key(tmp_path, capsys):
    err = train(tmp_path, capsys, None, "data.test_fraction=0.99")
    assert "data.test_fraction: 0.99 leaves 0 training samples of 40" in err


def test_a_two_row_csv_names_the_split_it_cannot_fill(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n")
    err = train(tmp_path, capsys, csv_data(path))
    assert "data.test_fraction: 0.2 leaves 0 test samples of 2" in err


@pytest.mark.parametrize("setting, key", [("model.widths=[-1]", "model.widths.0"), ("model.dropout=2", "model.dropout")])
def test_mlp_option_out_of_range_names_the_key(tmp_path, capsys, setting, key):
    err = train(tmp_path, capsys, None, setting)
    assert f"error: {key}: input should be" in err


def _sized_options(name: str) -> list[str]:
    """The options of a model whose type is a size (models/options.py: an int ≥ 1)."""
    return [k for k, p in MODELS.options(name).items() if "Ge(ge=1)" in str(p.annotation)]


BUILTIN = [n for n in MODELS.names() if n != "custom"]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_model_checks_its_option_ranges_when_the_recipe_loads(name):
    options = MODELS.options(name)
    if "dropout" in options:
        with pytest.raises(RecipeError, match=r"^model\.dropout: input should be less than 1, got 2"):
            load_recipe({"model": {"name": name, "dropout": 2}})
    for key in _sized_options(name):
        default = options[key].default
        bad = [0] * len(default) if isinstance(default, (list, tuple)) else 0
        with pytest.raises(RecipeError, match=rf"^model\.{key}(\.0)?: input should be greater than or equal to 1"):
            load_recipe({"model": {"name": name, key: bad}})
    assert "dropout" in options or _sized_options(name) or name == "linear"


def test_heads_that_do_not_divide_the_width_name_the_key(tmp_path, capsys):
    err = train(tmp_path, capsys, None, model={"name": "transformer", "dim": 16, "heads": 3})
    assert "model.heads: dim 16 must be divisible by heads 3" in err


# --- 2. one class ------------------------------------------------------------------------------------
def test_csv_with_one_class_names_the_file_column_and_class(tmp_path, capsys):
    path = write_table(tmp_path / "t.csv", label=lambda i: "cat")
    err = train(tmp_path, capsys, csv_data(path))
    assert f"{path}: target column 'label' holds one class ('cat') in 40 rows" in err


def test_image_folder_with_one_class_names_the_folder(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "img" / "cat").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "img" / "cat" / f"{i}.png")
    err = train(tmp_path, capsys, {"source": "image_folder", "path": str(tmp_path / "img"), "size": 8})
    assert f"{tmp_path / 'img'}: one class subfolder ('cat')" in err


def test_text_with_one_label_names_the_file_and_column(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "".join(f"word {i},pos\n" for i in range(10)))
    err = train(tmp_path, capsys, {"source": "text_csv", "path": str(path)}, model={"name": "rnn"})
    assert f"{path}: column 'label' (data.label) holds one label ('pos') in 10 rows" in err


def test_a_split_that_leaves_one_class_in_training_names_the_key(tmp_path, capsys):
    err = train(tmp_path, capsys, None, "data.subset=1")
    assert "data.subset: 1 leaves a training split that holds only one class" in err


# --- 3. fractions that train on nothing; subset 1.0 ----------------------------------------------
def test_val_fraction_that_leaves_no_training_data_names_the_key_and_counts(tmp_path, capsys):
    err = train(tmp_path, capsys, None, "data.val_fraction=0.99")
    assert "data.val_fraction: 0.99 leaves 0 training samples of 32" in err


def test_val_fraction_that_leaves_no_validation_data_says_how_to_have_none(tmp_path, capsys):
    path = write_table(tmp_path / "t.csv", n=10)
    err = train(tmp_path, capsys, csv_data(path), "data.val_fraction=0.01")
    assert "data.val_fraction: 0.01 leaves 0 validation samples of 8" in err
    assert "data.val_fraction: 0 for no validation" in err


def test_subset_float_one_is_the_whole_training_split_and_an_int_is_a_count(tmp_path):
    path = write_table(tmp_path / "t.csv")
    whole = build_data(load_recipe({"data": csv_data(path)}).data, 0)
    share = build_data(load_recipe({"data": csv_data(path, subset=1.0)}).data, 0)
    count = build_data(load_recipe({"data": csv_data(path, subset=10)}).data, 0)
    assert len(share.train) == len(whole.train) == 28
    assert torch.equal(share.train.y, whole.train.y)
    assert len(count.train) == 10
    with pytest.raises(RecipeError, match=r"^data.subset: 2.0 is a share and must be at most 1.0"):
        load_recipe({"data": csv_data(path, subset=2.0)})


def test_many_small_classes_still_give_a_validation_split():
    y = torch.arange(10).repeat_interleave(5)  # 10 classes of 5: 10% rounds to 0 per class
    keep, held = split_indices(y, 0.1, seed=0, stratify=True)
    assert len(held) == 5 and len(set(y[held].tolist())) == 5
    assert sorted(torch.cat([keep, held]).tolist()) == list(range(50))
    keep, held = split_indices(torch.arange(4).repeat_interleave(25), 0.1, seed=0, stratify=True)
    assert [int((torch.arange(4).repeat_interleave(25)[held] == c).sum()) for c in range(4)] == [2, 2, 2, 2]


# --- 4. rows with the wrong number of fields; numeric columns stay numeric ------------------------
def test_csv_row_with_a_missing_field_names_its_line(tmp_path, capsys):
    path = write_table(tmp_path / "t.csv", edit={8: "0.5,1", 20: "1,2,3,4"})
    err = train(tmp_path, capsys, csv_data(path))
    assert f"{path}:8: 2 fields, the header has 3 (and 1 more row: lines 20)" in err


@pytest.mark.parametrize("cell", ["", " ", "NA"])
def test_an_empty_cell_keeps_a_numeric_column_numeric(tmp_path, cell):
    path = write_table(tmp_path / "t.csv", edit={8: f"0.5,{cell},1"})
    b = build_data(load_recipe({"data": csv_data(path)}).data, 0)
    assert b.info.input_shape == (2,)
    assert b.info.extra["categorical"] == []
    assert any("imputed 1 missing cells" in n for n in b.info.notes)


def test_a_word_in_a_numeric_column_names_the_line_unless_it_is_a_missing_marker(tmp_path, capsys):
    path = write_table(tmp_path / "t.csv", edit={8: "0.5,?,1"})
    err = train(tmp_path, capsys, csv_data(path))
    assert f"{path}:8: column 'b' holds numbers but '?' here (1 such cell)" in err
    assert "data.na_values" in err
    b = build_data(load_recipe({"data": csv_data(path, na_values=["?"])}).data, 0)
    assert b.info.input_shape == (2,)


# --- 5. monitors -----------------------------------------------------------------------------------
def test_monitor_typo_names_the_key_the_value_and_the_choices(tmp_path, capsys):
    err = train(tmp_path, capsys, None, "train.monitor=val.bogus")
    assert "train.monitor: 'val.bogus' is not a metric trainlab logs" in err
    assert "val.<metric>" in err


def test_early_stopping_monitor_typo_is_found_before_training(tmp_path, capsys):
    err = train(tmp_path, capsys, None, "early_stopping.monitor=val.acuracy")
    assert "early_stopping.monitor: 'val.acuracy' is not a metric trainlab logs (did you mean 'val.accuracy'" in err


@pytest.mark.parametrize("sets, expected", [
    (["data.val_fraction=0", "train.monitor=val.loss"],
     "train.monitor: 'val.loss' needs a validation split, and this run has none (data.val_fraction: 0); "
     "this run logs train.loss, train.accuracy"),
    (["early_stopping.monitor=val.mse"], "early_stopping.monitor: 'val.mse' is a regression metric"),
    (["train.monitor=val.top5_accuracy"], "train.monitor: 'val.top5_accuracy' needs 1 <= k < 2"),
    (["schedule.name=reduce_on_plateau", "data.val_fraction=0"], "schedule.monitor: 'val.loss' needs a validation"),
])
def test_monitor_the_run_would_not_log_is_an_error_before_any_epoch(tmp_path, capsys, sets, expected):
    err = train(tmp_path, capsys, None, *sets)
    assert expected in err


def test_a_monitor_that_is_logged_trains_and_picks_the_best_checkpoint(tmp_path, capsys):
    recipe = recipe_file(tmp_path, csv_data(write_table(tmp_path / "t.csv")), train={"monitor": "val.f1_macro"})
    assert main(["train", recipe]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "checkpoints" / "best").is_dir()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("split") == "val" and "f1_macro" in r for r in records)


# --- text: empty texts -----------------------------------------------------------------------------
def test_empty_texts_are_counted_in_a_note_and_all_empty_is_an_error(tmp_path, capsys):
    path = tmp_path / "t.csv"
    rows = [("good film", "pos"), ("bad film", "neg"), ("", "pos"), ("   ", "neg")] * 5
    path.write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows))
    b = build_data(load_recipe({"data": {"source": "text_csv", "path": str(path)}}).data, 0)
    assert f"{path}: 10 of 20 texts in 'text' are empty (no tokens); they are all padding" in b.info.notes
    path.write_text("text,label\n" + "".join(f'"",{lab}\n' for _, lab in rows))
    err = train(tmp_path, capsys, {"source": "text_csv", "path": str(path)}, model={"name": "rnn"})
    assert f"{path}: all 20 texts in 'text' (data.text) are empty (no tokens)" in err


def test_model_option_annotations_use_the_shared_ranges():
    # a new built-in model whose sizes are plain ints would skip the load-time range check
    for name in BUILTIN:
        for key, p in MODELS.options(name).items():
            if key in ("dim", "depth", "heads", "hidden", "layers", "embed_dim", "widths", "blocks", "width") and (
                    name, key) != ("resnet", "depth"):  # a ResNet depth is 6n+2 or 18/34, checked by the factory
                assert "Ge(ge=1)" in str(p.annotation), (name, key, inspect.formatannotation(p.annotation))


def test_a_monitor_typo_is_found_before_any_data_is_read_yet_a_finished_run_with_one_still_loads(tmp_path):
    from trainlab.train import Trainer

    raw = {"data": csv_data(tmp_path / "absent.csv"), "early_stopping": {"monitor": "val.bogus"}}
    recipe = load_recipe(raw)  # a run directory's recipe.yaml with the typo still loads (evaluate, report)
    with pytest.raises(RecipeError, match=r"^early_stopping.monitor: 'val.bogus' is not a metric"):
        Trainer(recipe, progress=False)  # not DataError: absent.csv is never opened


def test_a_csv_header_that_names_a_column_twice_is_an_error(tmp_path, capsys):
    path = write_table(tmp_path / "t.csv", edit={1: "a,a,label"})
    err = train(tmp_path, capsys, csv_data(path))
    assert f"{path}:1: column 'a' appears twice in the header" in err


def test_test_fraction_zero_without_a_test_split_of_its_own_is_an_error_before_training(tmp_path, capsys):
    err = train(tmp_path, capsys, None, "data.test_fraction=0")
    assert "data.test_fraction: 0.0 leaves no test split, and csv has none of its own" in err
