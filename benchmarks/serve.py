"""Serving benchmark (issue 20): a bounded load test against local servers only (127.0.0.1).

    python benchmarks/serve.py                       # MLP and CNN runs, 3 repetitions (~8 min)
    python benchmarks/serve.py --models mlp --reps 1 --markdown

For each model (a Fashion-MNIST MLP 784-256-10, the CNN recipe's convnet and a ResNet-20, whose
call costs more than a request's HTTP round trip, trained here for one epoch on 2,000 images:
the weights do not change the speed) it starts, one at a time, as separate
processes on 127.0.0.1:
- `trainlab serve RUN --backend torch|onnx --max-batch 32` (dynamic batching on) and `--max-batch 1` (off);
- the peer: a minimal hand-written FastAPI endpoint calling ONNX Runtime on the same exported file
  (`python benchmarks/serve.py --peer PORT RUN`), the "bare call + HTTP";
- LitServe 0.2 (if installed) on the same ONNX file, max_batch_size 32 / 1 (`--litserve PORT RUN N`).
Against each, with one asyncio httpx client in this process: c=1 single-sample JSON requests (latency),
c=32 single-sample JSON requests, and c=32 requests of 32 samples as a `.npy` body (JSON encoding of
32x784 floats would be what is measured). Each load is a fixed number of requests under a time limit.
Beside them, the bare ONNX Runtime call in this process (batch 1 and 32). Reported: medians over the
repetitions of requests/s, samples/s, p50 and p99 latency; the CPU and the load average.
"""

import argparse
import asyncio
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECIPES = {"mlp": {"model": {"name": "mlp", "widths": [256]}},
           "cnn": {"model": {"name": "convnet", "widths": [32, 96, 192], "stem_stride": 2}},
           # a model whose call costs more than a request's HTTP round trip: where batching pays on a CPU
           "resnet": {"model": {"name": "resnet", "depth": 20, "width": 16}}}
TITLES = {"mlp": "784-256-10", "cnn": "convnet 32-96-192, stem stride 2", "resnet": "ResNet-20, width 16, 28x28"}
LOADS = [("c1 x1", 1, 1), ("c32 x1", 32, 1), ("c32 x32", 32, 32)]  # name, concurrency, samples per request


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cpu() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), platform.processor())
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    simd = sorted(f for f in set(flags) if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16") or f.startswith("amx"))
    return f"{model}, {os.cpu_count()} logical CPUs, flags: {' '.join(simd) or 'none of avx2/avx512/amx'}"


def train_runs(models: list[str], root: Path) -> dict[str, Path]:
    import trainlab

    out = {}
    for m in models:
        recipe = {"name": f"serve-bench-{m}", "seed": 0,
                  "data": {"source": "fashion_mnist", "subset": 2000, "preprocess": [{"normalize": "standard"}],
                           "batch_size": 128}, **RECIPES[m], "train": {"epochs": 1},
                  "output": {"root": str(root), "plots": False, "report": False, "trackers": []}}
        out[m] = trainlab.train(recipe, run_dir=root / m, progress=False).path
    return out


# --- the peers -------------------------------------------------------------------------------------------

def peer_app(onnx_file: str):
    """The minimal hand-written endpoint: the body into numpy, one ONNX Runtime call, probabilities out."""
    import numpy as np
    import onnxruntime as ort
    from fastapi import FastAPI, Request

    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request):
        if request.headers.get("content-type", "").startswith("application/json"):
            x = np.asarray((await request.json())["instances"], dtype=np.float32)
        else:
            x = np.load(io.BytesIO(await request.body()))
        p = session.run(["probabilities"], {"input": x})[0]
        return {"predictions": [{"probabilities": row} for row in p.tolist()]}

    return app


try:  # LitServe's inference worker is a spawned process: its LitAPI class must be importable
    import litserve as _ls
except ImportError:
    _ls = None

