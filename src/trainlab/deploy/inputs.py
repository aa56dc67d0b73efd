"""Raw inputs read into the arrays a run's exported graph takes (see graph.py for the spec):
images (files, folders, bytes) resized and converted as at training, table rows encoded with the
training vocabulary, texts, `.npy` arrays. Reads with the data sources' own decoders.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError


def image_array(source: str | Path | bytes | BinaryIO, shape: tuple[int, ...], where: str | None = None) -> np.ndarray:
    """One image (a path, its bytes or an open file) as (C, H, W) float32 pixels in 0-255 for an
    input of `shape` (C, H, W): converted to grayscale (C 1) or RGB (C 3), resized bilinearly to
    H x W as `image_folder` does at training. DataError naming `where` for what is not an image."""
    from ..data.folder import decode_image

    c, h, w = (int(s) for s in shape)
    name = where or (str(source) if isinstance(source, (str, Path)) else "image")
    if c not in (1, 3):
        raise DataError(f"{name}: the model takes {c}-channel inputs; images give 1 or 3 channels")
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    return decode_image(f, (h, w), "grayscale" if c == 1 else "rgb", name).astype(np.float32)
