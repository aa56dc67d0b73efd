"""Raw inputs read into the arrays a run's exported graph takes (see graph.py for the spec):
images (files, folders, bytes) resized and converted as at training, table rows encoded with the
training vocabulary, texts, `.npy` arrays. Reads with the data sources' own decoders.

`read_inputs(sources, loaded)` is what `trainlab predict` calls: every INPUT, by the run's data kind,
into one array plus a name per sample (the file, `file:line` of a table row or text line, `a.npy[3]`).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError, RunDirError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
TABLE_EXTENSIONS = (".csv", ".tsv", ".parquet")
TEXT_EXTENSIONS = (".txt",)


def image_array(source: str | Path | bytes | BinaryIO, shape: tuple[int, ...], where: str | None = None,
                max_pixels: int | None = None) -> np.ndarray:
    """One image (a path, its bytes or an open file) as (C, H, W) float32 pixels in 0-255 for an
    input of `shape` (C, H, W): converted to grayscale (C 1) or RGB (C 3), resized bilinearly to
    H x W as `image_folder` does at training. DataError naming `where` for what is not an image, or
    for one of more than `max_pixels` (a small PNG can declare 12000x12000: the server's guard)."""
    from ..data.folder import decode_image

    c, h, w = (int(s) for s in shape)
    name = where or (str(source) if isinstance(source, (str, Path)) else "image")
    if c not in (1, 3):
        raise DataError(f"{name}: the model takes {c}-channel inputs; images give 1 or 3 channels")
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    return decode_image(f, (h, w), "grayscale" if c == 1 else "rgb", name, max_pixels).astype(np.float32)


@dataclass
class Inputs:
    """Samples read from files: `x` (N, *input shape), `names[i]` says where sample i came from;
    `notes`: what was ignored or mapped (extra columns, unknown categories, skipped files)."""

    names: list[str]
    x: np.ndarray
    notes: list[str] = field(default_factory=list)


def read_inputs(sources: list[str], loaded: Any, texts: list[str] | None = None) -> Inputs:
    """Every source (a file or folder; `texts`: literal texts for a text run) as the raw input of
    `loaded`'s graph (`loaded`: an `api.LoadedRun`). Which files a run reads depends on its data:
    images and folders of them for image runs, CSV/TSV/Parquet for table runs, `.txt` (one text a
    line) for text runs, `.npy` arrays of the raw input shape for every run. DataError naming the
    file for a missing, unreadable or unsuitable input."""
    info = loaded.info
    shape = tuple(int(s) for s in info.input_shape)
    is_text = loaded.vocab is not None
    accepted = (IMAGE_EXTENSIONS if info.kind == "image" else TABLE_EXTENSIONS if info.kind == "tabular"
                else TEXT_EXTENSIONS if is_text else ()) + (".npy",)
    what = _a(info.kind) + (" (text)" if is_text else "")
    if texts and not is_text:
        raise DataError(f"--text: {loaded.path} is {_a(info.kind)} run, not a text run; give it "
                        f"{', '.join(accepted)} files")
    names: list[str] = []
    parts: list[np.ndarray] = []
    notes: list[str] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise DataError(f"{src}: no such file or folder")
        if p.is_dir():
            if info.kind != "image":
                raise DataError(f"{src}: a folder; {what} run reads {', '.join(accepted)} files")
            n, x = _image_folder(p, shape, notes)
        elif p.suffix.lower() not in accepted:
            raise DataError(f"{src}: {what} run reads {', '.join(accepted)} "
                            f"files{' and folders of images' if info.kind == 'image' else ''}; got {p.suffix or 'no extension'}")
        elif p.suffix.lower() == ".npy":
            n, x = _npy(p, shape, info.kind == "tokens")
        elif info.kind == "image":
            n, x = [str(p)], image_array(p, shape)[None]
        elif info.kind == "tabular":
            n, x = read_table(p, info, loaded.recipe.data.options(), notes)
        else:
            n, lines = text_lines(p)
            x = np.asarray(loaded.encode_texts(lines).numpy())
        names += n
        parts.append(x)
    if texts:
        names += [t if len(t) <= 60 else t[:59] + "…" for t in texts]  # a literal text is named by itself
        parts.append(np.asarray(loaded.encode_texts(list(texts)).numpy()))
    if not names:
        raise DataError("no inputs: give files or folders to predict on"
                        + (" (or --text TEXT)" if is_text else ""))
    # no cast here: `Predictor.check` refuses what does not fit the graph (e.g. float token ids)
    return Inputs(names, np.concatenate(parts), notes)


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _image_folder(root: Path, shape: tuple[int, ...], notes: list[str]) -> tuple[list[str], np.ndarray]:
    """Every PNG/JPEG under `root` (recursively, sorted by path; class subfolders are fine), hidden
    files aside; other files are skipped with a note."""
    files = sorted(f for f in root.rglob("*") if f.is_file() and not any(
        part.startswith(".") for part in f.relative_to(root).parts))
    images = [f for f in files if f.suffix.lower() in IMAGE_EXTENSIONS]
    if len(images) < len(files):
        other = [f for f in files if f.suffix.lower() not in IMAGE_EXTENSIONS]
        many = len(other) > 1
        notes.append(f"{root}: skipped {len(other)} file{'s that are not PNG or JPEG images' if many else ' that is not a PNG or JPEG image'} "
                     f"(e.g. {other[0].relative_to(root)})")
    if not images:
        raise DataError(f"{root}: no PNG or JPEG images in the folder")
    return [str(f) for f in images], np.stack([image_array(f, shape) for f in images])


def _npy(path: Path, shape: tuple[int, ...], token_ids: bool) -> tuple[list[str], np.ndarray]:
    """A `.npy` array of the raw input: (N, *shape) or one sample of `shape` (integers for `token_ids`);
    DataError naming the expected and the given shape or type."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npy array ({(str(e).splitlines() or [''])[0]})") from None
    if x.ndim == len(shape) and tuple(x.shape) == shape:
        x = x[None]
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise DataError(f"{path}: expected shape (N, {', '.join(map(str, shape))}) or "
                        f"({', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{path}: expected numbers, got {x.dtype}")
    if token_ids and not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{path}: expected integer token ids, got {x.dtype}")
    return [f"{path}[{i}]" for i in range(len(x))], x


def text_lines(path: Path) -> tuple[list[str], list[str]]:
    """A text file's non-blank lines, one text each, named `file:line`."""
    from ..data.files import read_utf8

    names, lines = [], []
    for i, line in enumerate(read_utf8(path).splitlines(), start=1):
        if line.strip():
            names.append(f"{path}:{i}")
            lines.append(line)
    if not lines:
        raise DataError(f"{path}: no texts (one text a line; the file is empty or blank)")
    return names, lines


def read_table(path: Path, info: Any, options: dict[str, Any], notes: list[str]) -> tuple[list[str], np.ndarray]:
    """A CSV/TSV/Parquet file's rows named `file:line` (CSV) or `file row N`, encoded with `encode_table`;
    `options` are the run's data options (na_values, infinite), read as at training."""
    from ..data.tabular import read_table_file

    fmt = path.suffix.lower()
    df, where = read_table_file(path, "parquet" if fmt == ".parquet" else "csv", "\t" if fmt == ".tsv" else ",",
                                list(info.extra.get("categorical") or []), key="INPUT")
    return where, encode_table(df, info, where, str(path), list(options.get("na_values") or []),
                               options.get("infinite", "error"), notes)


def encode_table(df: Any, info: Any, where: list[str], path: str, na_values: list[str], infinite: str,
                 notes: list[str]) -> np.ndarray:
    """Table rows (a pandas DataFrame) as the encoded feature rows training's ColumnTransformer made,
    from data/info.json alone: numeric columns as they are (NaN for a missing cell: the graph imputes
    it with the training value), then each categorical column one-hot over its training categories
    (a missing cell -> the column's fill category, an unknown category -> all zeros, as
    OneHotEncoder(handle_unknown="ignore")), in `encoded_features` order. Blank cells and `na_values`
    are missing, as at training. DataError naming the missing columns (expected vs given), or the
    file:line and column of a cell that is not a number; extra columns are ignored with a note."""
    extra = info.extra
    columns = extra.get("columns") or {}
    numeric_fill = columns.get("numeric") or {}
    cats = columns.get("categorical") or {}
    features = [str(c) for c in (extra.get("features") or extra.get("feature_names") or [])]
    if not features:
        raise RunDirError(f"{path}: the run's data/info.json names no feature columns; give a .npy array of "
                          "encoded rows instead")
    categorical = [c for c in features if c in cats]
    numeric = [c for c in features if c not in cats]
    given = [str(c) for c in df.columns]
    df.columns = given
    missing = [c for c in features if c not in given]
    if missing:
        raise DataError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
                        f"the run was trained on columns {', '.join(features)}; "
                        f"{'the instances have' if path == 'instances' else 'the file has'} {', '.join(given)}")
    ignored = [c for c in given if c not in features]
    if ignored:
        target = extra.get("target")
        targets = set(target if isinstance(target, list) else [target])
        named = [f"{c!r} (the target)" if c in targets else repr(c) for c in ignored]
        notes.append(f"{path}: ignored column{'s' if len(ignored) > 1 else ''} the model does not use: {', '.join(named)}")

    out = []
    for c in numeric:
        out.append(_numeric_column(df[c], c, where, path, na_values, infinite, c in numeric_fill)[:, None])
    for c in categorical:
        text = _cells(df[c], na_values)
        known = cats[c]["categories"]
        if set(known) <= {"True", "False"}:  # training read a true/false column as booleans ("TRUE" -> "True")
            text = text.map(lambda v: v.capitalize() if isinstance(v, str) and v.lower() in ("true", "false") else v)
        values = text.fillna(cats[c]["fill"]).map(str)
        unknown = ~values.isin(known)
        if unknown.any():
            first = values[unknown].iloc[0]
            many = unknown.sum() > 1
            notes.append(f"{path}: column {c!r}: {int(unknown.sum())} cell{'s hold categories' if many else ' holds a category'} "
                         f"unseen at training (e.g. {first!r}; training had {', '.join(known)}): "
                         "encoded as all zeros, as at training")
        out.append((values.to_numpy()[:, None] == np.asarray(known, dtype=object)[None, :]).astype(np.float64))
    x = np.concatenate(out, axis=1) if out else np.zeros((len(df), 0))
    names = [f"num__{c}" for c in numeric] + [f"cat__{c}_{v}" for c in categorical for v in cats[c]["categories"]]
    encoded = extra.get("encoded_features")
    if encoded is not None and list(encoded) != names:
        raise RunDirError(f"{path}: the run's data/info.json encodes {len(encoded)} features ({', '.join(encoded[:4])}, "
                          f"...) that its columns do not explain ({', '.join(names[:4])}, ...)")
    return x.astype(np.float32)


