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


# --- bag-of-words / TF-IDF features (data.features) ---------------------------------------------------------

DOCS = "recipes/data/python_docs.csv"


def docstring_files(tmp_path, n_train=60, n_test=25):
    """Real short texts (the shipped docstring set's first rows) as a train and a test file."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    with open(root / DOCS, newline="") as f:
        rows = list(csv.reader(f))[1:n_train + n_test + 1]
    train = write_csv(tmp_path / "train.csv", rows[:n_train])
    test = write_csv(tmp_path / "test.csv", rows[n_train:])
    return train, test, [r[0] for r in rows[:n_train]], [r[0] for r in rows[n_train:]]


def sklearn_tokens(text):
    return tokenize(text, "word", True)


@pytest.mark.parametrize("options,sk", [
    ({}, {}),
    ({"ngram_range": [1, 2]}, {"ngram_range": (1, 2)}),
    ({"ngram_range": [2, 3], "sublinear_tf": True}, {"ngram_range": (2, 3), "sublinear_tf": True}),
    ({"min_df": 2}, {"min_df": 2}),
    ({"min_df": 0.05, "ngram_range": [1, 2]}, {"min_df": 0.05, "ngram_range": (1, 2)}),
    ({"level": "char", "ngram_range": [2, 4]}, {"analyzer": "char", "ngram_range": (2, 4)}),
])
def test_tfidf_features_equal_scikit_learns_tfidfvectorizer(tmp_path, options, sk):
    from sklearn.feature_extraction.text import TfidfVectorizer

    train, test, train_texts, test_texts = docstring_files(tmp_path)
    b = data("text_csv", path=str(train), test_path=str(test), val_fraction=0.0, features="tfidf", **options)
    if sk.get("analyzer") != "char":
        sk = {"tokenizer": sklearn_tokens, "lowercase": False, "token_pattern": None, **sk}
    vec = TfidfVectorizer(smooth_idf=True, norm="l2", **sk)
    expected = vec.fit_transform(train_texts).toarray()
    assert b.info.kind == "vector" and b.info.input_shape == (expected.shape[1],)
    assert b.info.extra["vocab"]["terms"] == vec.get_feature_names_out().tolist()
    assert b.train.x.dtype == torch.float32
    torch.testing.assert_close(b.train.x, torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-6)
    # the test split goes through the training split's terms and idf
    torch.testing.assert_close(b.test.x, torch.tensor(vec.transform(test_texts).toarray(), dtype=torch.float32),
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(b.info.extra["vocab"]["idf"], dtype=torch.float64), torch.tensor(vec.idf_),
                               rtol=0, atol=1e-12)


def test_max_features_keeps_the_most_frequent_terms_as_scikit_learn(tmp_path):
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    train, test, train_texts, _ = docstring_files(tmp_path)
    sk = {"tokenizer": sklearn_tokens, "lowercase": False, "token_pattern": None, "ngram_range": (1, 2)}
    totals = sorted(CountVectorizer(**sk).fit_transform(train_texts).sum(axis=0).A1.tolist(), reverse=True)
    # a cut between two different totals: scikit-learn breaks ties at the cut in no stated order
    k = max(k for k in range(1, len(totals)) if totals[k - 1] != totals[k])  # e.g. the terms seen twice or more
    assert 10 < k < len(totals) - 10
    b = data("text_csv", path=str(train), test_path=str(test), val_fraction=0.0, features="tfidf",
             ngram_range=[1, 2], max_features=k)
    vec = TfidfVectorizer(max_features=k, **sk)
    expected = vec.fit_transform(train_texts).toarray()
    assert b.info.input_shape == (k,) and b.info.extra["vocab"]["terms"] == vec.get_feature_names_out().tolist()
    torch.testing.assert_close(b.train.x, torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-6)


def test_bag_of_words_features_are_scikit_learns_counts(tmp_path):
    from sklearn.feature_extraction.text import CountVectorizer

    train, test, train_texts, test_texts = docstring_files(tmp_path)
    b = data("text_csv", path=str(train), test_path=str(test), val_fraction=0.0, features="bow", ngram_range=[1, 2])
    vec = CountVectorizer(tokenizer=sklearn_tokens, lowercase=False, token_pattern=None, ngram_range=(1, 2))
    assert torch.equal(b.train.x, torch.tensor(vec.fit_transform(train_texts).toarray(), dtype=torch.float32))
    assert torch.equal(b.test.x, torch.tensor(vec.transform(test_texts).toarray(), dtype=torch.float32))
    assert b.info.extra["vocab"]["idf"] is None


def test_features_are_fitted_on_the_carved_training_split_only(tmp_path):
    rows = [(f"common word{i}", str(i % 2)) for i in range(40)]  # word{i} occurs in exactly one row
    b = data("text_csv", path=str(write_csv(tmp_path / "t.csv", rows)), test_fraction=0.25, val_fraction=0.0,
             features="tfidf")
    terms = b.info.extra["vocab"]["terms"]
    assert len(terms) == 1 + 30 and "common" in terms  # the 30 training rows' own words, no test row's
    common = terms.index("common")
    # a test row has only its unknown word and "common": after L2 normalization it is the unit vector
    assert torch.equal(b.test.x, torch.nn.functional.one_hot(torch.full((10,), common), len(terms)).float())
    assert b.info.sizes == {"train": 30, "test": 10}


def test_feature_options_and_mismatched_saved_vocabularies_name_the_key(tmp_path):
    from trainlab.models import build_model

    train, test, _, _ = docstring_files(tmp_path)
    with pytest.raises(RecipeError, match=r"^data.ngram_range: \[2, 1\] must be \[min_n, max_n\]"):
        data("text_csv", path=str(train), features="tfidf", ngram_range=[2, 1])
    with pytest.raises(RecipeError, match=r"^data.features: input should be 'tokens', 'bow' or 'tfidf'"):
        load_recipe({"data": {"source": "text_csv", "path": str(train), "features": "tf-idf"}})
    with pytest.raises(DataError, match="data.min_df: 0.9 keeps no term"):
        data("text_csv", path=str(train), features="tfidf", min_df=0.9)
    b = data("text_csv", path=str(train), features="tfidf")
    recipe = load_recipe({"data": {"source": "text_csv", "path": str(train)}, "model": {"name": "transformer"}})
    with pytest.raises(RecipeError, match="model.name: transformer reads token sequences, but data.features: tfidf"):
        build_model(recipe.model, b.info)
    tfidf_vocab, token_vocab = tmp_path / "tfidf.json", tmp_path / "tokens.json"
    tfidf_vocab.write_text(json.dumps(b.info.extra["vocab"]))
    token_vocab.write_text(json.dumps(data("text_csv", path=str(train)).info.extra["vocab"]))
    with pytest.raises(RecipeError, match=r"data.vocab: .*tfidf.json holds tfidf features; the recipe asks for "
                                          "features: tokens"):
        data("text_csv", path=str(train), vocab=str(tfidf_vocab))
    with pytest.raises(RecipeError, match=r"data.vocab: .*tokens.json is a token vocabulary"):
        data("text_csv", path=str(train), vocab=str(token_vocab), features="tfidf")
    with pytest.raises(RecipeError, match=r"data.vocab: .*tfidf.json was built with ngram_range=\[1, 1\]"):
        data("text_csv", path=str(train), vocab=str(tfidf_vocab), features="tfidf", ngram_range=[1, 2])
    again = data("text_csv", path=str(train), vocab=str(tfidf_vocab), features="tfidf")
    assert torch.equal(again.train.x, b.train.x)


def test_tfidf_run_evaluates_and_predicts_raw_texts_from_its_run_directory_alone(tmp_path, monkeypatch):
    import numpy as np

    from .test_load_run import _check_loaded, _train_and_evaluate, no_data

    words = {"sport": "goal match team score win", "food": "bread cheese soup taste cook",
             "tech": "code chip data model byte"}
    rng = np.random.default_rng(0)
    rows = [(" ".join(rng.choice(v.split(), size=5)) + " " + " ".join(rng.choice("the a of and".split(), size=2)),
             label) for label, v in words.items() for _ in range(40)]
    path = write_csv(tmp_path / "texts.csv", rows)
    recipe = {"name": "tfidf", "data": {"source": "text_csv", "path": str(path), "features": "tfidf",
                                        "ngram_range": [1, 2], "sublinear_tf": True, "batch_size": 32},
              "model": {"name": "linear"}, "optim": {"lr": 0.05}, "train": {"epochs": 3, "threads": 1},
              "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False, "tensorboard": False}}
    run, outputs, bundle = _train_and_evaluate(recipe, tmp_path)  # `trainlab evaluate` reproduces the outputs
    test_texts = [rows[i][0] for i in bundle.split_indices["test"].tolist()]
    saved = json.loads((run / "data" / "vocab.json").read_text())
    assert saved["features"] == "tfidf" and len(saved["terms"]) == len(saved["idf"]) == bundle.info.input_shape[0]
    path.unlink()
    no_data(monkeypatch, tmp_path)
    loaded = _check_loaded(run, outputs, bundle)
    assert torch.equal(loaded.predict(test_texts), outputs)  # raw texts, featurized as in training
    assert (outputs.argmax(1) == bundle.test.y).float().mean() > 0.9
    assert loaded.info.extra["features"] == "tfidf" and "vocab_size" not in loaded.info.extra


def test_token_run_predicts_raw_texts_through_its_vocabulary(tmp_path):
    import trainlab

    rows = [("good film", "pos"), ("bad film", "neg")] * 20
    path = write_csv(tmp_path / "t.csv", rows)
    run = trainlab.train({"data": {"source": "text_csv", "path": str(path), "max_len": 4},
                          "model": {"name": "embedding_bag", "dim": 8, "buckets": 32},
                          "train": {"epochs": 1, "threads": 1},
                          "output": {"root": str(tmp_path / "runs"), "plots": False, "report": False,
                                     "tensorboard": False}}, progress=False)
    loaded = trainlab.load_run(run.path)
    ids = loaded.encode_texts(["Good film zebra and more", ""])
    tokens = loaded.vocab["tokens"]
    assert [[tokens[i] for i in row] for row in ids.tolist()] == [["good", "film", "<unk>", "<unk>"], ["<pad>"] * 4]
    good_film = torch.tensor([[tokens.index("good"), tokens.index("film"), 0, 0]])
    assert torch.equal(loaded.predict(["good film"]), loaded.predict(good_film))


# --- embedding_bag: hashed n-grams of token ids ---------------------------------------------------------------

def reference_bucket(ids: list[int], buckets: int) -> int:
    """models/embedding_bag.py's hash, one n-gram at a time in plain Python."""
    h = len(ids)
    for i in ids:
        h = (h * 1_000_003 + i) % (2**31 - 1)
    return h % buckets


