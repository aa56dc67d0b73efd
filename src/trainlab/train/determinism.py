"""`train.deterministic`: the PyTorch settings that make a run repeatable, recorded in env.json.

See https://pytorch.org/docs/stable/notes/randomness.html. On the CPU the kernels trainlab uses
are deterministic for a fixed thread count already; the switch matters most on CUDA.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import torch


def set_determinism(deterministic: bool) -> dict[str, Any]:
    """Apply the settings (process-wide, as PyTorch keeps them) and return them for env.json."""
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; it must be set before CUDA starts
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    if deterministic or torch.are_deterministic_algorithms_enabled():
        _use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    return {
        "deterministic": deterministic,
        "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def _use_deterministic_algorithms(mode: bool) -> None:
    """torch.use_deterministic_algorithms(mode) without its eager import of torch._inductor (4-7 s here).

    The public function sets two things: the ATen flag, and inductor's `deterministic` config, whose
    default inductor reads from TORCHINDUCTOR_DETERMINISTIC when it is first imported.
    """
    os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1" if mode else "0"
    inductor_config = sys.modules.get("torch._inductor.config")
    if inductor_config is not None:
        inductor_config.deterministic = mode
    torch._C._set_deterministic_algorithms(mode, warn_only=False)
