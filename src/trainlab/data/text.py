"""Text sources: labelled texts (`text_csv`, `text_jsonl`) and plain text for language modelling
(`text_corpus`), tokenized at word or character level into fixed-length rows of token ids.

The vocabulary is learned from the training split only. A source encodes every token with a raw
id first; `build_data` then calls the source's `fit` on the carved training split, which counts
tokens there, keeps the `max_vocab` most frequent ones seen at least `min_freq` times and maps
every other token to <unk>. A run saves the vocabulary (data/vocab.json) and `evaluate` passes it
back as `vocab:`, so a checkpoint is always read with the ids it was trained on.

`features: bow | tfidf` (text_csv, text_jsonl) turns each text into one dense vector of n-gram
counts or TF-IDF weights instead (text_features.py), fitted on the training split the same way
and saved in data/vocab.json too.
"""
from __future__ import annotations

import glob
import io
import json
import re
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field

from ..errors import DataError, RecipeError
from .bundle import SourceData, Split
from .files import csv_row_lines, read_utf8
from . import text_features

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, level: str, lowercase: bool) -> list[str]:
    """Words and punctuation marks (`word`) or characters (`char`)."""
    text = text.lower() if lowercase else text
    return _WORD.findall(text) if level == "word" else list(text)


class RawVocab:
    """Every distinct token met while reading, with ids from 2 up (0 = <pad>, 1 = <unk>)."""

    def __init__(self):
        self.ids: dict[str, int] = {PAD: 0, UNK: 1}

    def encode(self, tokens: list[str]) -> list[int]:
        ids = self.ids
        return [ids.setdefault(t, len(ids)) for t in tokens]

    def tokens(self) -> list[str]:
        return list(self.ids)


