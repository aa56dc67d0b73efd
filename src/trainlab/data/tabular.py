"""Tabular sources (`csv`, `parquet`): named feature and target columns, task inferred or given,
categorical features one-hot encoded, missing values imputed or their rows dropped.

The encoders are fitted on the training split only: a source keeps the table and hands
`build_data` row numbers; its `fit` then learns imputation values and one-hot categories
(scikit-learn's SimpleImputer and OneHotEncoder) on the training rows and encodes every split.
What was dropped or imputed is reported as a note, never silently.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from ..errors import DataError, RecipeError
from .bundle import SourceData, Split
from .files import csv_row_lines, read_utf8

Missing = Literal["mean", "median", "most_frequent", "drop"]
Infinite = Literal["error", "missing"]
Task = Literal["auto", "classification", "regression", "multilabel"]


def read_table_file(path: str | Path, fmt: str, sep: str = ",", text_columns: list[str] = (),
                    key: str = "data.path"):
    """A table file and, per data row, where it is (`file:line` for CSV, `file row N` for Parquet and
    TSV). `fmt` csv (fields split by `sep`) or parquet; `text_columns` are read as the text they
    hold ("02" stays "02"), as training reads a column of words. DataError naming `path` (and `key`,
    the option or argument that gave it) for a missing, unreadable or empty file."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: file not found ({key})")
    lines = None
    try:
        if fmt == "csv":
            text = read_utf8(p)
            if sep == ",":
                lines = csv_row_lines(text, str(path))  # rows with the wrong number of fields: named, not padded
            dtype = None
            if text_columns:
                header = pd.read_csv(io.StringIO(text), sep=sep, nrows=0).columns
                dtype = {c: str for c in text_columns if c in header}
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=dtype)
        else:
            df = pd.read_parquet(p)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        kind = "tsv" if sep == "\t" else fmt
        raise DataError(f"{path}: not a readable {kind} file ({(str(e).splitlines() or [''])[0]})") from None
    if df.empty:
        raise DataError(f"{path}: no rows")
    where = ([f"{path}:{n}" for n in lines] if lines is not None and len(lines) == len(df)
             else [f"{path} row {i + 1}" for i in range(len(df))])
    return df, where


def _clean(df, where: list[str], feats: list, targets: list, na_values: list[str], infinite: str):
    """Blank cells and `na_values` become missing; a text column whose values are all numbers
    becomes numeric; a feature column of numbers with stray words is an error (never silently
    one-hot encoded); ±inf is an error unless `infinite: missing`. Returns (df, notes)."""
    import pandas as pd

    notes = []
    df = df.copy()
    for c in df.columns:
        col = df[c]
        if _is_numeric(col) or pd.api.types.is_bool_dtype(col):
            continue
        text = col.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
        blank = text.map(lambda v: isinstance(v, str) and (v == "" or v in na_values))
        text = text.mask(blank)
        present = text.notna()
        numbers = pd.to_numeric(text[present], errors="coerce")
        if present.any() and numbers.notna().all():
            df[c] = pd.to_numeric(text, errors="coerce")
        elif c in feats and present.any() and numbers.notna().mean() >= 0.5:
            bad = numbers.index[numbers.isna()]
            first, n_bad = bad[0], len(bad)
            raise DataError(f"{where[first]}: column {str(c)!r} holds numbers but {text[first]!r} here "
                            f"({n_bad} such cell{'s' if n_bad > 1 else ''}); leave missing values empty or "
                            "list the marker in data.na_values")
        elif blank.any():
            df[c] = text
    infinite_cells = {}  # column -> mask of its ±inf cells
    for c in dict.fromkeys([*feats, *targets]):
        if _is_numeric(df[c]):
            inf = np.isinf(df[c].to_numpy(dtype=float))
            if inf.any():
                infinite_cells[c] = inf
    if infinite_cells and infinite != "missing":
        first = min(int(np.flatnonzero(m)[0]) for m in infinite_cells.values())
        c = next(c for c, m in infinite_cells.items() if m[first])
        n_inf = int(sum(m.sum() for m in infinite_cells.values()))
        what = "target" if c in targets else "column"
        raise DataError(f"{where[first]}: {what} {str(c)!r} is {float(df[c].iloc[first]):+} ({n_inf} infinite "
                        f"cell{'s' if n_inf > 1 else ''}); fix the data or set data.infinite: missing to treat "
                        "them as missing values")
    for c, inf in infinite_cells.items():
        df[c] = df[c].mask(inf)
        notes.append(f"{int(inf.sum())} infinite cells of column {str(c)!r} read as missing (data.infinite: missing)")
    return df, notes


def _is_numeric(col) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def infer_task(col, max_classes: int) -> str:
    """Classification for text, bool or integer-valued targets with at most `max_classes` values."""
    if not _is_numeric(col):
        return "classification"
    values = col.to_numpy(dtype=float)
    if np.all(values == np.round(values)) and col.nunique() <= max_classes:
        return "classification"
    return "regression"


