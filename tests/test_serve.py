"""`trainlab serve` (deploy/server.py): a real uvicorn server on 127.0.0.1 in a thread, over a tiny
Fashion-MNIST MLP run: a bounded load with malformed requests mixed in, answers equal to the
Predictor's, dynamic batching, Schemathesis on the server's own schema, and the CLI's refusals."""
from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from PIL import Image

from tests.conftest import REPO, needs_fmnist, run_cli

pytestmark = needs_fmnist
MAX_BODY = 256 * 1024  # small, so an oversized body is cheap to send


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import trainlab

    tmp = tmp_path_factory.mktemp("serve")
    recipe = {"name": "fm", "data": {"source": "fashion_mnist", "subset": 2000, "batch_size": 128,
                                     "preprocess": [{"normalize": "standard"}]},
              "model": {"name": "mlp", "widths": [32]}, "train": {"epochs": 1},
              "output": {"root": str(tmp / "runs"), "plots": False, "report": False, "trackers": []}}
    return trainlab.train(recipe, run_dir=tmp / "run", progress=False).path


@pytest.fixture(scope="module")
def predictor(run_dir):
    from trainlab.deploy.predictor import Predictor

    return Predictor(run_dir, "torch")


@pytest.fixture(scope="module")
def images():
    """20 test-split images as raw 0-255 pixels (1, 28, 28), as a client has them."""
    from trainlab.data import SOURCES

    x = SOURCES.build("fashion_mnist", {}, "data").test.x[:20]
    return np.asarray(x, dtype=np.float32).reshape(20, 1, 28, 28)


