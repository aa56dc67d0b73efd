"""Export a run's `graph.RawModel` to ONNX (torch.onnx's dynamo exporter, one self-contained file,
dynamic batch) or to a torch.export program (.pt2), check the file against eager PyTorch on a sample
of the run's test split, and run an exported ONNX file.

The file is written only once it has passed the check (atomically): a refused or failed export
leaves nothing behind. A model the exporters cannot take is refused with a RecipeError naming the
layer (its module path and class) and the exporter's first line about it.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError, RecipeError, TrainlabError

FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}
TOLERANCE = 1e-4    # max |eager - exported| over the check sample (the bound)
SAMPLE = 256        # test samples the check runs (plus the first alone: batch 1)


@dataclass
class Exported:
    """What `export` wrote and how well the file matched eager PyTorch."""

    path: Path
    format: str
    size: int            # bytes
    max_diff: float      # max |eager - exported| over every output on the check sample
    samples: int         # samples checked
    sample_source: str   # "test split" or "made-up inputs (...)"
    seconds: float       # export + check
    spec: dict[str, Any]
    allowed: float = TOLERANCE  # the bound max_diff met (see `tolerance`)


def default_path(run_dir: Path, fmt: str, checkpoint: str) -> Path:
    """Where an export of `run_dir`'s `checkpoint` goes unless told: <run>/export/<checkpoint>.<fmt>."""
    return Path(run_dir) / "export" / f"{checkpoint}{FORMATS[fmt]}"


def check_format(fmt: str, out: Path | None) -> None:
    """RecipeError for an unknown `fmt`, or an `out` whose suffix is not the format's."""
    if fmt not in FORMATS:
        raise RecipeError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if out is not None and Path(out).suffix.lower() != FORMATS[fmt]:
        raise RecipeError(f"--out: {out} does not end in {FORMATS[fmt]}, the suffix of --format {fmt}")


def export(loaded: Any, fmt: str = "onnx", out: Path | None = None, sample: Any = None) -> Exported:
    """`loaded`'s (an `api.LoadedRun`) raw-input graph as one file in `fmt` at `out` (default
    `default_path`), the batch axis dynamic, checked before it is written: the exported program and
    eager PyTorch on `sample` (raw inputs; default `raw_sample(loaded)`, a sample of the test split)
    must agree to `TOLERANCE`, on the whole sample and on its first sample alone. The export runs
    on the CPU: `loaded.model` is moved there (load the run with device="cpu").

    Raises RecipeError for a bad `fmt` or `out` suffix, or a model the exporter cannot take (naming
    the layer), DataError when the check fails (naming the difference)."""


    out = Path(out) if out is not None else default_path(loaded.path, fmt, loaded.checkpoint)
    check_format(fmt, out)
    if (Path(loaded.path) / "recipe.yaml").is_file() and out.resolve().is_relative_to(Path(loaded.path).resolve()):
        from ..track.rundir import RunDir

        with RunDir.open(loaded.path).lock():  # a file inside a run: one writer at a time, never a live run
            return _export(loaded, fmt, out, sample)
    return _export(loaded, fmt, out, sample)


def _export(loaded: Any, fmt: str, out: Path, sample: Any) -> Exported:
    import torch

    from ..io import atomic_write
    from .graph import RawModel, io_spec

    start = time.perf_counter()
    module = RawModel(loaded).to("cpu").eval()  # the run's own model: what the file must match
    traced = RawModel(loaded, for_export=True).to("cpu").eval()
    if sample is None:
        x, source = raw_sample(loaded)
    else:
        x, source = torch.as_tensor(sample), "given inputs"
    spec = io_spec(loaded)
    with quiet_exporter():
        example = example_input(loaded, x)
        program = export_program(traced, example)
        if fmt == "onnx":
            data = onnx_bytes(traced, example, program, spec, loaded)
        else:
            data = pt2_bytes(program, spec, loaded)
    with torch.inference_mode():
        want = [[t.numpy() for t in module(b)] for b in (x, x[:1])]
    try:
        got = [run_bytes(data, fmt, b.numpy()) for b in (x, x[:1])]
    except Exception as e:  # e.g. ONNX Runtime has no kernel for an operator the exporter wrote
        runner = "ONNX Runtime" if fmt == "onnx" else "torch.export.load"
        raise RecipeError(f"model.name: the exported {fmt} graph does not run in {runner}: "
                          f"{type(e).__name__}: {first_line(e)}") from None
    diff, allowed = max_abs_diff(want, got), tolerance(loaded, want)
    if not diff <= allowed:  # NaN too
        raise DataError(f"{out}: not written: the exported {fmt} graph differs from eager PyTorch by up to "
                        f"{diff:.3g} on {len(x)} {source} samples (allowed {allowed:.3g})")
    atomic_write(out, data)
    return Exported(out, fmt, len(data), diff, len(x), source, time.perf_counter() - start, spec, allowed)