if _ls is not None:
    class LitPeer(_ls.LitAPI):
        """The same Predictor (onnx) behind LitServe: JSON instances in, probabilities out."""

        def setup(self, device):
            from trainlab.deploy.predictor import Predictor

            self.p = Predictor(self.run_dir, "onnx")

        def decode_request(self, request):
            import numpy as np
            from fastapi import HTTPException

            try:
                return self.p.check(np.asarray(request["instances"], dtype=np.float32), "instances")
            except Exception as e:  # noqa: BLE001
                raise HTTPException(422, str(e)) from None

        def batch(self, inputs):
            import numpy as np

            return np.concatenate(inputs)

        def predict(self, x):
            return self.p(x)["probabilities"]

        def unbatch(self, out):
            return [row[None] for row in out]

        def encode_response(self, out):
            return {"predictions": [{"probabilities": row} for row in out.tolist()]}


def litserve_main(port: int, run_dir: str, max_batch: int) -> None:
    api = LitPeer(max_batch_size=max_batch, batch_timeout=0.002 if max_batch > 1 else 0.0)
    api.run_dir = run_dir
    _ls.LitServer(api, accelerator="cpu", workers_per_device=1, max_payload_size=64 * 2 ** 20).run(
        host="127.0.0.1", port=port, generate_client_file=False, num_api_servers=1, log_level="warning")


# --- the client ------------------------------------------------------------------------------------------

def bodies(samples: int):
    import numpy as np

    x = np.random.default_rng(0).integers(0, 256, (samples, 1, 28, 28)).astype(np.float32)
    if samples == 1:
        return json.dumps({"instances": x.astype(int).tolist()}).encode(), "application/json"
    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue(), "application/x-npy"


async def load(url: str, requests: int, concurrency: int, samples: int, limit_s: float) -> dict:
    """`requests` POSTs through `concurrency` client tasks, none started after `limit_s`."""
    import httpx

    body, ctype = bodies(samples)
    lat, errors = [], 0
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        for _ in range(5):  # warm the connections and the server
            await client.post(f"{url}/predict", content=body, headers={"content-type": ctype})
        todo = iter(range(requests))
        t0 = time.perf_counter()

        async def worker():
            nonlocal errors
            for _ in todo:
                if time.perf_counter() - t0 > limit_s:
                    return
                t = time.perf_counter()
                r = await client.post(f"{url}/predict", content=body, headers={"content-type": ctype})
                lat.append(time.perf_counter() - t)
                errors += r.status_code != 200

        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    lat.sort()
    return {"rps": len(lat) / wall, "sps": len(lat) * samples / wall, "p50": 1e3 * lat[len(lat) // 2],
            "p99": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "n": len(lat), "errors": errors}


def load_ab(url: str, requests: int, concurrency: int, samples: int, limit_s: float) -> dict:
    """The same load through ApacheBench (`ab`, C, keep-alive): a client that costs the shared cores
    far less per request than httpx, so what is measured is the server. Non-2xx answers are errors
    (ab's own "failed" count also counts answers whose length differs from the first: not errors)."""
    body, ctype = bodies(samples)
    with tempfile.TemporaryDirectory() as tmp:
        bfile, pcts = Path(tmp) / "body", Path(tmp) / "pct.csv"
        bfile.write_bytes(body)
        # -t before -n: -t alone implies -n 50000
        cmd = ["ab", "-q", "-k", "-r", "-s", "60", "-t", str(int(limit_s)), "-n", str(requests), "-c", str(concurrency),
               "-p", str(bfile), "-T", ctype, "-e", str(pcts), f"{url}/predict"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s + 120)
        if out.returncode != 0:
            raise RuntimeError(f"ab failed: {out.stderr.strip()[-500:]}")
        field = {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].split()[0] for ln in out.stdout.splitlines()
                 if ":" in ln and ln.split(":", 1)[1].split()}
        pct = {int(float(a)): float(b) for a, b in (ln.split(",") for ln in pcts.read_text().splitlines()[1:])}
    done, rps = int(field["Complete requests"]), float(field["Requests per second"])
    errors = int(field.get("Non-2xx responses", 0)) + int(field.get("Write errors", 0))
    return {"rps": rps, "sps": rps * samples, "p50": pct[50], "p99": pct[99], "n": done, "errors": errors}


