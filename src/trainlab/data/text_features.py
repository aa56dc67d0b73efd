"""Bag-of-words and TF-IDF features of texts (`data.features: bow | tfidf` of text_csv / text_jsonl),
so linear models and MLPs work on text.

Numerically the same as scikit-learn's `CountVectorizer` / `TfidfVectorizer(smooth_idf=True,
norm="l2")` fed the same tokens (trainlab's tokenizer, see text.py; tests/test_text_features.py
checks the equality): terms are the word (or character) n-grams of `ngram_range`; terms are kept
whose document frequency on the training split lies at or above `min_df` (a count, or a share of
the documents); of those the `max_features` most frequent in the training split (ties
alphabetically); the columns are the kept terms in alphabetical order (scikit-learn breaks ties at the `max_features` cut in an
unspecified order, trainlab alphabetically). TF-IDF is
tf · idf with idf = ln((1 + n) / (1 + df)) + 1 (n training documents), tf the count (or
1 + ln(count) with `sublinear_tf`), each row scaled to unit L2 norm. Bag of words is the counts
(1 + ln(count) with `sublinear_tf`), unnormalized. Everything is fitted on the training split only.

The rows are dense float32: right for a few thousand texts × ≤ 20k features (2,600 × 20,000 is
208 MB); far more texts or terms need a sparse matrix, which no trainlab model reads today.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError, RecipeError


def ngrams(tokens: list[str], ngram_range: tuple[int, int], level: str) -> list[str]:
    """The n-grams of a token list for n in `ngram_range` (inclusive), as scikit-learn forms them:
    words joined by a space, characters joined as they stand (scikit-learn's `analyzer="char"`
    also collapses each run of white space to one space first; trainlab's character tokens keep it)."""
    lo, hi = ngram_range
    join = " ".join if level == "word" else "".join
    out = list(tokens) if lo == 1 else []
    for n in range(max(lo, 2), hi + 1):
        out += [join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return out


def check_ngram_range(ngram_range: tuple[int, int]) -> None:
    if ngram_range[0] > ngram_range[1]:
        raise RecipeError(f"data.ngram_range: [{ngram_range[0]}, {ngram_range[1]}] must be [min_n, max_n] "
                          "with min_n ≤ max_n, e.g. [1, 2]")


def fit_terms(docs: list[list[str]], max_features: int | None, min_df: int | float) -> tuple[list[str], list[float]]:
    """The kept terms (alphabetical) and their smoothed idf, from the training documents' n-grams."""
    n = len(docs)
    df: Counter[str] = Counter()
    tf: Counter[str] = Counter()
    for doc in docs:
        tf.update(doc)
        df.update(set(doc))
    least = min_df if isinstance(min_df, int) else min_df * n
    terms = sorted(t for t, d in df.items() if d >= least)
    if max_features is not None and len(terms) > max_features:
        # the most frequent in the training split; a stable sort keeps ties in alphabetical order
        top = sorted(range(len(terms)), key=lambda i: -tf[terms[i]])[:max_features]
        terms = [terms[i] for i in sorted(top)]
    if not terms:
        raise DataError(f"data.min_df: {min_df} keeps no term of the {n} training texts; lower it")
    idf = [math.log((1 + n) / (1 + df[t])) + 1.0 for t in terms]
    return terms, idf


def transform(docs: list[list[str]], terms: list[str], idf: list[float] | None, sublinear_tf: bool) -> torch.Tensor:
    """(len(docs), len(terms)) float32 rows: counts (bag of words, `idf` None) or L2-normalized TF-IDF."""
    index = {t: i for i, t in enumerate(terms)}
    rows, cols, vals = [], [], []
    for r, doc in enumerate(docs):
        for t, c in Counter(doc).items():
            j = index.get(t)
            if j is not None:
                rows.append(r)
                cols.append(j)
                vals.append(c)
    r, c = torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)
    v = torch.tensor(vals, dtype=torch.float64)  # the arithmetic in float64, as scikit-learn's
    if sublinear_tf:
        v = 1.0 + torch.log(v)
    if idf is not None:
        v = v * torch.tensor(idf, dtype=torch.float64)[c]
        norm = torch.zeros(len(docs), dtype=torch.float64).index_add_(0, r, v * v).sqrt()
        v = v / norm[r]  # only rows with a term have entries: an empty text stays a zero row
    x = torch.zeros(len(docs), len(terms), dtype=torch.float32)
    x[r, c] = v.float()
    return x


def state(features: str, level: str, lowercase: bool, ngram_range: tuple[int, int], sublinear_tf: bool,
          terms: list[str], idf: list[float]) -> dict[str, Any]:
    """What a run saves (data/vocab.json) to featurize new texts exactly as its training data."""
    return {"features": features, "level": level, "lowercase": lowercase, "ngram_range": list(ngram_range),
            "sublinear_tf": sublinear_tf, "terms": terms, "idf": idf if features == "tfidf" else None}


def load_state(path: str, features: str, level: str, lowercase: bool, ngram_range: tuple[int, int],
               sublinear_tf: bool) -> dict[str, Any]:
    """A saved featurizer (a run's data/vocab.json), checked against the recipe's options."""
    import json

    try:
        saved = json.loads(Path(path).read_text())
        saved["terms"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        if isinstance(e, KeyError):
            raise RecipeError(f"data.vocab: {path} is a token vocabulary (features: tokens); "
                              f"the recipe asks for features: {features}") from None
        raise DataError(f"{path}: not a trainlab vocabulary file ({e})") from None
    want = {"features": features, "level": level, "lowercase": lowercase, "ngram_range": list(ngram_range),
            "sublinear_tf": sublinear_tf}
    for k, v in want.items():
        if saved.get(k) != v:
            raise RecipeError(f"data.vocab: {path} was built with {k}={saved.get(k)!r}; the recipe asks for {v!r}")
    return saved


def featurize(token_lists: list[list[str]], saved: dict[str, Any]) -> torch.Tensor:
    """Tokenized texts -> the feature rows of a saved featurizer (see `state`)."""
    rng = tuple(saved["ngram_range"])
    docs = [ngrams(t, rng, saved["level"]) for t in token_lists]
    return transform(docs, saved["terms"], saved["idf"] if saved["features"] == "tfidf" else None,
                     bool(saved["sublinear_tf"]))
