"""MNIST-format image sources (Fashion-MNIST, MNIST), found on disk or downloaded with checksums."""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from ..errors import DataError
from .bundle import SourceData, Split
from .idx import read_idx

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Official locations and MD5 sums of the gzip files as published.
_DATASETS = {
    "fashion-mnist": {
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "md5": ["8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940d376", "bb300cfdad3c16e7a12a480ee83cd310"],
        "system": "/usr/share/datasets/fashion-mnist",
    },
    "mnist": {
        "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "md5": ["f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"],
        "system": "/usr/share/datasets/mnist",
    },
}


def search_dirs(name: str, root: str | None = None) -> list[Path]:
    """Where a data set named `name` is looked for, in order."""
    dirs = []
    if root:
        dirs += [Path(root) / name, Path(root)]
    if os.environ.get("TRAINLAB_DATA"):
        dirs += [Path(os.environ["TRAINLAB_DATA"]) / name, Path(os.environ["TRAINLAB_DATA"])]
    dirs.append(cache_dir() / name)
    system = _DATASETS.get(name, {}).get("system")
    if system:
        dirs.append(Path(system))
    return dirs


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "trainlab"


def find_file(d: Path, stem: str) -> Path | None:
    for cand in (d / f"{stem}.gz", d / stem):
        if cand.is_file():
            return cand
    return None


def download(url: str, dest: Path, md5: str, timeout: float = 20.0) -> None:
    """Download `url` to `dest` atomically, refusing it unless its MD5 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    h = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
        while chunk := r.read(1 << 20):
            h.update(chunk)
            f.write(chunk)
    if h.hexdigest() != md5:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{url}: checksum mismatch (got md5 {h.hexdigest()}, expected {md5})")
    os.replace(tmp, dest)


def locate(name: str, root: str | None = None, allow_download: bool = True) -> list[Path]:
    """Paths of the four IDX files of `name`, from the first folder that has all of them."""
    looked = search_dirs(name, root)
    for d in looked:
        paths = [find_file(d, s) for s in _FILES]
        if all(paths):
            return paths  # type: ignore[return-value]
    spec = _DATASETS[name]
    if allow_download and os.environ.get("TRAINLAB_OFFLINE") != "1":
        dest = cache_dir() / name
        try:
            for stem, md5 in zip(_FILES, spec["md5"]):
                if not (dest / f"{stem}.gz").is_file():
                    download(spec["url"] + f"{stem}.gz", dest / f"{stem}.gz", md5)
            return [dest / f"{s}.gz" for s in _FILES]
        except OSError as e:
            reason = f"; download from {spec['url']} failed: {getattr(e, 'reason', e)}"
    else:
        reason = ""
    places = ", ".join(str(d) for d in looked)
    hint = " (on Debian/Ubuntu: apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
    raise DataError(f"{name} not found; looked in {places}{reason}{hint}")


def load_idx_pair(images: Path, labels: Path, cache: bool = True) -> Split:
    x, y = read_idx(images, cache), read_idx(labels, cache)
    if x.ndim != 3:
        raise DataError(f"{images}: expected a 3-D image array, got shape {tuple(x.shape)}")
    if y.ndim != 1:
        raise DataError(f"{labels}: expected a 1-D label array, got shape {tuple(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{labels}: {y.shape[0]} labels but {images.name} has {x.shape[0]} images")
    # uint8 stays uint8 here; scaling to [0, 1] happens once, in build_data
    return Split(x.unsqueeze(1), y.long())


def _check_labels(split: Split, labels: Path, classes: int) -> Split:
    if len(split) and (int(split.y.min()) < 0 or int(split.y.max()) >= classes):
        bad = int(split.y.max()) if int(split.y.max()) >= classes else int(split.y.min())
        raise DataError(f"{labels}: label {bad} out of range 0-{classes - 1}")
    return split


def _idx_source(name: str, class_names: list[str], root: str | None, cache: bool) -> SourceData:
    tr_x, tr_y, te_x, te_y = locate(name, root)
    n = len(class_names)
    return SourceData(train=_check_labels(load_idx_pair(tr_x, tr_y, cache), tr_y, n),
                      test=_check_labels(load_idx_pair(te_x, te_y, cache), te_y, n),
                      task="classification", class_names=class_names, kind="image")


def fashion_mnist(root: str | None = None, cache: bool = True) -> SourceData:
    """Fashion-MNIST: 60000 train / 10000 test 28×28 grayscale images of 10 clothing classes.
    `cache` (the recipe's `data.cache`): decoded once, then memory-mapped (`trainlab.data.cache`)."""
    return _idx_source("fashion-mnist", FASHION_CLASSES, root, cache)


def mnist(root: str | None = None, cache: bool = True) -> SourceData:
    """MNIST: 60000 train / 10000 test 28×28 handwritten digits."""
    return _idx_source("mnist", [str(i) for i in range(10)], root, cache)
