"""Text sources: tokenization, a vocabulary fitted on the training split only, padding, errors."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from trainlab.data import build_data
from trainlab.data.text import tokenize
from trainlab.errors import DataError, RecipeError
from trainlab.recipe import load_recipe


def write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def data(source: str, seed: int = 0, **options):
    recipe = load_recipe({"seed": seed, "data": {"source": source, **options}})
    return build_data(recipe.data, recipe.seed)


def decode(bundle, ids):
    tokens = bundle.info.extra["vocab"]["tokens"]
    return [tokens[i] for i in ids.tolist()]


def test_tokenize_words_and_chars():
    assert tokenize("Don't panic, Arthur!", "word", True) == ["don", "'", "t", "panic", ",", "arthur", "!"]
    assert tokenize("Ab c", "char", False) == ["A", "b", " ", "c"]


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    train = write_csv(tmp_path / "train.csv", [("good good film", "pos"), ("bad film", "neg")] * 5)
    test = write_csv(tmp_path / "test.csv", [("zebra film", "pos"), ("good", "neg")])
    b = data("text_csv", path=str(train), test_path=str(test), max_len=4, val_fraction=0.0)
    tokens = b.info.extra["vocab"]["tokens"]
    assert tokens[:2] == ["<pad>", "<unk>"]
    assert set(tokens[2:]) == {"good", "film", "bad"} and "zebra" not in tokens
    assert tokens[2:] == ["film", "good", "bad"]  # by training frequency: film 10, good 10 (ties by token), bad 5
    assert decode(b, b.test.x[0]) == ["<unk>", "film", "<pad>", "<pad>"]
    assert b.info.extra["vocab_size"] == 5 and b.info.extra["pad_index"] == 0
    assert b.info.kind == "tokens" and b.info.input_shape == (4,) and b.info.class_names == ["neg", "pos"]


def test_carved_test_rows_do_not_feed_the_vocabulary(tmp_path):
    rows = [(f"common word{i}", str(i % 2)) for i in range(40)]  # word{i} occurs in exactly one row
    b = data("text_csv", path=str(write_csv(tmp_path / "t.csv", rows)), test_fraction=0.25, val_fraction=0.0)
    tokens = set(b.info.extra["vocab"]["tokens"])
    test_words = {decode(b, row)[1] for row in b.test.x}
    assert test_words == {"<unk>"}  # every test row's unique word is unknown to the vocabulary
    assert len(tokens) == 2 + 1 + 30  # pad, unk, "common" and the 30 training rows' words
    assert b.info.class_names == ["0", "1"] and b.info.sizes == {"train": 30, "test": 10}


def test_min_freq_max_vocab_truncation_and_padding(tmp_path):
    rows = [("a a a b b c " + "x " * 10, "1"), ("a b d", "2"), ("a", "10")]
    path = write_csv(tmp_path / "t.csv", rows)
    b = data("text_csv", path=str(path), max_len=5, min_freq=2, val_fraction=0.0, test_fraction=0.0)
    assert b.info.extra["vocab"]["tokens"] == ["<pad>", "<unk>", "a", "b"]  # c, d, x: too rare in 5 tokens
    assert b.info.class_names == ["1", "2", "10"]  # integer labels in numeric order
    by_label = {int(y): decode(b, x) for x, y in zip(b.train.x, b.train.y)}
    assert by_label[0] == ["a", "a", "a", "b", "b"]  # truncated to max_len
    assert by_label[2] == ["a", "<pad>", "<pad>", "<pad>", "<pad>"]
    capped = data("text_csv", path=str(path), max_vocab=3, val_fraction=0.0, test_fraction=0.0)
    assert capped.info.extra["vocab"]["tokens"] == ["<pad>", "<unk>", "x"]


def test_char_level_and_jsonl(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"body": t, "y": y}) for t, y in [("abc", "p"), ("cab", "q")] * 4) + "\n")
    b = data("text_jsonl", path=str(path), text="body", label="y", level="char", max_len=3, lowercase=False,
             val_fraction=0.0, test_fraction=0.0)
    assert set(b.info.extra["vocab"]["tokens"][2:]) == {"a", "b", "c"}
    assert sorted("".join(decode(b, x)) for x in b.train.x) == ["abc"] * 4 + ["cab"] * 4


@pytest.mark.parametrize("rows,options,message", [
    ([("hi", "a")], {"text": "body"}, "no column 'body' (data.text); columns: text, label"),
    ([("hi", "a")], {"label": "class"}, "no column 'class' (data.label)"),
    ([("hi", "a"), ("yo", "")], {}, "column 'label' has 1 empty labels (first in data row 2)"),
])
def test_bad_csv_names_file_and_column(tmp_path, rows, options, message):
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError) as e:
        data("text_csv", path=str(path), **options)
    assert str(path) in str(e.value) and message in str(e.value)


def test_bad_jsonl_line_and_missing_file_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{not json\n')
    with pytest.raises(DataError, match=rf"{path}:2: not valid JSON"):
        data("text_jsonl", path=str(path))
    with pytest.raises(DataError, match="nope.csv: file not found"):
        data("text_csv", path=str(tmp_path / "nope.csv"))
    with pytest.raises(RecipeError, match=r"data.max_len"):
        data("text_csv", path=str(path), max_len=0)


def test_saved_vocabulary_is_reused_and_checked(tmp_path):
    path = write_csv(tmp_path / "t.csv", [("one two two", "a"), ("three", "b")] * 3)
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps({"level": "word", "lowercase": True, "tokens": ["<pad>", "<unk>", "three", "one"]}))
    b = data("text_csv", path=str(path), vocab=str(vocab), max_len=3, val_fraction=0.0, test_fraction=0.0)
    assert b.info.extra["vocab_size"] == 4
    assert {tuple(decode(b, x)) for x in b.train.x} == {("one", "<unk>", "<unk>"), ("three", "<pad>", "<pad>")}
    with pytest.raises(RecipeError, match="data.vocab: .* level='word'"):
        data("text_csv", path=str(path), vocab=str(vocab), level="char", val_fraction=0.0)


def test_text_corpus_windows_have_targets_shifted_by_one(tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 20
    (tmp_path / "a.txt").write_text(text)
    b = data("text_corpus", path=str(tmp_path / "*.txt"), seq_len=16, holdout=0.2, val_fraction=0.1)
    x, y = b.train.x, b.train.y
    assert x.shape[1] == 16 and y.shape == x.shape
    assert torch.equal(x[:, 1:], y[:, :-1])
    vocab = b.info.extra["vocab"]["tokens"]
    windows = {"".join(vocab[i] for i in row) for row in x.tolist()}
    assert all(w in text for w in windows)
    assert b.info.num_classes == b.info.output_dim == len(vocab) == b.info.extra["vocab_size"]
    assert b.info.class_names == vocab and b.info.sizes["test"] == (int(len(text) * 0.2) - 17) // 16 + 1  # the last 20%
    assert b.info.class_counts == {}  # per-token targets are not stratified or counted per class


def test_text_corpus_from_pythons_own_docs_and_word_level():
    b = data("text_corpus", corpus="pydoc_topics", level="word", seq_len=32, max_vocab=500, val_fraction=0.05)
    assert b.info.extra["vocab_size"] == 500 and b.info.extra["tokens"] > 50_000
    assert len(b.train) > 1000 and b.test is not None and b.val is not None
    with pytest.raises(RecipeError, match="data.path: text_corpus needs"):
        data("text_corpus")


@pytest.mark.parametrize("model", ["mlp", "convnet", "linear"])
def test_float_models_on_token_ids_are_a_recipe_error(tmp_path, model):
    from trainlab.models import build_model

    path = write_csv(tmp_path / "t.csv", [("good film", "pos"), ("bad film", "neg")] * 10)
    recipe = load_recipe({"data": {"source": "text_csv", "path": str(path)}, "model": {"name": model}})
    bundle = build_data(recipe.data, recipe.seed)
    with pytest.raises(RecipeError, match=rf"model.name: {model} multiplies float inputs.*token ids; use"):
        build_model(recipe.model, bundle.info)
    recipe = load_recipe({"data": {"source": "text_csv", "path": str(path)}, "model": {"name": "rnn"}})
    assert build_model(recipe.model, bundle.info)(bundle.train.x[:2]).shape == (2, 2)