class ServerThread:
    """uvicorn serving `app` on a socket bound here (127.0.0.1, a free port) in a daemon thread."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)  # connections queue from now on: a client need not race the thread's start
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        for _ in range(50):  # bounded: each try waits for the answer (the socket already listens)
            try:
                if httpx.get(f"{self.url}/health", timeout=30).status_code == 200:
                    break
            except httpx.TransportError:
                continue
        else:
            raise AssertionError("the server never answered /health")

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.sock.close()


@pytest.fixture(scope="module")
def server(predictor):
    from trainlab.deploy.server import make_app

    s = ServerThread(make_app(predictor, max_batch=32, max_body=MAX_BODY))
    yield s
    s.stop()


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.reshape(28, 28).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def probs(row: dict) -> list[float]:
    """An answer's probabilities in class order (a JSON object keeps its keys' order)."""
    return list(row["probabilities"].values())


def good_request(i: int, images) -> dict:
    """Request i: image i % 20 as JSON instances, a .npy body, a multipart upload or a PNG body."""
    x = images[i % len(images)]
    kind = i % 4
    if kind == 0:
        return {"json": {"instances": [x.astype(int).tolist()]}}
    if kind == 1:
        return {"content": npy(x), "headers": {"content-type": "application/x-npy"}}
    if kind == 2:
        return {"files": {"file": ("x.png", png(x), "image/png")}}
    return {"content": png(x), "headers": {"content-type": "image/png"}}


async def chunks(n):
    for _ in range(n):
        yield b"\x93NUMPY" + b"\0" * (64 * 1024 - 6)


J = {"content-type": "application/json"}
ROW = np.zeros((1, 28, 28), int).tolist()
# (request, expected status, words the detail must hold: the field it names)
MALFORMED = [
    ({"content": b'{"instances": [', "headers": J}, 400, "body: not valid JSON"),
    ({"json": {"instances": [[1, 2, 3]]}}, 422, "instances[0]: expected shape (1, 28, 28), got (3,)"),
    ({"json": {"instances": [ROW, [0] * 27]}}, 422, "instances[1]: expected shape (1, 28, 28), got (27,)"),
    ({"json": {"instances": [[[["a"] * 28] * 28]]}}, 422, "instances[0]: expected numbers"),
    ({"json": {"instances": [[[[0] * 28] * 27 + [[0] * 5]]]}}, 422, "instances[0]: not an array (nested lists of unequal"),
    ({"json": {"instances": [[[[300] * 28] * 28]]}}, 422, "instances[0]: pixel values must lie in 0..255"),
    ({"json": [1, 2]}, 422, "body: expected a JSON object"),
    ({"json": {"instances": []}}, 422, "instances: expected a non-empty list"),
    ({"json": {"rows": [ROW]}}, 422, "body: expected a JSON object {\"instances\""),
    ({"content": b"", "headers": J}, 400, "body: empty"),
    ({"content": b"1,2,3", "headers": {"content-type": "text/csv"}}, 415, "Content-Type"),
    ({"content": b"\x93NUMPY garbage", "headers": {"content-type": "application/x-npy"}}, 400, "body: not a .npy"),
    ({"content": npy(np.zeros((5, 784), np.float32)), "headers": {"content-type": "application/octet-stream"}},
     422, "body: expected shape (N, 1, 28, 28)"),
    ({"content": npy(np.array(["a"])), "headers": {"content-type": "application/x-npy"}}, 422, "body: expected a numeric"),
    ({"files": {"file": ("notes.txt", b"not an image", "text/plain")}}, 422, "file (notes.txt): cannot read as an image"),
    ({"files": {"image": ("x.png", b"\x89PNG", "image/png")}}, 422, "file: missing"),
    ({"content": b"\x89PNG\r\n\x1a\n broken", "headers": {"content-type": "image/png"}}, 422, "body: cannot read"),
    ({"content": npy(np.zeros((90, 1, 28, 28), np.float32)), "headers": {"content-type": "application/x-npy"}},
     413, "over the limit"),
    ({"content": chunks(5), "headers": {"content-type": "application/x-npy"}}, 413, "over the limit"),
    ({"json": {"instances": [ROW]}, "params": {"top_k": 0}}, 422, "top_k"),
]


async def load(url: str, requests: list[dict], concurrency: int) -> list[httpx.Response]:
    """Send every request through `concurrency` client tasks; the responses in request order."""
    out: list = [None] * len(requests)
    todo = iter(range(len(requests)))
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def worker():
            for i in todo:
                kw = dict(requests[i])
                if "content" in kw and not isinstance(kw["content"], bytes):
                    kw["content"] = chunks(5)  # a generator is spent once: each request gets its own
                out[i] = await client.post("/predict", **kw)
        await asyncio.gather(*[worker() for _ in range(concurrency)])
    return out


def test_load_with_malformed_requests_mixed_in(server, predictor, images):
    want = predictor(images)["probabilities"]
    good = [good_request(i, images) for i in range(2000)]
    bad = [MALFORMED[j % len(MALFORMED)] for j in range(100)]
    requests, kinds = [], []
    for i, g in enumerate(good):  # one malformed request after every 20th good one
        requests.append(g)
        kinds.append(("good", i))
        if i % 20 == 19:
            j = i // 20
            requests.append(bad[j][0])
            kinds.append(("bad", j))
    before = httpx.get(f"{server.url}/metadata").json()["server"]
    responses = asyncio.run(load(server.url, requests, concurrency=16))
    classes = predictor.classes
    for (kind, i), r in zip(kinds, responses):
        if kind == "good":
            assert r.status_code == 200, (i, r.text)
            (row,) = r.json()["predictions"]
            p = want[i % len(images)]
            np.testing.assert_allclose(probs(row), p, rtol=1e-5, atol=1e-6)
            assert list(row["probabilities"]) == classes and row["prediction"] == classes[int(np.argmax(p))]
            assert [t["class"] for t in row["top_k"]] == [classes[k] for k in np.argsort(-p, kind="stable")[:3]]
        else:
            _, status, words = bad[i]
            assert r.status_code == status, (i, r.text)
            assert words in str(r.json()["detail"]), (i, r.text)
    after = httpx.get(f"{server.url}/metadata").json()["server"]
    assert after["samples"] - before["samples"] == 2000  # every good request's sample went through the model
    assert after["model_calls"] - before["model_calls"] <= 2000
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}  # still serving


def test_batches_and_large_requests(server, predictor, images):
    """A .npy batch of 20, and JSON instances of 20, give the Predictor's answers row for row."""
    want = predictor(images)["probabilities"]
    r = httpx.post(f"{server.url}/predict?top_k=10", content=npy(images), headers={"content-type": "application/x-npy"})
    assert r.status_code == 200
    rows = r.json()["predictions"]
    assert len(rows) == 20 and all(len(row["top_k"]) == 10 for row in rows)
    np.testing.assert_allclose([probs(row) for row in rows], want, rtol=1e-5, atol=1e-6)
    r = httpx.post(f"{server.url}/predict", json={"instances": images.tolist()})
    np.testing.assert_allclose([probs(row) for row in r.json()["predictions"]], want, rtol=1e-5, atol=1e-6)
    meta = httpx.get(f"{server.url}/metadata").json()
    assert meta["classes"][0] == "T-shirt/top" and meta["input"]["shape"] == ["N", 1, 28, 28]
    assert meta["server"]["max_batch"] == 32 and meta["backend"] == "torch"