def wait_health(url: str, proc: subprocess.Popen, limit_s: float = 120) -> None:
    import httpx

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer /health in {limit_s:.0f} s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(cmd: list[str], loads: list[tuple[str, int, int]], a) -> dict[str, dict]:
    port = free_port()
    proc = subprocess.Popen([*cmd[:1], *[c.replace("{port}", str(port)) for c in cmd[1:]]], env=env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_health(url, proc)
        out = {}
        for name, c, samples in loads:
            n = a.latency_requests if c == 1 else a.requests if samples == 1 else a.batch_requests
            out[name] = (load_ab(url, n, c, samples, a.limit) if a.client == "ab"
                         else asyncio.run(load(url, n, c, samples, a.limit)))
            print(f"  {name}: {out[name]['rps']:.0f} req/s, p50 {out[name]['p50']:.2f} ms, p99 {out[name]['p99']:.2f} ms"
                  f"{', ' + str(out[name]['errors']) + ' errors' if out[name]['errors'] else ''}", flush=True)
        return out
    finally:
        os.killpg(proc.pid, 2)  # Ctrl-C, as a user stops it
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def bare(onnx_file: str, reps: int = 300) -> dict[str, float]:
    """p50 ms of the bare ONNX Runtime call in this process, batch 1 and 32."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
    out = {}
    for b in (1, 32):
        x = np.random.default_rng(0).integers(0, 256, (b, 1, 28, 28)).astype(np.float32)
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            session.run(["probabilities"], {"input": x})
            ts.append(time.perf_counter() - t)
        out[f"x{b}"] = 1e3 * statistics.median(ts)
    return out


def median_of(runs: list[dict[str, dict]]) -> dict[str, dict]:
    return {k: {m: statistics.median(r[k][m] for r in runs) for m in runs[0][k]} for k in runs[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=list(RECIPES))
    p.add_argument("--reps", type=int, default=3, help="repetitions of every server's loads (default 3)")
    p.add_argument("--requests", type=int, default=1000, help="single-sample requests at c=32 (default 1000)")
    p.add_argument("--batch-requests", type=int, default=200, help="32-sample requests at c=32 (default 200)")
    p.add_argument("--latency-requests", type=int, default=200, help="sequential requests at c=1 (default 200)")
    p.add_argument("--limit", type=float, default=30.0, help="seconds per load at most (default 30)")
    p.add_argument("--loads", nargs="+", default=[n for n, _, _ in LOADS], choices=[n for n, _, _ in LOADS],
                   help="which loads (default all)")
    p.add_argument("--servers", nargs="+", default=None, metavar="WORDS",
                   help="only the servers whose label holds one of these words (e.g. onnx peer)")
    p.add_argument("--client", choices=["ab", "httpx"], default="ab" if shutil.which("ab") else "httpx",
                   help="the load generator: ApacheBench (default where installed: apt install apache2-utils) "
                        "or one asyncio httpx process (costs the shared cores ~1-3 ms a request)")
    p.add_argument("--markdown", action="store_true", help="end with one JSON line of markdown (run_all.py)")
    p.add_argument("--peer", nargs=2, metavar=("PORT", "RUN"), help=argparse.SUPPRESS)
    p.add_argument("--litserve", nargs=3, metavar=("PORT", "RUN", "MAX_BATCH"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.peer:
        import uvicorn

        from trainlab.deploy.export import default_path

        uvicorn.run(peer_app(str(default_path(Path(a.peer[1]), "onnx", "best"))), host="127.0.0.1",
                    port=int(a.peer[0]), log_level="warning")
        return 0
    if a.litserve:
        litserve_main(int(a.litserve[0]), a.litserve[1], int(a.litserve[2]))
        return 0
    has_litserve = _ls is not None
    load0 = os.getloadavg()
    head = [f"- CPU: {cpu()}", f"- Python {platform.python_version()}; client: " + ("ApacheBench (ab -k) on the same cores" if a.client == "ab"
                 else "one asyncio httpx process on the same cores"),
            f"- load average at the start: {load0[0]:.2f}, {load0[1]:.2f}, {load0[2]:.2f}"]
    print("\n".join(head), flush=True)
    py, cli = sys.executable, [sys.executable, "-m", "trainlab", "serve"]
    lines, verdicts = [], []
    with tempfile.TemporaryDirectory(prefix="trainlab-serve-bench-") as tmp:
        runs = train_runs(a.models, Path(tmp))
        for m, run in runs.items():
            from trainlab.deploy.predictor import Predictor

            onnx_file = str(Predictor(run, "onnx").model_file)  # the export, written once here
            servers = {f"trainlab serve, torch, max-batch {b}": [*cli, str(run), "--port", "{port}", "--backend", "torch",
                                                                  "--max-batch", str(b)] for b in (32, 1)}
            servers.update({f"trainlab serve, onnx, max-batch {b}": [*cli, str(run), "--port", "{port}", "--backend",
                                                                      "onnx", "--max-batch", str(b)] for b in (32, 1)})
            servers["minimal FastAPI + ONNX Runtime (peer)"] = [py, str(HERE / "serve.py"), "--peer", "{port}", str(run)]
            if has_litserve:
                servers.update({f"LitServe 0.2, onnx, max_batch_size {b}": [py, str(HERE / "serve.py"), "--litserve",
                                                                            "{port}", str(run), str(b)] for b in (32, 1)})
            if a.servers:
                servers = {s: c for s, c in servers.items() if any(w in s for w in a.servers)}
            results: dict[str, list] = {s: [] for s in servers}
            for rep in range(a.reps):
                for s, cmd in servers.items():  # interleaved: each repetition visits every server
                    print(f"{m} rep {rep + 1}: {s}", flush=True)
                    loads = [ld for ld in LOADS if ld[0] in a.loads
                             and ("LitServe" not in s or ld[2] == 1)]  # LitServe decodes JSON bodies only
                    results[s].append(measure(cmd, loads, a))
            med = {s: median_of(r) for s, r in results.items()}
            b = bare(onnx_file)
            lines += [f"### {m} ({TITLES[m]})", "",
                      f"Bare ONNX Runtime call in the client process: p50 {b['x1']:.3f} ms (1 sample), "
                      f"{b['x32']:.3f} ms (32 samples).", "",
                      "| server | load | req/s | samples/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
            for s, r in med.items():
                for name in r:
                    x = r[name]
                    lines.append(f"| {s} | {name} | {x['rps']:.0f} | {x['sps']:.0f} | {x['p50']:.2f} | {x['p99']:.2f} "
                                 f"| {x['errors']:.0f} |")
            lines.append("")
            peer = med.get("minimal FastAPI + ONNX Runtime (peer)", {}).get("c1 x1", {}).get("p50")
            served = med.get("trainlab serve, onnx, max-batch 32", {}).get("c1 x1", {}).get("p50")
            if peer and served:
                verdicts.append(f"- {m}: served single-sample latency (onnx, c=1) within 1.5x of the bare call + HTTP "
                                f"(the peer): {served:.2f} / {peer:.2f} ms = {served / peer:.2f} -> "
                                f"**{'PASS' if served <= 1.5 * peer else 'FAIL'}**")
            for be in ("torch", "onnx"):
                for name in ("c32 x1", "c32 x32"):
                    on = med.get(f"trainlab serve, {be}, max-batch 32", {}).get(name, {}).get("sps")
                    off = med.get(f"trainlab serve, {be}, max-batch 1", {}).get(name, {}).get("sps")
                    if not (on and off):
                        continue
                    verdicts.append(f"- {m}, {be}, {name}: throughput with dynamic batching >= 3x without it: "
                                    f"{on:.0f} / {off:.0f} samples/s = {on / off:.2f} -> **{'PASS' if on >= 3 * off else 'FAIL'}**")
    load1 = os.getloadavg()
    head.append(f"- load average at the end: {load1[0]:.2f}, {load1[1]:.2f}, {load1[2]:.2f}")
    md = ["## Serving (benchmarks/serve.py)", "", *head,
          f"- {a.reps} repetitions (medians shown); c = concurrent client connections, xN = samples per request "
          "(x1: JSON instances, x32: a .npy body)", "", *verdicts, "", *lines]
    print("\n".join(md))
    if a.markdown:
        print(json.dumps({"markdown": md, "verdicts": verdicts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
