"""`trainlab init DATA`: look at a user's data and write a commented starter recipe.

The data may be a table (CSV, TSV or Parquet), a text table (a CSV or JSONL with a text column and
a label), a class-per-subfolder image folder, or plain text for a language model (a .txt file or a
folder of text files). `inspect_data` reads just enough to decide the source, the target and the
task, then picks a model, optimizer, schedule and number of epochs that train well on data of that
kind and size; each choice comes with the reason, which `trainlab init` prints and writes into the
recipe as comments. Nothing here trains: the recipe is validated by `load_recipe` before it is
written, and `trainlab train` on it works straight away.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
CORPUS_SUFFIXES = {".txt", ".md", ".rst", ".text"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}  # what the image_folder source reads
TARGET_NAMES = ("target", "label", "labels", "class", "y", "category", "outcome", "diagnosis", "species",
                "sentiment", "price")
TEXT_NAMES = ("text", "sentence", "review", "comment", "body", "content", "document", "message", "title")
TABLE_STEPS = 520  # optimizer steps a small table gets (more epochs for fewer rows, at most 40)
MAX_CLASSES = 20  # as the csv source: integer targets with at most this many values are classes


@dataclass
class Starter:
    """An inferred recipe: its sections as (key, value, comment) rows, and why each choice was made."""

    name: str
    kind: str                                   # table | text | image | corpus
    header: list[str]                           # the recipe's opening comment lines
    sections: dict[str, list[tuple[str, Any, str]]]
    reasons: list[tuple[str, str, str]] = field(default_factory=list)  # (what, inferred, why)

    def yaml(self, recipe_path: str = "recipe.yaml") -> str:
        """The recipe as YAML text, each key with its comment (`recipe_path` is where it is written)."""
        lines = [(f"# {h}" if h else "#").replace("{recipe}", recipe_path) for h in self.header]
        lines += [f"name: {_scalar(self.name)}", "seed: 0"]
        for section, rows in self.sections.items():
            lines.append(f"{section}:")
            for key, value, comment in rows:
                line = f"  {key}: {_scalar(value)}"
                lines.append(f"{line:<44} # {comment}" if comment else line)
        return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    """One YAML value on one line (flow style), quoted where YAML needs it."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text