class GatedPredictor:
    """The predictor, whose first call waits for `gate`: requests sent meanwhile queue up."""

    def __init__(self, predictor):
        self.predictor, self.gate, self.sizes = predictor, threading.Event(), []

    def __getattr__(self, name):
        return getattr(self.predictor, name)

    def __call__(self, x):
        self.sizes.append(len(x))
        if len(self.sizes) == 1:
            assert self.gate.wait(60)
        return self.predictor(x)


def test_server_batches_concurrent_requests(predictor, images):
    from concurrent.futures import ThreadPoolExecutor

    from trainlab.deploy.server import make_app

    gated = GatedPredictor(predictor)
    s = ServerThread(make_app(gated, max_batch=32))
    try:
        with ThreadPoolExecutor(11) as pool:
            first = pool.submit(httpx.post, f"{s.url}/predict", json={"instances": images[:1].tolist()}, timeout=60)
            for _ in range(2000):  # bounded: until the first request holds the model
                if gated.sizes:
                    break
                httpx.get(f"{s.url}/health")
            rest = [pool.submit(httpx.post, f"{s.url}/predict", json={"instances": images[i:i + 1].tolist()},
                                timeout=60) for i in range(1, 11)]
            for _ in range(2000):  # bounded: until the ten wait in the batcher's queue
                if httpx.get(f"{s.url}/metadata").json()["server"]["queued"] == 10:
                    break
            else:
                raise AssertionError("the requests never queued")
            gated.gate.set()
            answers = [first.result()] + [f.result() for f in rest]
        assert gated.sizes == [1, 10]  # the ten that arrived together: one model call
        want = predictor(images[:11])["probabilities"]
        for i, r in enumerate(answers):  # and each its own answer
            assert r.status_code == 200
            np.testing.assert_allclose(probs(r.json()["predictions"][0]), want[i], rtol=1e-5, atol=1e-6)
        stats = httpx.get(f"{s.url}/metadata").json()["server"]
        assert (stats["model_calls"], stats["samples"], stats["largest_batch"]) == (2, 11, 10)
    finally:
        gated.gate.set()
        s.stop()


