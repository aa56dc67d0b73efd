"""CIFAR-10 from the official *binary* version (never the pickled python one: trainlab unpickles nothing).

Each record of `data_batch_{1..5}.bin` and `test_batch.bin` is one label byte followed by 3072
pixel bytes (1024 red, 1024 green, 1024 blue, row-major 32×32). The files are found in a folder
of the search path (loose, inside `cifar-10-batches-bin/`, or inside `cifar-10-binary.tar.gz`,
read without extracting), or downloaded once with its MD5 checked.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .bundle import SourceData, Split
from .cache import cached
from .vision import cache_dir, download, search_dirs

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
ARCHIVE = "cifar-10-binary.tar.gz"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILE = "test_batch.bin"
RECORD = 1 + 3 * 32 * 32
SYSTEM_DIRS = [Path("/usr/share/datasets/cifar-10"), Path("/usr/share/datasets/cifar10")]


def parse_batch(raw: bytes, name: str) -> Split:
    """One binary batch file's bytes -> uint8 images (N, 3, 32, 32) and labels (N,)."""
    if len(raw) == 0 or len(raw) % RECORD:
        raise DataError(f"{name}: truncated CIFAR-10 batch: {len(raw)} bytes is not a multiple of "
                        f"{RECORD} (1 label byte + 3072 pixel bytes per image)")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() >= len(CLASSES):
        raise DataError(f"{name}: label {int(labels.max())} out of range 0-9 (not a CIFAR-10 batch file)")
    x = torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy())
    return Split(x, torch.from_numpy(labels))


def _folder_files(d: Path) -> list[Path] | None:
    for folder in (d, d / "cifar-10-batches-bin"):
        paths = [folder / f for f in (*TRAIN_FILES, TEST_FILE)]
        if all(p.is_file() for p in paths):
            return paths
    return None


def _read_archive(path: Path) -> dict[str, tuple[bytes, str]]:
    out = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar.getmembers():
                name = os.path.basename(member.name)
                if member.isfile() and name in (*TRAIN_FILES, TEST_FILE):
                    out[name] = (tar.extractfile(member).read(), f"{path}:{member.name}")
    except (OSError, EOFError, tarfile.TarError) as e:
        raise DataError(f"{path}: cannot read the CIFAR-10 archive ({e})") from None
    missing = [f for f in (*TRAIN_FILES, TEST_FILE) if f not in out]
    if missing:
        raise DataError(f"{path}: the archive lacks {', '.join(missing)}")
    return out


def find(root: str | None = None, allow_download: bool = True) -> list[Path]:
    """The files CIFAR-10 is read from: the six batch files, or one `cifar-10-binary.tar.gz`,
    from the first folder of the search path that has them (downloaded as a last resort)."""
    looked = search_dirs("cifar10", root) + SYSTEM_DIRS
    for d in looked:
        found = _folder_files(d)
        if found:
            return found
        if (d / ARCHIVE).is_file():
            return [d / ARCHIVE]
    reason = ""
    if allow_download and os.environ.get("TRAINLAB_OFFLINE") != "1":
        dest = cache_dir() / "cifar10" / ARCHIVE
        try:
            download(URL, dest, MD5, timeout=60.0)
            return [dest]
        except OSError as e:
            reason = f"; download from {URL} failed: {getattr(e, 'reason', e)}"
    places = ", ".join(str(d) for d in looked)
    raise DataError(f"cifar10 not found (data_batch_1..5.bin, test_batch.bin or {ARCHIVE}); "
                    f"looked in {places}{reason}")


def read_files(paths: list[Path]) -> dict[str, tuple[bytes, str]]:
    """The six batch files' bytes (and where each came from), from what `find` returned."""
    if len(paths) == 1:
        return _read_archive(paths[0])
    return {p.name: (p.read_bytes(), str(p)) for p in paths}


def locate(root: str | None = None, allow_download: bool = True) -> dict[str, tuple[bytes, str]]:
    """The six batch files' bytes (and where each came from), from the first folder that has them."""
    return read_files(find(root, allow_download))


def decode(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The decoded splits of the files `find` returned, without the cache."""
    files = read_files(paths)
    parts = [parse_batch(*files[f]) for f in TRAIN_FILES]
    test = parse_batch(*files[TEST_FILE])
    return {"train_x": torch.cat([p.x for p in parts]), "train_y": torch.cat([p.y for p in parts]),
            "test_x": test.x, "test_y": test.y}


def cifar10(root: str | None = None, cache: bool = True) -> SourceData:
    """CIFAR-10: 50000 train / 10000 test 32×32 RGB images of 10 classes (official binary files).
    `cache` (the recipe's `data.cache`): decoded once, then memory-mapped (`trainlab.data.cache`)."""
    paths = find(root)
    t = cached("cifar10", paths, lambda: decode(paths), cache)
    return SourceData(train=Split(t["train_x"], t["train_y"]), test=Split(t["test_x"], t["test_y"]),
                      task="classification", class_names=list(CLASSES), kind="image")