def test_ngram_hashing_is_deterministic_masks_padding_and_matches_the_reference():
    from trainlab.models.embedding_bag import hash_ngrams

    x = torch.tensor([[5, 7, 9, 0, 0], [7, 9, 5, 7, 0], [9, 7, 9, 7, 9]])
    for n in (2, 3):
        h, keep = hash_ngrams(x, n, 1000, pad=0)
        assert h.shape == keep.shape == (3, 5 - n + 1) and h.dtype == torch.long
        again, _ = hash_ngrams(x.clone(), n, 1000, pad=0)
        assert torch.equal(h, again)
        for r, row in enumerate(x.tolist()):
            for i in range(5 - n + 1):
                gram = row[i:i + n]
                assert int(h[r, i]) == reference_bucket(gram, 1000)
                assert bool(keep[r, i]) == (0 not in gram)  # an n-gram that reaches into the padding is dropped
    h, _ = hash_ngrams(x, 2, 1000, pad=0)
    assert h[0, 0] == h[1, 2] == reference_bucket([5, 7], 1000)  # the same pair anywhere: the same bucket
    assert h[1, 0] == h[2, 1] != h[2, 0]  # (7, 9) twice, and (9, 7)
    assert hash_ngrams(x[:, :1], 2, 1000, pad=0)[0].shape == (3, 0)  # texts shorter than n: no n-gram