def tolerance(loaded: Any, want: list[list[Any]]) -> float:
    """The largest |eager - exported| the check allows: `TOLERANCE`, for logits and probabilities;
    for a regression value in original units, `TOLERANCE` of its magnitude once that exceeds 1 (a
    float32 price of 250000 carries only ~0.02 of resolution)."""
    if loaded.info.task != "regression":
        return TOLERANCE
    import numpy as np

    top = max((float(np.abs(w).max()) for ws in want for w in ws if w.size), default=1.0)
    return TOLERANCE * max(1.0, top)


def ensure_exported(loaded: Any, fmt: str = "onnx") -> Path:
    """The run's export of its loaded checkpoint in `fmt`, written first if missing or older than the checkpoint."""
    out = default_path(loaded.path, fmt, loaded.checkpoint)
    weights = Path(loaded.path) / "checkpoints" / loaded.checkpoint / "model.safetensors"
    if out.is_file() and out.stat().st_mtime >= weights.stat().st_mtime:
        return out
    return export(loaded, fmt, out).path


def onnx_session(path: Path | bytes, threads: int | None = None):
    """An ONNX Runtime session on the CPU provider (`threads`: intra-op threads, default ORT's) on
    the file at `path` (or the model's bytes)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path), opts,
                                providers=["CPUExecutionProvider"])


# --- the sample the check runs ---------------------------------------------------------------------------

def raw_sample(loaded: Any, n: int = SAMPLE) -> tuple[Any, str]:
    """Up to `n` samples of the run's test split as the graph's raw inputs (pixels 0-255, table rows
    before `data.preprocess`, token ids), evenly spread over the split, and where they came from.
    The split is rebuilt from the run's recipe as `api.evaluate` does, without the preprocessing the
    graph holds; when it cannot be (the data is gone), `n` made-up inputs of the right shape."""
    import torch

    from ..build import seed_everything
    from ..data import build_data, load_preprocess_state

    recipe = loaded.recipe
    try:
        seed_everything(recipe.seed)
        cfg = recipe.data.model_copy(update={"preprocess": []})
        test = build_data(cfg, recipe.seed, load_preprocess_state(loaded.path) or {}).test
        if test is None or len(test) == 0 or tuple(test.x.shape[1:]) != tuple(loaded.info.input_shape):
            raise DataError("no test split of the run's input shape")
        idx = torch.linspace(0, len(test) - 1, min(n, len(test))).round().long().unique()
        x = test.x[idx]
        if loaded.info.kind == "image":
            x = (x.float() * 255.0).round()  # the source's uint8 pixels, as floats
        return (x.long() if loaded.info.kind == "tokens" else x.float()), "test split"
    except (TrainlabError, OSError) as e:
        x = made_up(loaded.info, n)
        return x, f"made-up inputs (the test split could not be rebuilt: {str(e).splitlines()[0][:160]})"


def made_up(info: Any, n: int) -> Any:
    """`n` inputs of the run's raw kind from `info.example_batch`: pixels in 0-255, token ids, rows."""
    x = info.example_batch(n)[0]
    if info.kind == "image":
        import torch

        x = (torch.sigmoid(x) * 255.0).round()
    return x


def example_input(loaded: Any, x: Any) -> Any:
    """The example the exporter traces with: two samples, so the batch axis is not specialized to 1."""
    if len(x) >= 2:
        return x[:2].clone()
    return made_up(loaded.info, 2)


# --- exporting -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def quiet_exporter():
    """The exporters' warnings, log lines and progress prints kept off the console (the command
    prints its own summary); errors still raise."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "torch._export",
                                              "torch.fx.experimental.symbolic_shapes", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_program(module: Any, example: Any):
    """torch.export's program of `module` with a dynamic batch axis; RecipeError naming the layer
    that stops it."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    try:
        return torch.export.export(module, (example,), dynamic_shapes=({0: batch},), strict=False)
    except Exception as e:  # the exporter raises many types; each is a refusal naming the layer
        raise RecipeError(refusal(module, example, e, "torch.export")) from None


def onnx_bytes(module: Any, example: Any, program: Any, spec: dict[str, Any], loaded: Any) -> bytes:
    """The program as one self-contained ONNX file (weights inside), with trainlab's metadata."""
    import torch

    from .graph import output_names

    try:
        onnx_program = torch.onnx.export(program, dynamo=True, external_data=False, input_names=["input"],
                                         output_names=output_names(loaded.info), verbose=False)
    except Exception as e:
        raise RecipeError(refusal(module, example, e, "the ONNX exporter")) from None
    proto = onnx_program.model_proto
    for key, value in metadata(spec, loaded).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"trainlab export of {loaded.path} ({loaded.checkpoint} checkpoint)"
    return proto.SerializeToString()


def pt2_bytes(program: Any, spec: dict[str, Any], loaded: Any) -> bytes:
    """The program as a torch.export archive, trainlab's metadata in its extra file trainlab.json."""
    import torch

    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={"trainlab.json": json.dumps(metadata(spec, loaded))})
    return buf.getvalue()