def load_vocab(path: str, level: str, lowercase: bool) -> list[str]:
    """A saved vocabulary (a run's data/vocab.json), checked against the recipe's tokenization."""
    saved = None
    try:
        saved = json.loads(Path(path).read_text())
        tokens = saved["tokens"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        if isinstance(saved, dict) and "terms" in saved:  # a bag-of-words / TF-IDF run's featurizer
            raise RecipeError(f"data.vocab: {path} holds {saved.get('features')} features; the recipe asks for "
                              "features: tokens") from None
        raise DataError(f"{path}: not a trainlab vocabulary file ({e})") from None
    if saved.get("level") != level or saved.get("lowercase") != lowercase:
        raise RecipeError(f"data.vocab: {path} was built with level={saved.get('level')!r}, "
                          f"lowercase={saved.get('lowercase')!r}; the recipe asks for {level!r}, {lowercase!r}")
    return tokens


def fit_vocab(train_ids: torch.Tensor, raw: list[str], max_vocab: int, min_freq: int) -> list[str]:
    """The kept tokens: most frequent in `train_ids` first (ties by token), <pad> and <unk> ahead."""
    counts = torch.bincount(train_ids.flatten(), minlength=len(raw))
    counts[:2] = 0
    order = sorted((i for i in torch.nonzero(counts >= min_freq).flatten().tolist()),
                   key=lambda i: (-int(counts[i]), raw[i]))
    return [PAD, UNK] + [raw[i] for i in order[: max(0, max_vocab - 2)]]


def _vocab_fitter(src: SourceData, raw: RawVocab, level: str, lowercase: bool, max_vocab: int, min_freq: int,
                  saved: str | None, tokens_are_classes: bool):
    """The `fit` build_data calls with the carved splits: learns (or loads) the vocabulary on the
    training split and maps every split's raw ids to it."""
    def fit(splits: dict[str, Split | None]) -> dict[str, Split | None]:
        raw_tokens = raw.tokens()
        kept = (load_vocab(saved, level, lowercase) if saved else
                fit_vocab(splits["train"].x, raw_tokens, max_vocab, min_freq))
        index = {t: i for i, t in enumerate(kept)}
        lut = torch.tensor([index.get(t, 1) for t in raw_tokens], dtype=torch.long)
        lut[0] = 0
        out = {}
        for k, s in splits.items():
            if s is None:
                out[k] = None
                continue
            y = lut[s.y] if tokens_are_classes else s.y
            out[k] = Split(lut[s.x], y)
        src.extra.update(vocab_size=len(kept), pad_index=0, unk_index=1, seq_len=int(splits["train"].x.shape[1]),
                         level=level, vocab={"level": level, "lowercase": lowercase, "tokens": kept})
        if tokens_are_classes:
            src.class_names = kept
        return out
    return fit


def _encode_rows(texts: list[str], raw: RawVocab, level: str, lowercase: bool, max_len: int) -> tuple[torch.Tensor, int]:
    """(N, max_len) raw ids, truncated at max_len and right-padded with 0; and how many texts had no token."""
    out = torch.zeros(len(texts), max_len, dtype=torch.long)
    empty = 0
    for i, text in enumerate(texts):
        ids = raw.encode(tokenize(text, level, lowercase)[:max_len])
        if ids:
            out[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        else:
            empty += 1
    return out, empty


def _empty_texts(path: str, text: str, empty: int, n: int, notes: list[str]) -> None:
    """Empty texts (no token) are noted; a file of nothing but empty texts is an error."""
    if empty == n:
        raise DataError(f"{path}: all {n} texts in {text!r} (data.text) are empty (no tokens)")
    if empty:
        notes.append(f"{path}: {empty} of {n} texts in {text!r} are empty (no tokens); they are all padding")


def _read_csv(path: str, text: str, label: str) -> tuple[list[str], list[str]]:
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: file not found (data.path)")
    text_ = read_utf8(p)
    csv_row_lines(text_, path)  # a row with the wrong number of fields, named by its line
    try:
        df = pd.read_csv(io.StringIO(text_), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a readable CSV file ({str(e).splitlines()[0]})") from None
    for col, key in ((text, "data.text"), (label, "data.label")):
        if col not in df.columns:
            raise DataError(f"{path}: no column {col!r} ({key}); columns: {', '.join(map(str, df.columns))}")
    return df[text].tolist(), df[label].tolist()


def _read_jsonl(path: str, text: str, label: str) -> tuple[list[str], list[str]]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: file not found (data.path)")
    texts, labels = [], []
    with open(p, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start} of the line); "
                                "save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e})") from None
            for key, where in ((text, "data.text"), (label, "data.label")):
                if not isinstance(row, dict) or key not in row:
                    raise DataError(f"{path}:{n}: no key {key!r} ({where})")
            texts.append("" if row[text] is None else str(row[text]))
            value = row[label]  # a list of labels: multi-label data
            labels.append([str(v) for v in value] if isinstance(value, list) else "" if value is None else str(value))
    return texts, labels


def _class_ids(labels: list[str], path: str, label: str, names: list[str] | None = None) -> tuple[torch.Tensor, list[str]]:
    missing = [i for i, v in enumerate(labels) if v == ""]
    if missing:
        raise DataError(f"{path}: column {label!r} has {len(missing)} empty labels (first in data row {missing[0] + 1})")
    if names is None:
        distinct = set(labels)
        if len(distinct) < 2:
            raise DataError(f"{path}: column {label!r} (data.label) holds one label ({labels[0]!r}) in "
                            f"{len(labels)} rows; classification needs at least 2")
        numeric = all(re.fullmatch(r"-?\d+", v) for v in distinct)
        names = sorted(distinct, key=int) if numeric else sorted(distinct)
    index = {c: i for i, c in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"{path}: label {unknown[0]!r} in column {label!r} does not occur in the training file")
    return torch.tensor([index[v] for v in labels], dtype=torch.long), names


def _label_sets(labels: list, delimiter: str | None, path: str, label: str,
                names: list[str] | None = None) -> tuple[torch.Tensor, list[str]]:
    """Multi-label targets: each row's labels (a JSON list, or a string split at `delimiter`; empty:
    none) as a (N, labels) 0/1 float matrix over `names` (default: every label met, sorted)."""
    rows = [sorted({str(v).strip() for v in (lab if isinstance(lab, list) else
                                             lab.split(delimiter) if delimiter else [lab]) if str(v).strip()})
            for lab in labels]
    if names is None:
        names = sorted({v for r in rows for v in r})
        if not names:
            raise DataError(f"{path}: {label!r} (data.label) holds no labels")
    index = {c: i for i, c in enumerate(names)}
    unknown = sorted({v for r in rows for v in r} - set(index))
    if unknown:
        raise DataError(f"{path}: label {unknown[0]!r} in {label!r} does not occur in the training file")
    y = torch.zeros(len(rows), len(names))
    for i, r in enumerate(rows):
        y[i, [index[v] for v in r]] = 1.0
    return y, names


def _labelled(reader, path: str, text: str, label: str, level: str, max_len: int, max_vocab: int, min_freq: int,
              lowercase: bool, test_path: str | None, vocab: str | None,
              label_delimiter: str | None = None, ngram: dict | None = None) -> SourceData:
    texts, labels = reader(path, text, label)
    if not texts:
        raise DataError(f"{path}: no rows")
    raw = RawVocab()
    multi = label_delimiter is not None or any(isinstance(v, list) for v in labels)  # multi-label data
    y, names = (_label_sets(labels, label_delimiter, path, label) if multi else _class_ids(labels, path, label))
    if ngram is not None and ngram["features"] != "tokens":
        return _ngram_source(reader, path, text, label, texts, y, names, level, lowercase, test_path, vocab, ngram,
                             multi, label_delimiter)
    notes: list[str] = []
    x, empty = _encode_rows(texts, raw, level, lowercase, max_len)
    _empty_texts(path, text, empty, len(texts), notes)
    train = Split(x, y)
    test = None
    if test_path:
        t_texts, t_labels = reader(test_path, text, label)
        if not t_texts:
            raise DataError(f"{test_path}: no rows (data.test_path)")
        t_y, _ = (_label_sets(t_labels, label_delimiter, test_path, label, names) if multi else
                  _class_ids(t_labels, test_path, label, names))
        t_x, t_empty = _encode_rows(t_texts, raw, level, lowercase, max_len)
        _empty_texts(test_path, text, t_empty, len(t_texts), notes)
        test = Split(t_x, t_y)
    src = SourceData(train=train, test=test, task="multilabel" if multi else "classification", class_names=names,
                     kind="tokens", extra={"seq_len": max_len, "level": level}, notes=notes)
    src.fit = _vocab_fitter(src, raw, level, lowercase, max_vocab, min_freq, vocab, tokens_are_classes=False)
    return src


def _ngram_source(reader, path: str, text: str, label: str, texts: list[str], y: torch.Tensor, names: list[str],
                  level: str, lowercase: bool, test_path: str | None, vocab: str | None, ngram: dict,
                  multi: bool = False, label_delimiter: str | None = None) -> SourceData:
    """Texts as bag-of-words or TF-IDF vectors. Until `fit` runs, a sample's input is its row number
    (an (N, 1) tensor, so build_data's splits index it like any other); `fit` learns the terms and
    idf from the training rows and turns every split's rows into feature vectors."""
    text_features.check_ngram_range(ngram["ngram_range"])
    notes: list[str] = []
    docs = [tokenize(t, level, lowercase) for t in texts]
    _empty_texts(path, text, sum(1 for d in docs if not d), len(docs), notes)
    n = len(docs)
    train, test = Split(torch.arange(n)[:, None], y), None
    if test_path:
        t_texts, t_labels = reader(test_path, text, label)
        if not t_texts:
            raise DataError(f"{test_path}: no rows (data.test_path)")
        t_y, _ = _class_ids(t_labels, test_path, label, names)
        t_docs = [tokenize(t, level, lowercase) for t in t_texts]
        _empty_texts(test_path, text, sum(1 for d in t_docs if not d), len(t_docs), notes)
        docs += t_docs
        test = Split(torch.arange(n, len(docs))[:, None], t_y)
    src = SourceData(train=train, test=test, task="multilabel" if multi else "classification", class_names=names,
                     kind="vector", extra={"features": ngram["features"], "level": level}, notes=notes)
    src.fit = _ngram_fitter(src, docs, level, lowercase, vocab, **ngram)
    return src


def _ngram_fitter(src: SourceData, docs: list[list[str]], level: str, lowercase: bool, saved: str | None,
                  features: str, ngram_range: tuple[int, int], max_features: int | None, min_df: int | float,
                  sublinear_tf: bool):
    def fit(splits: dict[str, Split | None]) -> dict[str, Split | None]:
        grams = [text_features.ngrams(d, ngram_range, level) for d in docs]
        if saved:
            state = text_features.load_state(saved, features, level, lowercase, ngram_range, sublinear_tf)
        else:
            rows = splits["train"].x[:, 0].tolist()
            terms, idf = text_features.fit_terms([grams[i] for i in rows], max_features, min_df)
            state = text_features.state(features, level, lowercase, ngram_range, sublinear_tf, terms, idf)
        out = {k: None if s is None else
               Split(text_features.transform([grams[i] for i in s.x[:, 0].tolist()], state["terms"], state["idf"],
                                             sublinear_tf), s.y)
               for k, s in splits.items()}
        src.extra.update(num_features=len(state["terms"]), ngram_range=list(ngram_range), vocab=state)
        return out
    return fit


def texts_to_inputs(texts: list[str], vocab: dict, seq_len: int | None = None) -> torch.Tensor:
    """New texts as a text run's model reads them, from its saved data/vocab.json alone: (N, seq_len)
    token ids (unknown tokens <unk>, truncated, right-padded with <pad>) or, for `features: bow |
    tfidf`, (N, terms) feature rows."""
    tokens = [tokenize(t, vocab["level"], vocab["lowercase"]) for t in texts]
    if vocab.get("features", "tokens") != "tokens":
        return text_features.featurize(tokens, vocab)
    if seq_len is None:
        raise ValueError("texts_to_inputs: token inputs need seq_len")
    index = {t: i for i, t in enumerate(vocab["tokens"])}
    out = torch.zeros(len(texts), seq_len, dtype=torch.long)
    for i, toks in enumerate(tokens):
        ids = [index.get(t, 1) for t in toks[:seq_len]]
        if ids:
            out[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


Level = Literal["word", "char"]
Positive = Annotated[int, Field(ge=1)]
VocabCap = Annotated[int, Field(ge=3)]
Features = Literal["tokens", "bow", "tfidf"]
MinDf = Annotated[int, Field(ge=1)] | Annotated[float, Field(gt=0.0, le=1.0)]


def text_csv(path: str, text: str = "text", label: str = "label", level: Level = "word", max_len: Positive = 64,
             max_vocab: VocabCap = 20000, min_freq: Positive = 1, lowercase: bool = True, test_path: str | None = None,
             vocab: str | None = None, label_delimiter: str | None = None, features: Features = "tokens",
             ngram_range: tuple[Positive, Positive] = (1, 1), max_features: Positive | None = 20000, min_df: MinDf = 1,
             sublinear_tf: bool = False) -> SourceData:
    """A CSV file with a text column and a label column (any labels: strings or integers).
    `label_delimiter` (e.g. `|`): the label column lists several labels per text (`cat|dog`, empty:
    none): multi-label data.

    `features: tokens`: each text becomes `max_len` token ids (truncated, right-padded with <pad>).
    The vocabulary (at most `max_vocab` entries with <pad> and <unk>, tokens seen at least
    `min_freq` times) comes from the training split only. `features: bow | tfidf`: each whole text
    becomes one vector of its `ngram_range` n-gram counts or TF-IDF weights (scikit-learn's
    TfidfVectorizer), over the `max_features` most frequent terms in at least `min_df` training
    texts; `sublinear_tf`: 1 + ln(count). `test_path`: a separate test file; otherwise the test
    split is carved from `path`. `vocab`: reuse a saved vocabulary (a run's data/vocab.json).
    """
    return _labelled(_read_csv, path, text, label, level, max_len, max_vocab, min_freq, lowercase, test_path, vocab,
                     label_delimiter, _ngram_options(features, ngram_range, max_features, min_df, sublinear_tf))


def text_jsonl(path: str, text: str = "text", label: str = "label", level: Level = "word", max_len: Positive = 64,
               max_vocab: VocabCap = 20000, min_freq: Positive = 1, lowercase: bool = True, test_path: str | None = None,
               vocab: str | None = None, label_delimiter: str | None = None, features: Features = "tokens",
               ngram_range: tuple[Positive, Positive] = (1, 1), max_features: Positive | None = 20000,
               min_df: MinDf = 1, sublinear_tf: bool = False) -> SourceData:
    """A JSON-lines file, one object per line with a text key and a label key; options as text_csv.
    A label that is a list (`"labels": ["cat", "dog"]`) makes multi-label data."""
    return _labelled(_read_jsonl, path, text, label, level, max_len, max_vocab, min_freq, lowercase, test_path,
                     vocab, label_delimiter, _ngram_options(features, ngram_range, max_features, min_df, sublinear_tf))


def _ngram_options(features: str, ngram_range, max_features, min_df, sublinear_tf) -> dict:
    return {"features": features, "ngram_range": tuple(int(n) for n in ngram_range), "max_features": max_features,
            "min_df": min_df, "sublinear_tf": bool(sublinear_tf)}


def _corpus_text(path: str | list[str] | None, corpus: str) -> str:
    if corpus == "pydoc_topics":
        from pydoc_data.topics import topics  # the Python language reference, shipped with Python

        return "\n\n".join(topics[k] for k in sorted(topics))
    if not path:
        raise RecipeError("data.path: text_corpus needs `path` (files or glob patterns) or `corpus: pydoc_topics`")
    files: list[str] = []
    for pattern in [path] if isinstance(path, str) else path:
        found = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not found:
            raise DataError(f"{pattern}: no file matches (data.path)")
        files += found
    parts = [read_utf8(f) for f in files]
    if not any(p.strip() for p in parts):
        raise DataError(f"{', '.join(files)}: no text (data.path)")
    return "\n\n".join(parts)


def _windows(ids: torch.Tensor, seq_len: int, stride: int) -> Split:
    """x = tokens[s : s+seq_len], y = tokens[s+1 : s+seq_len+1] for s = 0, stride, ..."""
    if len(ids) < seq_len + 1:
        return Split(torch.zeros(0, seq_len, dtype=torch.long), torch.zeros(0, seq_len, dtype=torch.long))
    w = ids.unfold(0, seq_len + 1, stride)
    return Split(w[:, :-1].contiguous(), w[:, 1:].contiguous())


def text_corpus(path: str | list[str] | None = None, corpus: Literal["files", "pydoc_topics"] = "files",
                level: Level = "char", seq_len: Positive = 128, stride: Positive | None = None,
                holdout: Annotated[float, Field(ge=0, lt=1)] = 0.1, max_vocab: VocabCap = 20000, min_freq: Positive = 1, lowercase: bool = False,
                vocab: str | None = None) -> SourceData:
    """Plain text for language modelling: windows of `seq_len` tokens, each target the next token.

    `path`: a file, a glob pattern or a list of them (read as UTF-8 and joined); or
    `corpus: pydoc_topics`, the Python language reference that every Python ships (~465 KB).
    The last `holdout` share of the text is the test split (contiguous, so no test window overlaps
    a training one); training windows start every `stride` tokens (default: seq_len, no overlap).
    """
    text = _corpus_text(path, corpus)
    raw = RawVocab()
    ids = torch.tensor(raw.encode(tokenize(text, level, lowercase)), dtype=torch.long)
    cut = int(len(ids) * (1 - holdout))
    train, test = _windows(ids[:cut], seq_len, stride or seq_len), _windows(ids[cut:], seq_len, seq_len)
    if len(train) < 2:
        raise DataError(f"text_corpus: {cut} training tokens make fewer than 2 windows of {seq_len + 1}; "
                        "lower data.seq_len or add text")
    src = SourceData(train=train, test=test if len(test) else None, task="classification", kind="tokens",
                     extra={"seq_len": seq_len, "level": level, "tokens": len(ids), "sequence_targets": True})
    src.fit = _vocab_fitter(src, raw, level, lowercase, max_vocab, min_freq, vocab, tokens_are_classes=True)
    return src