def _cells(col: Any, na_values: list[str]) -> Any:
    """A text column with cells stripped and blank / `na_values` cells missing, as training's `_clean`."""
    text = col.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
    blank = text.map(lambda v: isinstance(v, str) and (v == "" or v in na_values))
    return text.mask(blank)


def _numeric_column(col: Any, name: str, where: list[str], path: str, na_values: list[str], infinite: str,
                    imputed: bool) -> np.ndarray:
    import pandas as pd

    if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
        text = _cells(col, na_values)
        values = pd.to_numeric(text, errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() & text.notna().to_numpy())
        if len(bad):
            raise DataError(f"{where[bad[0]]}: column {name!r} holds numbers at training but {text.iloc[bad[0]]!r} "
                            f"here ({len(bad)} such cell{'s' if len(bad) > 1 else ''}); leave missing values empty "
                            "or use the run's data.na_values")
        col = values
    x = col.to_numpy(dtype=np.float64)
    inf = np.isinf(x)
    if inf.any():
        if infinite != "missing":
            first = int(np.flatnonzero(inf)[0])
            raise DataError(f"{where[first]}: column {name!r} is {x[first]:+} ({int(inf.sum())} infinite cells); "
                            "the run reads infinities as errors (data.infinite: error)")
        x[inf] = np.nan
    if not imputed and np.isnan(x).any():
        first = int(np.flatnonzero(np.isnan(x))[0])
        raise DataError(f"{where[first]}: column {name!r} is missing, and the run learned no value to impute it with")
    return x