def metadata(spec: dict[str, Any], loaded: Any) -> dict[str, str]:
    """The ONNX metadata properties (and the pt2 trainlab.json): strings, JSON where structured."""
    return {"trainlab.classes": json.dumps(spec["classes"]), "trainlab.input_spec": json.dumps(spec),
            "trainlab.preprocessing": json.dumps(spec["preprocessing"]), "trainlab.task": spec["task"],
            "trainlab.run": str(loaded.path), "trainlab.model": str(loaded.recipe.model.name),
            "trainlab.checkpoint": str(loaded.checkpoint), "trainlab.epoch": str(loaded.epoch)}


def run_bytes(data: bytes, fmt: str, x: Any) -> list[Any]:
    """The exported file's (as bytes) outputs on the numpy batch `x`: ONNX Runtime, or torch.export.load."""
    if fmt == "onnx":
        return onnx_session(data, 1).run(None, {"input": x})
    import torch

    program = torch.export.load(io.BytesIO(data))
    with torch.inference_mode():
        return [t.numpy() for t in program.module()(torch.from_numpy(x))]


def max_abs_diff(want: list[list[Any]], got: list[list[Any]]) -> float:
    """max |a - b| over every output of every batch; inf when a shape differs."""
    import numpy as np

    worst = 0.0
    for ws, gs in zip(want, got):
        if len(ws) != len(gs):
            return float("inf")
        for w, g in zip(ws, gs):
            if w.shape != np.shape(g):
                return float("inf")
            if w.size:
                worst = max(worst, float(np.max(np.abs(w.astype(np.float64) - np.asarray(g, np.float64)))))
    return worst


# --- naming what blocks an export ------------------------------------------------------------------------

def refusal(module: Any, example: Any, error: BaseException, exporter: str) -> str:
    """One line: the layer (module path and class) that `exporter` cannot take (`blocking_layer`)
    and the exporter's reason; "the model" and the whole export's reason when no layer fails alone."""
    layer = blocking_layer(module, example, exporter) if example is not None else None
    where = f"layer {layer[0]} ({layer[1]})" if layer else "the model"
    why = layer[2] if layer else error
    return f"model.name: {where} cannot be exported with {exporter}: {type(why).__name__}: {first_line(why)}"


def first_line(error: BaseException) -> str:
    """The exporter's reason in one line, without the graph it prints before it, and where in the
    user's code it happened when the exporter says (`The following call raised this error:`)."""
    import re

    text = str(error)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    graph = re.compile(r'^(def |# File|return |[\w.]+: "|[\w.]+ = )')  # torch.export's dump of the graph so far
    reason = next((ln for ln in lines if not graph.match(ln)), type(error).__name__)[:300]
    op = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)'", text)
    if op:  # the ONNX exporter's summary sits under a banner of next steps: name the operator instead
        reason = f"no ONNX translation of the operator {op.group(1)}"
    at = re.search(r'raised this error:\s*File "([^"]+)", line (\d+), in \w+\s*\n\s*(.+)', text)
    if at:
        reason += f" (at {Path(at.group(1)).name}:{at.group(2)}: {at.group(3).strip()[:120]})"
    return reason


def blocking_layer(module: Any, example: Any, exporter: str) -> tuple[str, str, BaseException] | None:
    """(path, class name, error) of the innermost layer that fails to export alone, with a dynamic
    batch, on the inputs the eager forward gave it: leaves first, then the layers around them (a
    branch on the data may sit in a container's own forward), each depth in forward order; None
    when every layer exports alone."""
    import torch

    seen: dict[str, tuple[Any, tuple, dict]] = {}

    def keep(name: str):
        def hook(m, args, kwargs, out) -> None:  # returns None: the output stays as it is
            seen.setdefault(name, (m, args, kwargs))
        return hook

    hooks = [sub.register_forward_hook(keep(name), with_kwargs=True) for name, sub in module.named_modules() if name]
    try:
        with torch.no_grad():
            module(example)
    except Exception:  # the layers before the one that failed eagerly were still seen
        pass
    finally:
        for h in hooks:
            h.remove()
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    order = sorted(seen, key=lambda n: -n.count("."))  # stable: forward order within a depth
    for name in order:
        sub, args, kwargs = seen[name]
        dynamic = None
        if not kwargs:  # the batch axis of each input that has it
            dynamic = tuple({0: batch} if isinstance(a, torch.Tensor) and a.ndim and a.shape[0] == len(example)
                            else None for a in args)
        try:
            program = torch.export.export(sub, args, kwargs, dynamic_shapes=dynamic, strict=False)
            if exporter != "torch.export":
                torch.onnx.export(program, dynamo=True, external_data=False, verbose=False)
        except Exception as e:
            return name, type(sub).__name__, e
    return None
