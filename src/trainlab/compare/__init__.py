"""The optimizer comparison lab (`trainlab compare`): which optimizer, at its best learning rate,
reaches the target first, over several seeds.

protocol.py  settings, the target, per-optimizer LR grids, the recipe of one run (fair by construction)
runs.py      one run (a Trainer and a curve-recording callback); many, here or in spawned workers
table.py     mean ± std over seeds (pandas), ranking, markdown and rich tables
plots.py     convergence (vs epochs and vs seconds, shaded seed range) and LR sensitivity
output.py    compare.json, table.md, plots/, report.html, written as one folder
runner.py    `compare()`: validate, search LRs, run, write
"""
from __future__ import annotations

from .protocol import CompareError

__all__ = ["CompareError", "compare"]


def compare(*args, **kwargs):
    """See `trainlab.compare.runner.compare`."""
    from .runner import compare as _compare

    return _compare(*args, **kwargs)
