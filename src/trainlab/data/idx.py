"""Reader for the IDX format of MNIST and Fashion-MNIST (gzip or plain)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cache import cached

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path, cache: bool = True) -> torch.Tensor:
    """Read one IDX file into a tensor, from the decoded-data cache (`trainlab.data.cache`) when
    `cache` and it holds the file. Raises DataError naming the file when it is malformed."""
    path = Path(path)
    return cached("idx", [path], lambda: {"data": decode_idx(path)}, cache)["data"]


def decode_idx(path: Path) -> torch.Tensor:
    """The IDX file decoded (gunzipped when it ends in .gz), without the cache."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: truncated or padded IDX file: {len(raw)} bytes, "
                        f"expected {expected} for shape {tuple(dims)}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))