def _label_names(col) -> list:
    values = col.unique().tolist()
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def table(path: str, target: str | list[str], features: list[str] | Literal["all"] = "all", task: Task = "auto",
          missing: Missing = "mean", max_classes: Annotated[int, Field(ge=2)] = 20, test_path: str | None = None,
          fmt: str = "csv", na_values: list[str] | None = None, infinite: Infinite = "error",
          label_delimiter: str | None = None) -> SourceData:
    import pandas as pd

    targets = list(target) if isinstance(target, list) else [target]
    multi = isinstance(target, list) or label_delimiter is not None
    if task == "multilabel" and not multi:
        raise RecipeError("data.task: multilabel needs data.target as a list of 0/1 columns, or "
                          "data.label_delimiter for a column of delimited labels (e.g. 'cat|dog')")
    if multi and task not in ("auto", "multilabel"):
        raise RecipeError(f"data.task: {task!r}, but data.target names several 0/1 columns (or "
                          "data.label_delimiter is set): that is multi-label data; use auto or multilabel")
    if isinstance(target, list) and label_delimiter is not None:
        raise RecipeError("data.label_delimiter: give either several target columns or one delimited column")
    if isinstance(target, list) and (not target or len(set(target)) != len(target)):
        raise RecipeError(f"data.target: expected distinct column names, got {target!r}")

    df, where = read_table_file(path, fmt)
    n_train_file = len(df)
    if test_path:
        test_df, test_where = read_table_file(test_path, fmt, key="data.test_path")
        df, where = pd.concat([df, test_df], ignore_index=True), where + test_where
    columns = [str(c) for c in df.columns]
    for t in targets:
        if t not in df.columns:
            raise DataError(f"{path}: no target column {t!r} (data.target); columns: {', '.join(columns)}")
    feats = [c for c in df.columns if c not in targets] if features == "all" else list(features)
    for c in feats:
        if c not in df.columns:
            raise DataError(f"{path}: no feature column {c!r} (data.features); columns: {', '.join(columns)}")
        if c in targets:
            raise RecipeError(f"data.features: {c!r} is a target column")
    if not feats:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    df, notes = _clean(df, where, feats, targets, list(na_values or []), infinite)
    # a delimited label cell left empty is a row with no label, not a missing target
    keep = (df[targets].notna().all(axis=1).to_numpy().copy() if label_delimiter is None
            else np.ones(len(df), dtype=bool))
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum())} rows whose target {target!r} is missing")
    if missing == "drop":
        complete = df[feats].notna().all(axis=1).to_numpy()
        dropped = keep & ~complete
        if dropped.any():
            notes.append(f"dropped {int(dropped.sum())} rows with missing feature values "
                         f"({int(df.loc[dropped, feats].isna().sum().sum())} empty cells; data.missing: drop)")
        keep = keep & complete
    is_test = np.arange(len(df)) >= n_train_file
    df, is_test = df[keep].reset_index(drop=True), is_test[keep]
    if len(df) == 0:
        raise DataError(f"{path}: no rows left after dropping rows with missing values")

    kind = "multilabel" if multi else infer_task(df[target], max_classes) if task == "auto" else task
    if kind == "multilabel":
        y, class_names = _label_matrix(df, targets, label_delimiter, where, path)
    elif kind == "classification":
        names = _label_names(df[target])
        in_train = _label_names(df[target][~is_test])
        if not in_train:
            raise DataError(f"{path}: no rows left after dropping rows with missing values")
        if len(in_train) < 2:
            raise DataError(f"{path}: target column {target!r} holds one class ({in_train[0]!r}) in "
                            f"{int((~is_test).sum())} rows; classification needs at least 2")
        index = {v: i for i, v in enumerate(names)}
        y = torch.tensor([index[v] for v in df[target].tolist()], dtype=torch.long)
        class_names = [str(int(v)) if isinstance(v, float) and v == int(v) else str(v) for v in names]
    else:
        if not _is_numeric(df[target]):
            raise DataError(f"{path}: target column {target!r} is not numeric; regression needs numbers "
                            "(or set data.task: classification)")
        y = torch.tensor(df[target].to_numpy(dtype=np.float32)).unsqueeze(1)
        class_names = None

    x = df[feats].copy()
    categorical = [c for c in feats if not _is_numeric(x[c])]
    for c in categorical:  # one missing marker (np.nan) and plain strings for the encoder
        x[c] = x[c].astype(object).map(str, na_action="ignore")
    numeric = [c for c in feats if c not in categorical]
    rows = torch.arange(len(df))
    train = Split(rows[~torch.from_numpy(is_test)], y[~torch.from_numpy(is_test)])
    test = Split(rows[torch.from_numpy(is_test)], y[torch.from_numpy(is_test)]) if test_path else None
    src = SourceData(train=train, test=test, task=kind, class_names=class_names, kind="tabular", notes=notes,
                     extra={"target": target, "features": [str(c) for c in feats], "categorical": categorical})

    def fit(splits: dict[str, Split | None]) -> dict[str, Split | None]:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder

        strategy = "mean" if missing == "drop" else missing
        parts = []
        if numeric:
            parts.append(("num", SimpleImputer(strategy=strategy, keep_empty_features=True), numeric))
        if categorical:
            parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                                               OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                          categorical))
        ct = ColumnTransformer(parts)
        ct.fit(x.iloc[splits["train"].x.numpy()])  # imputation values and categories: training rows only
        out, imputed = {}, 0
        for k, s in splits.items():
            if s is None:
                out[k] = None
                continue
            sub = x.iloc[s.x.numpy()]
            imputed += int(sub.isna().sum().sum())
            if len(sub) == 0:  # e.g. data.test_fraction: 0 (scikit-learn refuses to transform no rows)
                out[k] = Split(torch.zeros(0, len(ct.get_feature_names_out())), s.y)
                continue
            out[k] = Split(torch.tensor(ct.transform(sub), dtype=torch.float32), s.y)
        if imputed:
            cats = "categorical columns: its most frequent value; " if categorical else ""
            src.notes.append(f"imputed {imputed} missing cells with the {strategy} of the training split "
                             f"({cats}data.missing: {missing})")
        src.extra["encoded_features"] = [str(n) for n in ct.get_feature_names_out()]
        src.extra["columns"] = _fitted_columns(ct, numeric, categorical)
        return out

    src.fit = fit
    return src