def inspect_data(path: str | os.PathLike, target: str | None = None) -> Starter:
    """The starter recipe for the data at `path`. Raises DataError naming the path when it is not
    data trainlab can read, and when `target` is not one of its columns or keys."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or folder")
    if p.is_dir():
        if target:
            raise DataError(f"--target {target!r}: {path} is a folder; its classes are its subfolders' names")
        if _image_classes(p):
            return _image_folder(p)
        if _text_files(p):
            return _corpus(p, _text_files(p))
        raise DataError(f"{path}: neither class subfolders of PNG/JPEG images ({path}/<class>/<image>.png) "
                        "nor text files (.txt, .md, .rst)")
    suffix = p.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return _table(p, TABLE_SUFFIXES[suffix], target)
    if suffix in JSONL_SUFFIXES:
        return _jsonl(p, target)
    if suffix in CORPUS_SUFFIXES:
        if target:
            raise DataError(f"--target {target!r}: {path} is plain text, which has no columns")
        return _corpus(p, [p])
    raise DataError(f"{path}: unknown kind of file {suffix or '(no suffix)'!r}; trainlab init reads "
                    ".csv, .tsv, .parquet, .jsonl, .txt/.md/.rst files and image or text folders")


def _where(p: Path) -> str:
    """The path as a recipe should hold it: relative to the working directory when inside it
    (recipes are run from there), else absolute."""
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p.resolve())


def _path_note(p: Path) -> str:
    return "absolute: it is outside this folder" if Path(_where(p)).is_absolute() else \
        "relative to the folder you run trainlab in"


def _recipe_name(p: Path) -> str:
    from .track.rundir import safe_name

    return safe_name(p.stem or p.resolve().name) or "my-data"


def _epochs(rows: int, batch: int, steps: int, lo: int, hi: int) -> int:
    """Enough epochs for about `steps` optimizer steps, within [lo, hi]."""
    per_epoch = max(1, math.ceil(rows / batch))
    return int(min(hi, max(lo, math.ceil(steps / per_epoch))))


# ----------------------------------------------------------------------------------------- tables

def _read_frame(p: Path, fmt: str):
    import io

    import pandas as pd

    from .data.files import read_utf8

    try:
        if fmt == "parquet":
            df = pd.read_parquet(p)
        else:
            text = read_utf8(p)
            df = pd.read_csv(io.StringIO(text), sep="\t" if p.suffix.lower() == ".tsv" else ",")
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{p}: not a readable {fmt} file ({(str(e).splitlines() or [''])[0]})") from None
    if df.empty or len(df.columns) < 2:
        raise DataError(f"{p}: needs at least one row and two columns (features and a target), "
                        f"found {len(df)} rows and {len(df.columns)} columns")
    return df


def _pick(columns: list[str], target: str | None, names: tuple[str, ...], where: Path, what: str) -> tuple[str, str]:
    """The target (or text) column and why it was picked."""
    if target is not None:
        if target not in columns:
            raise DataError(f"--target {target!r}: {where} has no such {what}; it has: "
                            f"{', '.join(map(str, columns[:30]))}{' …' if len(columns) > 30 else ''}")
        return target, "given with --target"
    lower = {str(c).strip().lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n], f"its name, {str(lower[n])!r}, is a usual {what} name (--target to choose another)"
    return columns[-1], f"the last {what} (none is named like a target; --target to choose another)"


def _text_column(df, exclude: str) -> str | None:
    """A column of free text: strings of several words, mostly distinct."""
    import pandas as pd

    best, best_words = None, 0.0
    for c in df.columns:
        if c == exclude or pd.api.types.is_numeric_dtype(df[c]):
            continue
        values = df[c].dropna().astype(str)
        if values.empty:
            continue
        words = float(values.str.split().str.len().mean())
        if words >= 3 and values.nunique() >= 0.5 * len(values) and words > best_words:
            best, best_words = c, words
    return best


def _task(col) -> tuple[str, str]:
    from .data.tabular import infer_task

    task = infer_task(col.dropna(), MAX_CLASSES)
    n = int(col.nunique())
    if task == "classification":
        import pandas as pd

        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            why = f"its values are labels ({n} distinct)"
        else:
            why = f"whole numbers with {n} distinct values (at most {MAX_CLASSES} are read as classes)"
    else:
        why = f"numbers with {n} distinct values"
    return task, why


DELIMITERS = ("|", ";")


def _labels(col) -> tuple[str | None, dict[str, int] | None]:
    """(delimiter, label counts) when `col` holds several labels per row: JSON lists (delimiter
    None) or strings joined by `|` or `;` in at least a fifth of the rows; (None, None) otherwise."""
    from collections import Counter

    values = col.dropna().tolist()
    if values and all(isinstance(v, list) for v in values):
        return None, dict(Counter(str(x) for v in values for x in v).most_common())
    text = [v for v in values if isinstance(v, str)]
    if len(text) != len(values) or not text:
        return None, None
    for d in DELIMITERS:
        if sum(d in v for v in text) >= 0.2 * len(text):
            return d, dict(Counter(p.strip() for v in text for p in v.split(d) if p.strip()).most_common())
    return None, None


def _count_line(counts: dict, what: str) -> str:
    shown = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:6])
    return f"{len(counts)} {what} ({shown}{', …' if len(counts) > 6 else ''})"


def _class_line(col) -> str:
    return _count_line(dict(col.value_counts()), "classes")


def _table(p: Path, fmt: str, target: str | None) -> Starter:
    df = _read_frame(p, fmt)
    columns = list(df.columns)
    if target is not None and "," in target and target not in columns:
        return _multi_column_table(p, fmt, df, [t.strip() for t in target.split(",") if t.strip()])
    tgt, why_target = _pick(columns, target, TARGET_NAMES, p, "column")
    text = _text_column(df, tgt) if fmt == "csv" and p.suffix.lower() == ".csv" else None
    col = df[tgt]
    if col.isna().all():
        raise DataError(f"{p}: target column {str(tgt)!r} is empty")
    delimiter, multi = _labels(col)
    if text is not None:
        task, _ = _task(col)
        if task == "classification" or multi:
            return _text(p, "text_csv", text, tgt, why_target, df[text].dropna().astype(str).tolist(), col)
    if multi:
        return _table_recipe(p, fmt, df, tgt, why_target, "multilabel",
                             f"several labels per row, joined by {delimiter!r}; {_count_line(multi, 'labels')}",
                             extra=[("label_delimiter", delimiter, "one column of delimited labels")])
    task, why_task = _task(col)
    return _table_recipe(p, fmt, df, tgt, why_target, task, why_task)


def _multi_column_table(p: Path, fmt: str, df, targets: list[str]) -> Starter:
    import pandas as pd

    missing = [t for t in targets if t not in df.columns]
    if missing:
        raise DataError(f"--target {missing[0]!r}: {p} has no such column; it has: "
                        f"{', '.join(map(str, list(df.columns)[:30]))}")
    counts = {}
    for t in targets:
        values = pd.to_numeric(df[t], errors="coerce")
        if not values.dropna().isin([0, 1]).all():
            raise DataError(f"--target {t!r}: a multi-label target column holds 0 and 1 only (column {t!r} of {p})")
        counts[t] = int(values.sum())
    return _table_recipe(p, fmt, df, targets, "given with --target", "multilabel",
                         f"{len(targets)} 0/1 target columns: {_count_line(counts, 'labels')}")


def _table_recipe(p: Path, fmt: str, df, tgt, why_target: str, task: str, why_task: str,
                  extra: list[tuple[str, Any, str]] = ()) -> Starter:
    columns = list(df.columns)
    targets = tgt if isinstance(tgt, list) else [tgt]
    col = df[targets[0]]
    rows = int(col.notna().sum())
    feats = [c for c in columns if c not in targets]
    numeric = [c for c in feats if _numberish(df[c])]
    categorical = [c for c in feats if c not in numeric]
    missing = int(df[feats].isna().sum().sum())
    reasons = [("data", f"{_where(p)}: a {fmt.upper()} table, {len(df):,} rows × {len(columns)} columns", "its suffix"),
               ("target", ", ".join(map(str, targets)), why_target),
               ("task", task, why_task + (f"; {_class_line(col)}" if task == "classification" else
                                          f"; from {col.min():.4g} to {col.max():.4g}" if task == "regression"
                                          else ""))]
    reasons.append(("features", f"{len(numeric)} numeric, {len(categorical)} categorical (one-hot encoded)",
                    "every column but the target" + (f"; {missing} empty cells are imputed with the training mean"
                                                     if missing else "")))
    # Small tables overfit a wide net: one hidden layer with strong dropout and weight decay and a
    # cosine schedule (measured in tests/e2e/test_user_tables.py: within a point of logistic
    # regression on the breast-cancer table, above ridge regression on the diabetes table).
    widths = [64] if rows < 5000 else [128, 64]
    batch = 32 if rows < 2000 else (128 if rows < 50_000 else 512)
    epochs = _epochs(int(rows * 0.72), batch, TABLE_STEPS, 10, 40)
    reasons.append(("model", f"mlp {widths}", f"{rows:,} rows of tabular features: a small MLP with dropout, "
                    "weight decay and standardized inputs is the usual strong start"))
    reasons.append(("training", f"{epochs} epochs of batch {batch}, adamw with a cosine schedule",
                    f"about {epochs * math.ceil(rows * 0.72 / batch):,} steps; the best epoch on validation is kept"))
    data: list[tuple[str, Any, str]] = [
        ("source", fmt, "a table; task, categories and missing values handled by trainlab"),
        ("path", _where(p), _path_note(p)),
        ("target", [str(t) for t in targets] if isinstance(tgt, list) else str(tgt), why_target.split(" (")[0]),
        *extra,
        ("features", "all", "every column but the target; or a list of column names"),
        ("task", task, why_task.split(";")[0]) if task != "multilabel" else
        ("task", "auto", "multi-label: inferred from the targets"),
        ("missing", "mean", "impute empty cells with the training mean (median, most_frequent, drop)"),
        ("preprocess", [{"normalize": "standard"}], "standardize features on the training split"),
        ("val_fraction", 0.1, "held out to pick the best epoch"),
        ("test_fraction", 0.2, "held out for the final test metrics"),
        ("batch_size", batch, ""),
    ]
    if task == "regression":
        data.append(("target_scaling", "standard", "train on a standardized target; metrics in its own units"))
    sections = {
        "data": data,
        "model": [("name", "mlp", "multi-layer perceptron (trainlab list models)"), ("widths", widths, "hidden layer sizes"),
                  ("dropout", 0.5, "small tables overfit: strong dropout")],
        "loss": [("name", "auto", "cross-entropy for classes, bce for multi-label, mean squared error for numbers")],
        "optim": [("name", "adamw", ""), ("lr", 3.0e-3, "try `trainlab lr-find` on this recipe"),
                  ("weight_decay", 0.5, "and strong weight decay")],
        "schedule": [("name", "cosine", "anneal to zero")],
        "train": [("epochs", epochs, f"about {TABLE_STEPS:,} optimizer steps"),
                  ("monitor", "auto", "val.accuracy (ties within one sample go to the lower val.loss) or val.loss")],
    }
    header = [f"Starter recipe for {_where(p)}, written by `trainlab init`.",
              f"{task} of {', '.join(map(repr, map(str, targets)))} from {len(feats)} columns ({len(df):,} rows). "
              "Train it with:",
              "  trainlab train {recipe}", "Every key is in the README's recipe reference."]
    return Starter(_recipe_name(p), "table", header, sections, reasons)


def _numberish(col) -> bool:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return True
    present = col.dropna().astype(str).str.strip()
    present = present[present != ""]
    return bool(len(present)) and bool(pd.to_numeric(present, errors="coerce").notna().all())


# ------------------------------------------------------------------------------------------- text

def _jsonl(p: Path, target: str | None) -> Starter:
    import json

    from .data.files import read_utf8

    records = []
    for n, line in enumerate(read_utf8(p).splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}:{n}: not JSON ({e.msg})") from None
        if not isinstance(r, dict):
            raise DataError(f"{p}:{n}: expected a JSON object per line, got {type(r).__name__}")
        records.append(r)
    if not records:
        raise DataError(f"{p}: no records")
    import pandas as pd

    df = pd.DataFrame.from_records(records)
    keys = list(df.columns)
    tgt, why_target = _pick(keys, target, TARGET_NAMES, p, "key")
    text = _text_column(df, tgt)
    if text is None:
        raise DataError(f"{p}: no key holds free text (strings of several words) besides the label {tgt!r}")
    return _text(p, "text_jsonl", text, tgt, why_target, df[text].dropna().astype(str).tolist(), df[tgt])


TFIDF_MAX_TEXTS = 50_000  # beyond this a dense TF-IDF matrix gets large: token ids and embedding_bag
TFIDF_BYTES = 1e9         # the dense TF-IDF matrix's budget: max_features shrinks to keep within it


def _text(p: Path, source: str, text: str, label: str, why_label: str, texts: list[str], col) -> Starter:
    delimiter, multi = _labels(col)
    task_line = (("multilabel", f"several labels per text{f' joined by {delimiter!r}' if delimiter else ''}; "
                  f"{_count_line(multi, 'labels')}") if multi else ("classification", _class_line(col)))
    words = sorted(len(t.split()) for t in texts)
    p90 = words[int(0.9 * (len(words) - 1))] if words else 1
    n = len(texts)
    batch = 32 if n < 5000 else 128
    epochs = _epochs(int(n * 0.72), batch, 600, 5, 30)
    tfidf = n <= TFIDF_MAX_TEXTS
    data: list[tuple[str, Any, str]] = [
        ("source", source, ""), ("path", _where(p), _path_note(p)),
        ("text", str(text), "the column of text"), ("label", str(label), "the column of labels"),
        *([("label_delimiter", delimiter, "several labels per text")] if delimiter else []),
        ("level", "word", "word tokens (char for very short or unsegmented text)")]
    if tfidf:
        max_features = int(min(20_000, max(1_000, TFIDF_BYTES / 4 / max(n, 1))))
        data += [("features", "tfidf", "each text as TF-IDF weights of its words and word pairs"),
                 ("ngram_range", [1, 2], "words and word pairs"),
                 ("max_features", max_features, "the most frequent terms kept (a dense matrix: ≤ 1 GB)"),
                 ("min_df", 1 if n < 1000 else 2, "terms in fewer training texts are dropped"),
                 ("sublinear_tf", True, "1 + ln(count)")]
        model = [("name", "mlp", "on the TF-IDF vector"), ("widths", [64], ""), ("dropout", 0.5, "")]
        optim = [("name", "adamw", ""), ("lr", 5.0e-3, ""), ("weight_decay", 1.0e-2, "")]
        why_model = ("TF-IDF + MLP", f"{n:,} texts: the strongest shipped text recipe on short texts "
                                     "(0.834 test accuracy on recipes/data/python_docs.csv, above TF-IDF + logistic regression)")
    else:
        max_len = int(min(256, max(16, 2 ** math.ceil(math.log2(max(p90, 1))))))
        data += [("max_len", max_len, f"90% of the texts have at most {p90} words"),
                 ("min_freq", 2, "rarer words become <unk>")]
        model = [("name", "embedding_bag", "mean of word and hashed word-pair embeddings"),
                 ("dim", 64, "embedding size"), ("ngrams", 2, "words and word pairs"), ("dropout", 0.3, "")]
        optim = [("name", "adamw", ""), ("lr", 1.0e-2, ""), ("weight_decay", 1.0e-4, "")]
        why_model = ("embedding_bag", f"{n:,} texts, too many for a dense TF-IDF matrix: a fastText-style bag "
                                      "of word and word-pair embeddings")
    data += [("val_fraction", 0.1, ""), ("test_fraction", 0.2, ""), ("batch_size", batch, "")]
    reasons = [("data", f"{_where(p)}: {n:,} texts", "a column of free text: strings of several words, mostly distinct"),
               ("text", str(text), "the longest such column"),
               ("label", str(label), why_label),
               ("task", *task_line),
               ("model", *why_model),
               ("training", f"{epochs} epochs of batch {batch}, adamw with one-cycle", "the best epoch by val.loss")]
    sections = {
        "data": data, "model": model,
        "loss": [("name", "bce", "one sigmoid per label")] if multi else [("name", "cross_entropy", "")],
        "optim": optim,
        "schedule": [("name", "one_cycle", "")],
        "train": [("epochs", epochs, "about 600 optimizer steps"), ("monitor", "val.loss", "")],
    }
    header = [f"Starter recipe for {_where(p)}, written by `trainlab init`.",
              f"Text {'multi-label ' if multi else ''}classification of {str(label)!r} from the text in {str(text)!r} "
              f"({n:,} texts). Train it with:",
              "  trainlab train {recipe}", "Every key is in the README's recipe reference."]
    return Starter(_recipe_name(p), "text", header, sections, reasons)


def _text_files(d: Path) -> list[Path]:
    return sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in CORPUS_SUFFIXES
                  and not f.name.startswith("."))


def _corpus(p: Path, files: list[Path]) -> Starter:
    from .data.files import read_utf8

    chars = sum(len(read_utf8(f)) for f in files)
    if chars < 200:
        raise DataError(f"{p}: {chars} characters of text; a language model needs a few thousand at least")
    # windows: at least ~64 training windows, at most 128 characters each
    seq_len = int(max(16, min(128, 2 ** math.floor(math.log2(max(16, chars * 0.9 / 64))))))
    windows = int(chars * 0.9 / seq_len)
    batch = 32 if windows >= 256 else 16
    epochs = _epochs(int(windows * 0.95), batch, 400, 3, 20)
    suffixes = sorted({f.suffix.lower() for f in files})
    if p.is_dir():
        pattern = str(Path(_where(p)) / (f"*{suffixes[0]}" if len(suffixes) == 1 else "*"))
        if len(suffixes) > 1:
            pattern = [str(Path(_where(p)) / f"*{s}") for s in suffixes]
    else:
        pattern = _where(p)
    reasons = [("data", f"{_where(p)}: {len(files)} text file{'s' * (len(files) > 1)}, {chars:,} characters",
                "plain text: a language model learns to predict the next character"),
               ("task", "language modelling", "targets are the next token; metrics are per character"),
               ("windows", f"{seq_len} characters, about {windows:,} of them", "long enough for context, "
                           "many enough to train on"),
               ("model", "gpt (dim 128, depth 2)", "a small causal transformer"),
               ("training", f"{epochs} epochs of batch {batch}, adamw with one-cycle", "")]
    sections = {
        "data": [("source", "text_corpus", "text for language modelling"),
                 ("path", pattern, "files or glob patterns, relative to the folder you run trainlab in"),
                 ("level", "char", "character tokens (word for large corpora)"), ("seq_len", seq_len, ""),
                 ("holdout", 0.1, "the last tenth of the text is the test split"),
                 ("val_fraction", 0.1, ""), ("batch_size", batch, "")],
        "model": [("name", "gpt", ""), ("dim", 128, ""), ("depth", 2, ""), ("heads", 4, ""), ("dropout", 0.1, "")],
        "loss": [("name", "cross_entropy", "")],
        "optim": [("name", "adamw", ""), ("lr", 3.0e-3, ""), ("weight_decay", 0.1, ""), ("betas", [0.9, 0.95], "")],
        "schedule": [("name", "one_cycle", ""), ("pct_start", 0.1, "")],
        "train": [("epochs", epochs, ""), ("grad_clip", 1.0, "")],
    }
    header = [f"Starter recipe for {_where(p)}, written by `trainlab init`.",
              "A character-level language model of this text. Train it with:",
              "  trainlab train {recipe}", "Every key is in the README's recipe reference."]
    return Starter(_recipe_name(p), "corpus", header, sections, reasons)


# ----------------------------------------------------------------------------------------- images

def _image_classes(d: Path) -> dict[str, list[Path]]:
    """Class subfolder -> its images, for `d` or its train/ folder; {} if it is not an image folder."""
    root = d / "train" if (d / "train").is_dir() and (d / "test").is_dir() else d
    found: dict[str, list[Path]] = {}
    for sub in sorted(s for s in root.iterdir() if s.is_dir() and not s.name.startswith(".")):
        images = sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            found[sub.name] = images
    return found


def _image_folder(d: Path) -> Starter:
    from PIL import Image

    classes = _image_classes(d)
    if len(classes) < 2:
        raise DataError(f"{d}: one class subfolder ({', '.join(classes)}); classification needs two or more")
    sample = [f for files in classes.values() for f in files[:20]]
    sizes, grey = [], 0
    for f in sample:
        try:
            with Image.open(f) as im:
                sizes.append(im.size)
                grey += im.mode in ("1", "L", "LA", "I", "I;16", "F")
        except OSError as e:
            raise DataError(f"{f}: cannot read as an image ({e})") from None
    n = sum(len(v) for v in classes.values())
    side = sorted(max(w, h) for w, h in sizes)[len(sizes) // 2]
    size = int(min(64, max(16, side)))
    size = 28 if side == 28 else size
    mode = "grayscale" if grey == len(sample) else "rgb"
    batch = 32 if n < 2000 else 128
    epochs = _epochs(int(n * 0.72), batch, 1000, 5, 60)
    split = "train/ and test/ folders" if (d / "train").is_dir() and (d / "test").is_dir() else "carved from the folder"
    stem = 2 if size > 32 else 1
    reasons = [("data", f"{_where(p := d)}: {n:,} images in {len(classes)} class subfolders",
                "each subfolder of PNG/JPEG images is a class"),
               ("classes", ", ".join(f"{k} {len(v)}" for k, v in list(classes.items())[:6]) +
                (", …" if len(classes) > 6 else ""), "images per subfolder"),
               ("size", f"{size}×{size}, {mode}", f"the median image is {side} pixels on its long side"
                                                  + ("; larger ones are shrunk to 64 for speed" if side > 64 else "")
                                                  + ("; every sampled image is single-channel" if mode == "grayscale" else "")),
               ("test split", split, ""),
               ("model", "convnet [32, 64, 128]", "a batch-norm conv net" + (" with a stride-2 stem for the larger images"
                                                                           if stem == 2 else "")),
               ("training", f"{epochs} epochs of batch {batch}, adamw with one-cycle", "")]
    sections = {
        "data": [("source", "image_folder", "class-per-subfolder images"), ("path", _where(p), ""),
                 ("size", size, "images are resized to size × size"), ("mode", mode, ""),
                 ("preprocess", [{"normalize": "standard"}], "per-channel standardization fitted on training images"),
                 ("val_fraction", 0.1 if n >= 1000 else 0.15, ""), ("test_fraction", 0.2, "used when there is no test/ folder"),
                 ("batch_size", batch, "")],
        "model": [("name", "convnet", ""), ("widths", [32, 64, 128], "channels per stage"), ("stem_stride", stem, ""),
                  ("dropout", 0.1, "")],
        "loss": [("name", "cross_entropy", ""), ("label_smoothing", 0.1, "")],
        "optim": [("name", "adamw", ""), ("lr", 2.0e-3, ""), ("weight_decay", 5.0e-4, "")],
        "schedule": [("name", "one_cycle", "")],
        "train": [("epochs", epochs, ""), ("monitor", "val.loss", "")],
    }
    header = [f"Starter recipe for {_where(p)}, written by `trainlab init`.",
              f"Image classification into {len(classes)} classes. For photos, flips help: add",
              "  augment: [{hflip: 0.5}]   under data. Train it with:",
              "  trainlab train {recipe}", "Every key is in the README's recipe reference."]
    return Starter(_recipe_name(p), "image", header, sections, reasons)