def test_batcher_merges_requests_that_arrive_together(predictor, images):
    from trainlab.deploy.server import Batcher

    calls = []

    def predict(x):
        calls.append(len(x))
        return predictor(x)

    async def main(max_batch):
        b = Batcher(predict, max_batch)
        # 20 one-sample requests, then one of 5 samples, all queued before the batcher's loop runs
        parts = [images[i:i + 1] for i in range(20)] + [images[:5]]
        outs = await asyncio.gather(*[b.submit(x) for x in parts])
        b.close()
        return parts, outs, b.stats()

    want = predictor(images)["probabilities"]
    parts, outs, stats = asyncio.run(main(8))
    assert calls == [8, 8, 4, 5]  # whole requests up to 8 samples; the 5-sample one did not fit beside 4
    assert stats == {"max_batch": 8, "model_calls": 4, "samples": 25, "largest_batch": 8, "queued": 0}
    for i, out in enumerate(outs[:20]):  # each request got its own rows back
        np.testing.assert_allclose(out["probabilities"], want[i:i + 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[20]["probabilities"], want[:5], rtol=1e-5, atol=1e-6)
    calls.clear()
    asyncio.run(main(1))
    assert calls == [1] * 20 + [5]  # max batch 1: no batching (a 5-sample request still runs whole)


def test_schemathesis_finds_no_server_error(server):
    """Every operation of the server's own /openapi.json, 30 generated cases per mode and media type (derandomized),
    positive and negative, each request body media type: none answers 5xx. (Hypothesis is driven
    here rather than through `schemathesis.pytest.from_fixture`, which fails on pytest 9.2:
    `'Function' object has no attribute '_nodeid'`.)"""
    from hypothesis import given
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    assert {op.path for op in operations} == {"/predict", "/health", "/metadata"}
    statuses = set()
    media = {"/predict": ["application/json", "application/x-npy", "multipart/form-data", "image/png"]}
    for op in operations:
        # the GETs take nothing a client could get wrong: negative cases of them do not exist
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if op.path in media else 1]:
            for media_type in media.get(op.path, [None]):
                @given(case=op.as_strategy(mode, media_type=media_type))
                @settings(max_examples=30, derandomize=True, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                def call(case):
                    statuses.add(case.call_and_validate(checks=[not_a_server_error]).status_code)

                call()
    assert 200 in statuses and any(400 <= s < 500 for s in statuses)


def free_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


def test_cli_refusals(tmp_path, run_dir):
    busy, port = free_port()
    free, other = free_port()
    free.close()
    with busy:
        for args, words in [((tmp_path / "nope", "--port", other), "nope"),
                            ((run_dir, "--port", port), f"--host/--port: cannot listen on 127.0.0.1:{port}"),
                            ((run_dir, "--port", other, "--max-batch", 0), "--max-batch: must be at least 1, got 0")]:
            r = run_cli("serve", *args, cwd=tmp_path)
            assert r.returncode == 2, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("trainlab: error:") and words in lines[0], r.stderr
    r = run_cli("serve", run_dir, "--backend", "tensorflow", cwd=tmp_path)
    assert r.returncode == 2 and "--backend: invalid choice: 'tensorflow'" in r.stderr


def test_cli_serves_onnx_and_stops_on_ctrl_c(tmp_path, run_dir, predictor, images):
    s, port = free_port()
    s.close()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    p = subprocess.Popen([sys.executable, "-m", "trainlab", "serve", str(run_dir), "--backend", "onnx",
                          "--port", str(port), "--max-batch", "4"], env=env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(2000):  # bounded: until it answers, or the process ends
            if p.poll() is not None:
                break
            try:
                httpx.get(f"{url}/health", timeout=30)
                break
            except httpx.TransportError:
                continue
        assert p.poll() is None, p.communicate()
        r = httpx.post(f"{url}/predict", json={"instances": images[:4].tolist()})
        assert r.status_code == 200
        np.testing.assert_allclose([probs(row) for row in r.json()["predictions"]],
                                   predictor(images[:4])["probabilities"], atol=1e-5)
        meta = httpx.get(f"{url}/metadata").json()
        assert meta["backend"] == "onnx" and meta["server"]["max_batch"] == 4
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert f"at {url} (backend onnx" in out and "curl -s -X POST" in out and "server stopped" in out
    assert meta["name"] == "fm"


def test_an_image_declaring_too_many_pixels_is_refused_before_it_is_decoded(server):
    """A small PNG of 5000x5000 pixels (a few KB compressed, 25 M pixels decoded) gets 422 naming its
    size; a 28x28 one right after it is answered."""
    from trainlab.deploy.server import MAX_PIXELS

    buf = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buf, format="PNG")
    assert 5000 * 5000 > MAX_PIXELS and len(buf.getvalue()) < MAX_BODY
    r = httpx.post(f"{server.url}/predict", files={"file": ("big.png", buf.getvalue(), "image/png")})
    assert r.status_code == 422 and "5000x5000 pixels is over the limit" in r.json()["detail"]
    ok = httpx.post(f"{server.url}/predict", content=png(np.zeros(784)), headers={"content-type": "image/png"})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
