"""Quantization and distillation figures at full scale (issue 21's "What it must show"):

- int8 dynamic (torchao) of the Fashion-MNIST MLP recipe (784-256-10, 5 epochs): test accuracy
  change, file ratio, latency at batch 1 and 256, fp32 vs int8, eager and torch.compile'd;
- static int8 of the convnet recipe through ONNX Runtime (QDQ, per-channel, 256 calibration images
  from the training split): accuracy change on the full test split, batch-256 latency of ORT int8 vs
  ORT fp32 vs eager PyTorch;
- distillation: a 784-64-10 MLP distilled from the convnet vs the same MLP on labels alone, 3 seeds.

    PYTHONPATH=src python benchmarks/compress_quant.py [--cnn-epochs 6] [--write]

Prints a markdown section; --write puts it in benchmarks/results-compress.md under
"## Quantization and distillation". Latency: median of --reps calls after warm-up, torch's threads
as set (reported).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Quantization and distillation"


def cpu() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8") if f in flags]
    return f"{model}, {os.cpu_count()} logical CPUs, flags: {' '.join(shown) or 'none of avx2/avx512/amx'}"


def median_ms(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def torch_latency(model, x: torch.Tensor, reps: int) -> float:
    with torch.inference_mode():
        return median_ms(lambda: model(x), reps)


def ort_latency(path: Path, x: torch.Tensor, reps: int) -> float:
    from trainlab.deploy.export import onnx_session

    sess = onnx_session(path)
    feed = {sess.get_inputs()[0].name: x.numpy()}
    return median_ms(lambda: sess.run(None, feed), reps)


def train(recipe: str, root: Path, **changes):
    import trainlab
    from trainlab.recipe import read_yaml

    raw = read_yaml(ROOT / "recipes" / recipe)
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            raw.setdefault(section, {})[field] = value
        else:
            raw[section] = value
    raw["output"] = {"root": str(root), "plots": False, "report": False}
    return trainlab.train(raw, progress=False)


def file_size(run_dir: Path) -> int:
    return (run_dir / "checkpoints" / "best" / "model.safetensors").stat().st_size


def mlp_dynamic(root: Path, reps: int) -> tuple[list[str], list[str]]:
    from trainlab.api import load_run
    from trainlab.compress.quantize import quantize_run

    parent = train("fashion_mnist_mlp.yaml", root)
    lines = []
    for scheme in ("int8_dynamic", "int8_weight_only"):
        child = quantize_run(parent.path, scheme)
        change = (child.metrics["accuracy"] - parent.metrics["accuracy"]) * 100
        lines.append(f"| MLP 784-256-10 {scheme} | {parent.metrics['accuracy']:.4f} | {child.metrics['accuracy']:.4f} "
                     f"| {change:+.2f} | {file_size(parent.path) / file_size(child.path):.2f}x "
                     f"({file_size(parent.path) / 1e3:.0f} kB -> {file_size(child.path) / 1e3:.0f} kB) |")
    fp32 = load_run(parent.path, device="cpu").model
    int8 = load_run(quantize_run(parent.path, "int8_dynamic").path, device="cpu").model
    torch._dynamo.config.recompile_limit = 64  # four models, two batch sizes, in one process
    rows = ["", "| MLP latency (ms, median) | batch 1 | batch 256 |", "|---|---|---|"]
    for name, model in (("fp32 eager", fp32), ("int8 dynamic eager", int8),
                        ("fp32 torch.compile", torch.compile(fp32, dynamic=False)),
                        ("int8 dynamic torch.compile", torch.compile(int8, dynamic=False))):
        cells = [torch_latency(model, torch.randn(b, 1, 28, 28), reps) for b in (1, 256)]
        rows.append(f"| {name} | {cells[0]:.3f} | {cells[1]:.3f} |")
    return lines, rows


def cnn_static(root: Path, epochs: int, reps: int):
    import json

    from trainlab.api import load_run
    from trainlab.compress.quantize import quantize_run, raw_split

    parent = train("fashion_mnist_cnn.yaml", root, **{"train.epochs": epochs})
    child = quantize_run(parent.path, "int8_static", calibration=256)
    fig = json.loads((child.path / "eval" / "int8_onnx.json").read_text())
    loaded = load_run(parent.path, device="cpu")
    x_raw = raw_split(loaded, "test")[0][:256]
    x = loaded.prepare(x_raw / 255.0)
    lat = {"eager PyTorch fp32": torch_latency(loaded.model, x, reps),
           "ONNX Runtime fp32": ort_latency(child.path / "export" / "best.onnx", x_raw, reps),
           "ONNX Runtime int8 (QDQ)": ort_latency(child.path / "export" / "best.int8.onnx", x_raw, reps)}
    change = (fig["int8_accuracy"] - fig["fp32_accuracy"]) * 100
    line = (f"| convnet 32-96-192 ({epochs} epochs) int8_static (ORT) | {fig['fp32_accuracy']:.4f} | "
            f"{fig['int8_accuracy']:.4f} | {change:+.2f} | {fig['fp32_bytes'] / fig['int8_bytes']:.2f}x (ONNX files) |")
    rows = ["", "| convnet latency, batch 256 (ms, median) | |", "|---|---|"]
    rows += [f"| {k} | {v:.2f} |" for k, v in lat.items()]
    rows.append(f"| argmax agreement int8 vs fp32 | {fig['agreement']:.4f} |")
    return parent, line, rows


def distillation(teacher, root: Path, seeds: list[int], epochs: int, alpha: float, temperature: float) -> list[str]:
    from trainlab.compress.distill import distill_run
    from trainlab.recipe import read_yaml

    student = read_yaml(ROOT / "recipes" / "fashion_mnist_mlp.yaml")
    student.update(name="mlp-64", model={"name": "mlp", "widths": [64]},
                   output={"root": str(root), "plots": False, "report": False})
    student["train"] = {**student.get("train", {}), "epochs": epochs}
    alone, distilled = [], []
    for s in seeds:
        import trainlab

        alone.append(trainlab.train({**student, "seed": s}, progress=False).metrics["accuracy"])
    distilled = [r.metrics["accuracy"] for r in distill_run(teacher.path, student, alpha=alpha, temperature=temperature,
                                                            seeds=seeds)]
    margins = [d - a for d, a in zip(distilled, alone)]
    mean = statistics.mean
    sd = statistics.stdev(margins) if len(margins) > 1 else 0.0
    return ["", f"| MLP 784-64-10, {epochs} epochs, seeds {seeds} | test accuracy per seed | mean |", "|---|---|---|",
            f"| labels alone | {' / '.join(f'{a:.4f}' for a in alone)} | {mean(alone):.4f} |",
            f"| distilled from the convnet (alpha {alpha}, T {temperature}) | {' / '.join(f'{d:.4f}' for d in distilled)} "
            f"| {mean(distilled):.4f} |",
            f"| margin (distilled - alone) | {' / '.join(f'{m * 100:+.2f}' for m in margins)} points "
            f"| {mean(margins) * 100:+.2f} points (sd {sd * 100:.2f}) |",
            f"| teacher (convnet) | | {teacher.metrics['accuracy']:.4f} |"]


def write_section(text: str) -> Path:
    path = ROOT / "benchmarks" / "results-compress.md"
    old = path.read_text() if path.is_file() else "# Compression benchmarks\n"
    start = old.find(HEADING)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(HEADING))
        new = old[:start] + text + (old[end:] if end >= 0 else "")
    path.write_text(new.rstrip("\n") + "\n")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cnn-epochs", type=int, default=6, help="epochs of the convnet (recipe: 6)")
    p.add_argument("--student-epochs", type=int, default=5, help="epochs of each MLP student")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--alpha", type=float, default=0.5, help="share of the distillation term")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--write", action="store_true", help="write benchmarks/results-compress.md's section")
    args = p.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trainlab-bench-quant-") as tmp:
        root = Path(tmp)
        acc_rows, mlp_rows = mlp_dynamic(root, args.reps)
        teacher, cnn_line, cnn_rows = cnn_static(root, args.cnn_epochs, args.reps)
        dist_rows = distillation(teacher, root, args.seeds, args.student_epochs, args.alpha, args.temperature)
    import onnxruntime
    import torchao

    text = "\n".join([
        HEADING, "",
        f"`PYTHONPATH=src python benchmarks/compress_quant.py --cnn-epochs {args.cnn_epochs} "
        f"--student-epochs {args.student_epochs} --alpha {args.alpha} --temperature {args.temperature} --write` "
        f"on {cpu()} (load average {os.getloadavg()[0]:.1f} at the end: a shared machine); "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchao {torchao.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; {time.perf_counter() - start:.0f} s in all. "
        "Accuracy: the full Fashion-MNIST test split (10000 images).", "",
        "| run | fp32 accuracy | int8 accuracy | change (points) | file ratio |", "|---|---|---|---|---|",
        *acc_rows, cnn_line, *mlp_rows, *cnn_rows, *dist_rows, ""])
    print(text)
    if args.write:
        print(f"written: {write_section(text)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
