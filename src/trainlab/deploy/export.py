"""Export a run's `graph.RawModel` to ONNX (torch.onnx's dynamo exporter, one self-contained file,
dynamic batch) or to a torch.export program (.pt2), and run an exported ONNX file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}


def default_path(run_dir: Path, fmt: str, checkpoint: str) -> Path:
    """Where an export of `run_dir`'s `checkpoint` goes unless told: <run>/export/<checkpoint>.<fmt>."""
    return Path(run_dir) / "export" / f"{checkpoint}{FORMATS[fmt]}"


def export_onnx(loaded: Any, out: Path) -> Path:
    """`loaded`'s raw-input graph as one ONNX file at `out`, the batch axis dynamic."""
    import torch

    from ..io import atomic_write
    from .graph import RawModel, output_names

    module = RawModel(loaded).to("cpu").eval()
    example = loaded.info.example_batch(2)[0]
    if loaded.info.kind == "image":
        example = example.float() * 255.0 if example.dtype != torch.uint8 else example.float()
    batch = torch.export.Dim("batch")
    out.parent.mkdir(parents=True, exist_ok=True)
    program = torch.onnx.export(module, (example,), dynamo=True, external_data=False, input_names=["input"],
                                output_names=output_names(loaded.info), dynamic_shapes=({0: batch},),
                                verbose=False)
    atomic_write(out, program.model_proto.SerializeToString())
    return out


def ensure_exported(loaded: Any, fmt: str = "onnx") -> Path:
    """The run's export of its loaded checkpoint in `fmt`, written first if missing or older than the checkpoint."""
    out = default_path(loaded.path, fmt, loaded.checkpoint)
    weights = Path(loaded.path) / "checkpoints" / loaded.checkpoint / "model.safetensors"
    if out.is_file() and out.stat().st_mtime >= weights.stat().st_mtime:
        return out
    return export_onnx(loaded, out)


def onnx_session(path: Path, threads: int | None = None):
    """An ONNX Runtime session on the CPU provider (`threads`: intra-op threads, default ORT's)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