def _label_matrix(df, targets: list, delimiter: str | None, where: list[str], path: str):
    """Multi-label targets as a (N, labels) 0/1 float matrix and the label names: several 0/1 (or
    true/false) columns, or one column of `delimiter`-separated labels (an empty cell: no label)."""
    if delimiter is not None:
        col = targets[0]
        cells = ["" if not isinstance(v, str) and v != v else str(v) for v in df[col].tolist()]  # NaN: no label
        rows = [sorted({p.strip() for p in v.split(delimiter) if p.strip()}) for v in cells]
        names = sorted({lab for r in rows for lab in r})
        if not names:
            raise DataError(f"{path}: column {col!r} (data.target) holds no labels split by {delimiter!r} "
                            "(data.label_delimiter)")
        index = {n: i for i, n in enumerate(names)}
        y = torch.zeros(len(rows), len(names))
        for i, r in enumerate(rows):
            y[i, [index[lab] for lab in r]] = 1.0
        return y, names
    cols = []
    for c in targets:
        v = df[c]
        values = v.astype(float).to_numpy() if (_is_numeric(v) or v.dtype == bool) else None
        bad = None if values is None else np.flatnonzero((values != 0) & (values != 1))
        if values is None or len(bad):
            first = int(bad[0]) if values is not None else 0
            raise DataError(f"{where[first]}: target column {str(c)!r} holds {v.tolist()[first]!r}; a multi-label "
                            "target column holds 0/1 (or true/false)")
        cols.append(torch.tensor(values, dtype=torch.float32))
    return torch.stack(cols, dim=1), [str(c) for c in targets]


def _fitted_columns(ct, numeric: list, categorical: list) -> dict:
    """What the fitted encoder learned, as JSON for data/info.json: each numeric column's
    imputation value, each categorical column's categories (in one-hot order) and fill value."""
    out: dict = {"numeric": {}, "categorical": {}}
    if numeric:
        out["numeric"] = {str(c): float(v) for c, v in zip(numeric, ct.named_transformers_["num"].statistics_)}
    if categorical:
        pipe = ct.named_transformers_["cat"]
        imputer, encoder = pipe[0], pipe[-1]
        out["categorical"] = {str(c): {"categories": [str(v) for v in cats], "fill": str(fill)}
                              for c, cats, fill in zip(categorical, encoder.categories_, imputer.statistics_)}
    return out


def csv(path: str, target: str | list[str], features: list[str] | Literal["all"] = "all", task: Task = "auto",
        missing: Missing = "mean", max_classes: Annotated[int, Field(ge=2)] = 20,
        test_path: str | None = None, na_values: list[str] = [], infinite: Infinite = "error",
        label_delimiter: str | None = None) -> SourceData:
    """A CSV table: `target` column, `features` (a list, or `all` but the target); task inferred
    (classification for text/bool targets or integers with ≤ `max_classes` values) or given;
    categorical features one-hot encoded; `missing`: impute (mean/median/most_frequent) or drop rows.
    Empty cells and `na_values` (e.g. `["?"]`) are missing; ±inf is an error unless `infinite: missing`.
    A row with the wrong number of fields, or a word in a column of numbers, is an error naming its line.
    Multi-label (task `multilabel`): `target` a list of 0/1 columns, or one column of labels separated
    by `label_delimiter` (e.g. `cat|dog`)."""
    return table(path, target, features, task, missing, max_classes, test_path, "csv", na_values, infinite,
                 label_delimiter)


def parquet(path: str, target: str | list[str], features: list[str] | Literal["all"] = "all", task: Task = "auto",
            missing: Missing = "mean", max_classes: Annotated[int, Field(ge=2)] = 20,
            test_path: str | None = None, na_values: list[str] = [], infinite: Infinite = "error",
            label_delimiter: str | None = None) -> SourceData:
    """A Parquet table; options as csv."""
    return table(path, target, features, task, missing, max_classes, test_path, "parquet", na_values, infinite,
                 label_delimiter)
