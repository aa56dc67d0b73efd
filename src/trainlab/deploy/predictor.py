"""`Predictor`: a run's model behind one call, raw input array -> named output arrays, on the
torch backend (eager PyTorch, `graph.RawModel`) or the onnx backend (ONNX Runtime on the run's
exported file, `export.ensure_exported`). `trainlab predict` and `trainlab serve` use it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, RecipeError

BACKENDS = ("torch", "onnx")


class Predictor:
    """`Predictor(run_dir, backend)`; `predictor(x)` -> {"logits", "probabilities"} or {"value"},
    float32 numpy arrays with the batch first. `x` must match `spec["input"]` (`check` says how not)."""

    def __init__(self, run_dir: str | Path, backend: str = "torch", checkpoint: str = "best",
                 trust_code: bool = False, device: str | None = None, threads: int | None = None):
        import torch

        from ..api import load_run
        from .graph import RawModel, io_spec

        if backend not in BACKENDS:
            raise RecipeError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
        self.backend = backend
        self.loaded = load_run(run_dir, checkpoint, device="cpu" if backend == "onnx" else device,
                               trust_code=trust_code)
        self.run_dir = Path(self.loaded.path)
        self.spec = io_spec(self.loaded)
        self.output_names = [o["name"] for o in self.spec["outputs"]]
        self.classes = self.spec["classes"]
        self.input_dtype = np.int64 if self.spec["input"]["dtype"] == "int64" else np.float32
        if backend == "torch":
            self._torch = torch
            self._module = RawModel(self.loaded).to(self.loaded.device).eval()
            self._session = None
        else:
            from .export import ensure_exported, onnx_session

            self.model_file = ensure_exported(self.loaded, "onnx")
            self._session = onnx_session(self.model_file, threads)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The input's shape without the batch."""
        return tuple(int(s) for s in self.spec["input"]["shape"][1:])

    def check(self, x: np.ndarray, where: str = "input") -> np.ndarray:
        """`x` as the graph's dtype, or DataError naming the expected and the given shape."""
        x = np.asarray(x)
        want = self.input_shape
        if x.ndim == len(want) and tuple(x.shape) == want:  # one sample
            x = x[None]
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            raise DataError(f"{where}: expected shape (N, {', '.join(map(str, want))}) "
                            f"[{self.spec['input']['description']}], got {tuple(x.shape)}")
        if self.input_dtype == np.int64:
            if not np.issubdtype(x.dtype, np.integer):
                raise DataError(f"{where}: expected integer token ids, got {x.dtype}")
            vocab = self.spec["input"].get("vocab_size")
            if vocab and x.size and (x.min() < 0 or x.max() >= vocab):
                raise DataError(f"{where}: token ids must lie in [0, {vocab}), got {int(x.min())}..{int(x.max())}")
        elif not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise DataError(f"{where}: expected numbers, got {x.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):  # 1e300 -> inf: refused by whoever checks finiteness
            return np.ascontiguousarray(x, dtype=self.input_dtype)

    def __call__(self, x: np.ndarray, batch_size: int = 1024) -> dict[str, np.ndarray]:
        x = self.check(x)
        parts: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for i in range(0, max(len(x), 1), batch_size):
            for j, out in enumerate(self._run(x[i:i + batch_size])):
                parts[j].append(out)
        return {n: np.concatenate(p) if p else np.zeros((0,), np.float32) for n, p in zip(self.output_names, parts)}

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        if self._session is not None:
            return self._session.run(self.output_names, {"input": x})
        torch = self._torch
        with torch.inference_mode():
            outs = self._module(torch.from_numpy(x).to(self.loaded.device))
        return [o.float().cpu().numpy() for o in outs]

    def metadata(self) -> dict[str, Any]:
        """What `GET /metadata` and `trainlab predict --format json` tell about the model."""
        lr = self.loaded
        metrics = {}
        for split in ("test", "val"):
            f = self.run_dir / "eval" / f"{split}.json"
            if f.is_file():
                import json

                try:
                    d = json.loads(f.read_text())
                except ValueError:
                    continue
                metrics[split] = {k: v for k, v in (d.get("metrics") or d).items()
                                  if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return {"run": str(self.run_dir), "name": lr.recipe.name, "model": lr.recipe.model.name,
                "task": lr.info.task, "classes": self.classes, "checkpoint": lr.checkpoint, "epoch": lr.epoch,
                "backend": self.backend, "input": self.spec["input"], "outputs": self.spec["outputs"],
                "preprocessing": self.spec["preprocessing"], "metrics": metrics}
