"""`image_folder`: class-per-subfolder PNG/JPEG images read with Pillow, resized to one size.

    path/
      cat/  001.png 002.jpg ...
      dog/  ...

Class names are the subfolder names, sorted. When `path` holds `train/` and `test/` folders of
that layout, they are the training and test splits. Any file that is not a readable image
(hidden files aside) is an error naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from ..errors import DataError
from .bundle import SourceData, Split

EXTENSIONS = {".png", ".jpg", ".jpeg"}


def _class_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (data.path)")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise DataError(f"{root}: no class subfolders (expected {root}/<class>/<image>.png)")
    return dirs


def _read_image(path: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    if path.suffix.lower() not in EXTENSIONS:
        raise DataError(f"{path}: not a PNG or JPEG image (image_folder reads {', '.join(sorted(EXTENSIONS))})")
    return decode_image(path, size, mode, str(path))


def decode_image(source, size: tuple[int, int], mode: str, name: str, max_pixels: int | None = None) -> np.ndarray:
    """One image (a path or an open binary file) as uint8 (C, H, W): converted to grayscale (`mode`
    grayscale) or RGB, resized bilinearly to `size` (H, W). DataError naming `name` if unreadable,
    or if it holds more than `max_pixels` (checked from its header, before it is decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            if max_pixels is not None and im.size[0] * im.size[1] > max_pixels:
                raise DataError(f"{name}: {im.size[0]}x{im.size[1]} pixels is over the limit of {max_pixels:,}")
            im = im.convert("L" if mode == "grayscale" else "RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{name}: cannot read as an image ({e})") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_folder(root: Path, size: tuple[int, int], mode: str, names: list[str] | None = None) -> tuple[Split, list[str]]:
    """Every image under root/<class>/ as uint8 (N, C, H, W) plus class indices."""
    dirs = _class_dirs(root)
    found = [d.name for d in dirs]
    training = names is None  # the training folder defines the classes
    if names is None:
        names = found
    elif set(found) - set(names):
        extra = min(set(found) - set(names))
        raise DataError(f"{root / extra}: class {extra!r} has no training images")
    if training and len(dirs) < 2:
        raise DataError(f"{root}: one class subfolder ({dirs[0].name!r}); classification needs at least 2 "
                        f"({root}/<class>/<image>.png, one folder per class)")
    images, labels = [], []
    for d in dirs:
        files = sorted(f for f in d.rglob("*") if f.is_file() and not f.name.startswith("."))
        if not files and training:
            raise DataError(f"{d}: no images in class folder {d.name!r} (every class needs training images)")
        for f in files:
            images.append(_read_image(f, size, mode))
            labels.append(names.index(d.name))
    if not images:
        raise DataError(f"{root}: no images in its class subfolders")
    return Split(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long)), names


Side = Annotated[int, Field(ge=1)]


def image_folder(path: str, size: Side | Annotated[list[Side], Field(min_length=2, max_length=2)] = 32,
                 mode: Literal["rgb", "grayscale"] = "rgb", test_path: str | None = None) -> SourceData:
    """Class-per-subfolder PNG/JPEG images resized to `size` (an int or [height, width]), `rgb` or
    `grayscale`. Test split: `test_path`, or `path/test` beside `path/train`, else carved."""
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    root = Path(path)
    if test_path is None and (root / "train").is_dir() and (root / "test").is_dir():
        root, test_path = root / "train", str(root / "test")
    train, names = read_folder(root, hw, mode)
    test = read_folder(Path(test_path), hw, mode, names)[0] if test_path else None
    return SourceData(train=train, test=test, task="classification", class_names=names, kind="image",
                      extra={"root": str(root)})