def token_info(vocab: int, length: int, classes: int = 2):
    from trainlab.data import DataInfo

    return DataInfo("classification", (length,), classes, classes, "tokens",
                    extra={"vocab_size": vocab, "pad_index": 0, "seq_len": length})


@pytest.mark.parametrize("ngrams,mode", [(1, "mean"), (2, "mean"), (3, "sum"), (2, "max")])
def test_embedding_bag_rows_and_padding(ngrams, mode):
    from trainlab.models import MODELS

    torch.manual_seed(0)
    model = MODELS.build("embedding_bag", {"dim": 8, "ngrams": ngrams, "buckets": 50, "mode": mode, "hidden": 4},
                         "model", info=token_info(20, 6)).eval()
    x = torch.tensor([[3, 4, 5, 6, 0, 0], [7, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    ids = model.bag_ids(x)
    assert ids.shape == (3, sum(6 - n + 1 for n in range(1, ngrams + 1)))
    assert torch.equal(ids[:, :6], x)  # the tokens themselves, then the n-grams' rows after the vocabulary
    grams = ids[:, 6:]
    assert (((grams >= 20) & (grams < 20 + 50)) | (grams == 0)).all()
    assert (grams[0] != 0).sum() == sum(4 - n + 1 for n in range(2, ngrams + 1))  # those within "3 4 5 6"
    assert (ids[1:] == 0).sum() == ids[1:].numel() - 1  # one real token, no n-gram: all else is the padding row
    out = model(x)
    assert out.shape == (3, 2)
    # more padding changes nothing: padded positions and n-grams into the padding are out of the bag
    assert torch.equal(model(torch.nn.functional.pad(x, (0, 4))), out)


def word_order_data():
    """'a sees b': the label says whether the first noun is in one half of the nouns. Swapping a and b
    gives the same bag of words with the other label whenever exactly one of them is in that half."""
    nouns = ["cat", "dog", "fox", "owl", "bee", "elk"]
    pairs = [(a, b) for a in range(6) for b in range(6) if a != b]
    x = torch.tensor([[2 + a, 8, 2 + b] for a, b in pairs])  # ids: 0 pad, 1 unk, 2-7 nouns, 8 "sees"
    y = torch.tensor([int(a < 3) for a, _ in pairs])
    return nouns, x, y


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread, and two collapse when the cores are busy (docs/performance.md)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("ngrams", [1, 2])
def test_embedding_bag_learns_word_order_only_with_bigrams(ngrams, one_thread):
    from trainlab.models import MODELS

    _, x, y = word_order_data()
    torch.manual_seed(0)
    model = MODELS.build("embedding_bag", {"dim": 16, "ngrams": ngrams, "buckets": 256}, "model",
                         info=token_info(9, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    acc = (model.eval()(x).argmax(1) == y).float().mean().item()
    if ngrams == 2:
        assert acc == 1.0 and loss.item() < 0.05
    else:  # 18 of the 30 sentences share their bag with a sentence of the other label: at most 21 of 30 right
        assert acc <= 21 / 30


def test_tfidf_features_keep_multi_label_targets(tmp_path):
    # the two halves of issue 19 meet here: `features: tfidf` on a JSONL whose labels are lists
    import json as _json

    from trainlab.data.text import text_jsonl

    rows = [("red apple pie", ["fruit", "food"]), ("green apple", ["fruit"]), ("hot soup", ["food"]),
            ("pear tart", ["fruit", "food"])] * 3
    path = tmp_path / "t.jsonl"
    path.write_text("".join(_json.dumps({"text": t, "labels": ls}) + "\n" for t, ls in rows))
    src = text_jsonl(str(path), label="labels", features="tfidf")
    assert src.task == "multilabel" and src.class_names == ["food", "fruit"]
    assert src.train.y.shape == (12, 2) and src.train.y[0].tolist() == [1.0, 1.0] and src.train.y[1].tolist() == [0.0, 1.0]
    out = src.fit({"train": src.train, "val": None, "test": None})
    assert out["train"].x.shape[0] == 12 and out["train"].x.dtype == torch.float32
    assert torch.equal(out["train"].y, src.train.y)
