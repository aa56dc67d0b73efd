"""Data: sources (registry), splits, preprocessing, augmentation and the training loaders."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import DataError, RecipeError
from ..registry import Registry
from . import cifar, folder, sklearn_sets, synthetic, tabular, text, vision
from .augment import AUGMENTS, Augment, build_augment
from .bundle import DataBundle, DataInfo, SourceData, Split
from .loader import StreamingLoader, TensorLoader, build_loader, eval_batches
from .preprocess import build_preprocess
from .splits import split_indices, subset_indices

# `cache` is the recipe's data.cache: trainlab supplies it, it is no option of a source
SOURCES = Registry("data source", "sources", context=("seed", "cache"))
SOURCES.add("fashion_mnist", vision.fashion_mnist, "Fashion-MNIST 28×28 grayscale clothing, 10 classes (IDX files)",
            aliases=("fashion-mnist", "fmnist"))
SOURCES.add("mnist", vision.mnist, "MNIST 28×28 handwritten digits, 10 classes (IDX files)")
SOURCES.add("cifar10", cifar.cifar10, "CIFAR-10 32×32 RGB, 10 classes (official binary batches or their .tar.gz)",
            aliases=("cifar-10",))
for _name, (_, _, _desc) in sklearn_sets.SETS.items():
    SOURCES.add(f"sklearn:{_name}", sklearn_sets.factory(_name), _desc)
SOURCES.add("csv", tabular.csv, "CSV table: feature and target columns, one-hot categories, imputation")
SOURCES.add("parquet", tabular.parquet, "Parquet table: options as csv")
SOURCES.add("image_folder", folder.image_folder, "class-per-subfolder PNG/JPEG images, resized (Pillow)")
SOURCES.add("synthetic:linear", synthetic.linear, "y = 2x + noise regression with a known answer")
SOURCES.add("synthetic:addition", synthetic.addition, "y = x1 + x2: a 2-input linear layer should learn [1, 1], bias 0")
SOURCES.add("synthetic:classification", synthetic.classification, "Gaussian blobs: separable classes for tests")
SOURCES.add("synthetic:multilabel", synthetic.multilabel, "multi-label: linear labels of Gaussian inputs, 0/1 matrix",
            aliases=("synthetic_multilabel",))
SOURCES.add("text_csv", text.text_csv, "CSV of texts and labels, word/char tokens, vocabulary fitted on train")
SOURCES.add("text_jsonl", text.text_jsonl, "JSON lines of texts and labels, word/char tokens, vocabulary fitted on train")
SOURCES.add("text_corpus", text.text_corpus, "plain text files for language modelling: token windows, next-token targets")

__all__ = ["AUGMENTS", "SOURCES", "Augment", "DataBundle", "DataInfo", "SourceData", "Split", "StreamingLoader",
           "TensorLoader", "build_augment", "build_data", "build_loader", "eval_batches", "fitted_preprocess",
           "load_preprocess_state", "require_test_split", "save_data_state"]


def build_data(cfg: Any, seed: int, preprocess_state: dict[str, torch.Tensor] | None = None) -> DataBundle:
    """Load the source, carve val (and test if the source has none), fit preprocessing on train.
    `cfg` is the recipe's data section (`trainlab.recipe.DataConfig`).

    `preprocess_state` (a run's data/preprocess.safetensors, see `load_preprocess_state`): apply
    these fitted statistics instead of fitting again, so evaluating a run repeats its transform."""
    src: SourceData = SOURCES.build(cfg.source, cfg.options(), "data", seed=seed, cache=cfg.cache)
    classify = src.task == "classification"
    stratify = classify and src.train.y.ndim == 1  # not per-token targets (language modelling)
    full = src.train
    names = src.class_names if classify else None
    check_samples(full, "data.source", f"{cfg.source}: its training data", stratify, names)
    # every saved index points into the source's own training data (its test split stays whole)
    indices: dict[str, torch.Tensor] = {}
    rest = torch.arange(len(full))
    if src.test is None:
        rest, test_idx = split_indices(full.y, cfg.test_fraction, seed, stratify=stratify)
        held_out(cfg.test_fraction, "data.test_fraction", "test", len(full), len(rest), len(test_idx), stratify)
        test = Split(full.x[test_idx], full.y[test_idx])
        full = Split(full.x[rest], full.y[rest])
        check_samples(full, "data.test_fraction", f"{cfg.test_fraction} leaves a training split that",
                      stratify, names)
        indices["test"] = test_idx
    else:
        test = src.test
        if len(test) == 0:
            raise DataError(f"data.source: {cfg.source}'s own test split is empty")
    tr_idx, va_idx = split_indices(full.y, cfg.val_fraction, seed + 1, stratify=stratify)
    held_out(cfg.val_fraction, "data.val_fraction", "validation", len(full), len(tr_idx), len(va_idx), stratify)
    train = Split(full.x[tr_idx], full.y[tr_idx])
    check_samples(train, "data.val_fraction", f"{cfg.val_fraction} leaves a training split that", stratify, names)
    val = Split(full.x[va_idx], full.y[va_idx]) if len(va_idx) else None
    if cfg.subset is not None:
        keep = subset_indices(len(train), cfg.subset, seed)
        if len(keep) == 0:
            raise RecipeError(f"data.subset: {cfg.subset} leaves 0 training samples of {len(train)}")
        train = Split(train.x[keep], train.y[keep])
        check_samples(train, "data.subset", f"{cfg.subset} leaves a training split that", stratify, names)
        tr_idx = tr_idx[keep]
    indices.update(train=rest[tr_idx], val=rest[va_idx])

    splits = {"train": train, "val": val, "test": test}
    if src.fit is not None:  # e.g. a text vocabulary: learned from the training split only
        splits = src.fit(splits)
    if src.kind == "image":  # raw uint8 pixels -> float in [0, 1], once for the whole split
        splits = {k: (Split(s.x.float().div_(255.0) if s.x.dtype == torch.uint8 else s.x.float(), s.y)
                      if s is not None else None) for k, s in splits.items()}
    elif src.kind in ("vector", "tabular"):
        splits = {k: (Split(s.x.float(), s.y) if s is not None else None) for k, s in splits.items()}

    stats = {}
    steps = build_preprocess(cfg.preprocess)
    for i, step in enumerate(steps):
        if not restore_step(step, i, preprocess_state):
            step.fit(splits["train"].x)  # statistics from the training split only
        splits = {k: (Split(step(s.x), s.y) if s is not None else None) for k, s in splits.items()}
        stats["normalize"] = step.stats()

    multilabel = src.task == "multilabel"  # a 0/1 matrix (N, labels): one column per label
    num_classes = len(src.class_names) if (classify and src.class_names) else (
        int(full.y.max()) + 1 if classify else int(full.y.shape[1]) if multilabel else None)
    counts = {}
    if stratify:
        counts = {k: torch.bincount(s.y, minlength=num_classes).tolist() for k, s in splits.items() if s is not None}
    elif multilabel:  # each label's positives
        counts = {k: s.y.sum(0).round().long().tolist() for k, s in splits.items() if s is not None}
    info = DataInfo(
        task=src.task,
        input_shape=tuple(splits["train"].x.shape[1:]),
        num_classes=num_classes,
        output_dim=num_classes if classify or multilabel else (int(train.y.shape[1]) if train.y.ndim > 1 else 1),
        kind=src.kind,
        class_names=(src.class_names or [str(i) for i in range(num_classes)]) if multilabel else
        src.class_names if classify else None,
        class_counts=counts,
        sizes={k: len(s) for k, s in splits.items() if s is not None},
        stats=stats,
        extra=src.extra,
        notes=list(src.notes),
    )
    bundle = DataBundle(splits["train"], splits["val"], splits["test"], info, indices)
    bundle.preprocess = {f"{i}.{k}": v for i, step in enumerate(steps) for k, v in step.state_dict().items()
                         if isinstance(v, torch.Tensor)}
    return bundle


def require_test_split(bundle: DataBundle, cfg: Any) -> None:
    """A training run ends with its test metrics: RecipeError naming `data.test_fraction` when the
    data has no test split (`test_fraction: 0` and a source without one of its own)."""
    if bundle.test is None or len(bundle.test) == 0:
        raise RecipeError(f"data.test_fraction: {cfg.test_fraction} leaves no test split, and {cfg.source} has "
                          "none of its own; a training run ends with its test metrics (use e.g. 0.2)")


def held_out(fraction: float, key: str, what: str, n: int, kept: int, held: int, stratify: bool) -> None:
    """RecipeError naming `key` when holding out `fraction` of `n` samples leaves either side empty."""
    if kept == 0:
        raise RecipeError(f"{key}: {fraction} leaves 0 training samples of {n}; lower it or add data")
    if fraction > 0 and held == 0:
        per_class = " (held out per class, rounded)" if stratify else ""
        no_split = f", or set {key}: 0 for no validation" if what == "validation" else ""
        raise RecipeError(f"{key}: {fraction} leaves 0 {what} samples of {n}{per_class}; add data or raise it"
                          f"{no_split}")


def check_samples(split: Split, key: str, what: str, stratify: bool, names: list[str] | None) -> None:
    """A training split must hold a sample, and for classification two classes. Raises DataError
    (the source's own data) or RecipeError (what a recipe key left of it), naming `key`."""
    err = DataError if key == "data.source" else RecipeError
    if len(split) == 0:
        raise err(f"{key}: {what} holds no samples")
    if stratify:
        found = torch.unique(split.y).tolist()
        if len(found) < 2:
            one = names[found[0]] if names and found[0] < len(names) else found[0]
            raise err(f"{key}: {what} holds only one class ({one!r}) in {_samples(len(split))}; "
                      "classification needs at least 2")


def _samples(n: int) -> str:
    return f"{n} sample" if n == 1 else f"{n} samples"


def restore_step(step, i: int, state: dict[str, torch.Tensor] | None) -> bool:
    """Load step `i`'s fitted statistics from a run's saved preprocessing; False if it has none."""
    saved = {k.split(".", 1)[1]: v for k, v in (state or {}).items() if k.startswith(f"{i}.")}
    if saved:
        step.load_state_dict(saved)
    return bool(saved)


def fitted_preprocess(items: list, state: dict[str, torch.Tensor] | None) -> list:
    """`data.preprocess` as a run fitted it (from `load_preprocess_state`), without the data:
    apply each step in order to inputs shaped like the model's. Raises DataError when the run
    saved no statistics for a step that needs them."""
    steps = build_preprocess(items)
    for i, step in enumerate(steps):
        if not restore_step(step, i, state):
            raise DataError(f"data.preprocess.{i}: the run directory holds no fitted statistics for it "
                            "(data/preprocess.safetensors)")
    return steps


def load_preprocess_state(run_dir) -> dict[str, torch.Tensor] | None:
    """The fitted preprocessing a run saved (None for runs without any)."""
    from pathlib import Path

    from safetensors.torch import load_file

    p = Path(run_dir) / "data" / "preprocess.safetensors"
    if not p.is_file():
        return None
    try:
        return load_file(p)
    except (OSError, ValueError) as e:
        from ..errors import RunDirError

        raise RunDirError(f"{p}: cannot read the run's fitted preprocessing ({e})") from None


def save_data_state(rd, bundle: DataBundle) -> None:
    """Into the run directory: split sizes, the split indices (into the source's own splits) and
    the fitted preprocessing (statistics from the training split), so evaluation can check it
    rebuilds exactly the same data. Tensors go to safetensors: nothing here is ever unpickled."""
    from safetensors.torch import save

    from ..io import atomic_write

    rd.write_json("data/split_sizes.json", bundle.info.sizes)
    rd.write_json("data/info.json", bundle.info.to_json())  # what load_run needs to rebuild the model
    idx = {k: v.contiguous() for k, v in bundle.split_indices.items()}
    atomic_write(rd.path / "data" / "split_indices.safetensors", save(idx))
    rd.write_json("data/preprocess.json", {"steps": bundle.info.stats, "notes": bundle.info.notes})
    if bundle.preprocess:
        atomic_write(rd.path / "data" / "preprocess.safetensors",
                     save({k: v.contiguous() for k, v in bundle.preprocess.items()}))
