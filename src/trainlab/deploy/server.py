"""The HTTP prediction server: a FastAPI app around a `Predictor` (`make_app`), with dynamic batching
(`Batcher`: requests that arrive together become one model call, up to `max_batch` samples).

Why FastAPI + uvicorn and not LitServe (measured, docs/deploy.md "Serve"): LitServe 0.2.19 decodes
every body with `request.json()` or `request.form()`, so a raw `.npy` or image body cannot reach
the model, and a malformed JSON body comes back as 500; its worker processes pickle each request
through queues, which cost more than the MLP's model call (127 requests/s unbatched, 210 batched
at concurrency 32, against ~2x that here).

POST /predict takes, by Content-Type: application/json `{"instances": [...]}` (each instance one
raw input as nested lists), application/x-npy or application/octet-stream (a `.npy` array, one
sample or a batch), multipart/form-data (field `file`, an image) or image/png|jpeg|... (an image
body). Every client mistake is a 4xx whose `detail` names the field; nothing a client sends gives 5xx.
"""
from __future__ import annotations

import asyncio
import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from ..errors import DataError
from .answers import rows

MiB = 2 ** 20
MAX_PIXELS = 4096 * 4096  # an uploaded image larger than this is refused (422) before it is decoded
NPY_TYPES = ("application/x-npy", "application/octet-stream")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/tiff", "image/webp")


class ClientError(Exception):
    """A request the server refuses: HTTP `status` with `detail` naming the field."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class Batcher:
    """Dynamic batching: `await submit(x)` queues a request's samples; one loop takes what is queued
    (whole requests, up to `max_batch` samples; a larger request runs alone), makes one call of
    `predict` in a worker thread (the event loop keeps accepting meanwhile, and what arrives during
    the call is the next batch), and hands each request its own rows. `max_batch` 1: no batching."""

    def __init__(self, predict: Callable[[np.ndarray], dict[str, np.ndarray]], max_batch: int):
        self.predict, self.max_batch = predict, int(max_batch)
        self.calls = self.samples = self.largest = 0  # model calls, samples through them, largest batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="trainlab-model")

    def stats(self) -> dict[str, int]:
        """Counters: model calls, samples through them, the largest batch, requests waiting now."""
        return {"max_batch": self.max_batch, "model_calls": self.calls, "samples": self.samples,
                "largest_batch": self.largest, "queued": self._queue.qsize() if self._queue is not None else 0}

    async def submit(self, x: np.ndarray) -> dict[str, np.ndarray]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # started on first use, on the loop that serves (a test client may bring a new loop)
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._run())
        fut = loop.create_future()
        self._queue.put_nowait((x, fut))
        return await fut

    async def _run(self) -> None:
        loop, queue, held = asyncio.get_running_loop(), self._queue, None
        while True:
            items = [held if held is not None else await queue.get()]
            held, n = None, len(items[0][0])
            while n < self.max_batch and not queue.empty():
                item = queue.get_nowait()
                if n + len(item[0]) > self.max_batch:
                    held = item  # the next batch starts with it
                    break
                items.append(item)
                n += len(item[0])
            x = items[0][0] if len(items) == 1 else np.concatenate([i[0] for i in items])
            try:
                out = await loop.run_in_executor(self._executor, self.predict, x)
            except Exception as e:  # noqa: BLE001 - a failed call fails its requests, not the loop
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.calls, self.samples, self.largest = self.calls + 1, self.samples + n, max(self.largest, n)
            start = 0
            for xi, fut in items:
                if not fut.done():  # a client that went away leaves a cancelled future
                    fut.set_result({k: v[start:start + len(xi)] for k, v in out.items()})
                start += len(xi)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _check_values(x: np.ndarray, kind: str, where: str) -> None:
    """Values the graph can answer: finite (NaN allowed in table rows: a missing cell), pixels in 0-255."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x) & ~(np.isnan(x) if kind == "tabular" else False)
    if bad.any():
        raise DataError(f"{where}: values must be finite numbers" + (" (NaN = missing)" if kind == "tabular" else ""))
    if kind == "image" and x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{where}: pixel values must lie in 0..255, got {float(x.min()):g}..{float(x.max()):g}")


def parse_instances(body: bytes, predictor: Any) -> np.ndarray:
    """A JSON body {"instances": [...]} as one input batch, or ClientError naming the field."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ClientError(400, f"body: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "instances" not in doc:
        raise ClientError(422, 'body: expected a JSON object {"instances": [...]}')
    items = doc["instances"]
    if not isinstance(items, list) or not items:
        raise ClientError(422, "instances: expected a non-empty list of inputs")
    want, kind = predictor.input_shape, predictor.spec["input"]["kind"]
    if kind == "tabular" and all(isinstance(item, dict) for item in items):
        return parse_table_rows(items, predictor)
    if predictor.loaded.vocab is not None and all(isinstance(item, str) for item in items):
        return predictor.check(predictor.loaded.encode_texts(items).numpy(), "instances")
    rows = []
    for i, item in enumerate(items):
        where = f"instances[{i}]"
        try:
            a = np.asarray(item)
        except (ValueError, TypeError, OverflowError):
            raise ClientError(422, f"{where}: not an array (nested lists of unequal lengths, or too deep); "
                                   f"expected shape {want}") from None
        if a.dtype == object or a.dtype.kind in "USV":
            raise ClientError(422, f"{where}: expected numbers, got {type(item).__name__} of {a.dtype}")
        if a.shape != want:
            raise ClientError(422, f"{where}: expected shape {want}, got {a.shape}")
        try:
            a = predictor.check(a, where)[0]
            _check_values(a, kind, where)
        except DataError as e:
            raise ClientError(422, str(e)) from None
        rows.append(a)
    return np.stack(rows)


def parse_table_rows(items: list[dict], predictor: Any) -> np.ndarray:
    """A table run's instances as {column: value} objects (null = a missing cell), encoded with the
    training columns as `trainlab predict` encodes a CSV's rows (`inputs.encode_table`)."""
    import pandas as pd

    from .inputs import encode_table

    for i, item in enumerate(items):
        for k, v in item.items():
            if v is not None and not isinstance(v, (int, float, str)):
                raise ClientError(422, f"instances[{i}].{k}: expected a number, a string or null, "
                                       f"got {type(v).__name__}")
    df = pd.DataFrame.from_records(items)
    opts = predictor.loaded.recipe.data.options()
    try:
        x = encode_table(df, predictor.loaded.info, [f"instances[{i}]" for i in range(len(items))], "instances",
                         list(opts.get("na_values") or []), opts.get("infinite", "error"), [])
        return predictor.check(x, "instances")
    except DataError as e:
        raise ClientError(422, str(e)) from None


def parse_npy(body: bytes, predictor: Any) -> np.ndarray:
    try:
        a = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises many kinds for a damaged file
        raise ClientError(400, f"body: not a .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(a, np.ndarray):
        raise ClientError(400, "body: expected one .npy array, got an .npz archive")
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise ClientError(422, f"body: expected a numeric array, got {a.dtype}")
    try:
        x = predictor.check(a, "body")
        _check_values(x, predictor.spec["input"]["kind"], "body")
    except DataError as e:
        raise ClientError(422, str(e)) from None
    if not len(x):
        raise ClientError(422, "body: the array holds no samples (batch of 0)")
    return x


def parse_image(data: bytes, predictor: Any, where: str) -> np.ndarray:
    from .inputs import image_array

    if predictor.spec["input"]["kind"] != "image":
        raise ClientError(415, f"{where}: this model takes {predictor.spec['input']['kind']} inputs, not images")
    try:
        return image_array(data, predictor.input_shape, where, MAX_PIXELS)[None]
    except DataError as e:
        raise ClientError(422, str(e)) from None


def _openapi_body(predictor: Any) -> dict[str, Any]:
    shape = list(predictor.input_shape)
    kind = predictor.spec["input"]["kind"]
    one = (f"one raw input of shape {shape} (nested lists)" +
           (", or an object {column: value} of the training columns (null = missing)" if kind == "tabular" else "") +
           (", or a text (a string)" if predictor.loaded.vocab is not None else ""))
    instances = {"type": "array", "minItems": 1, "items": {"description": one},
                 "description": predictor.spec["input"].get("description", "")}
    binary = {"type": "string", "format": "binary"}
    content: dict[str, Any] = {
        "application/json": {"schema": {"type": "object", "required": ["instances"],
                                        "properties": {"instances": instances}}},
        "application/x-npy": {"schema": {**binary, "description": f"a .npy array of shape {shape} or (N, *{shape})"}},
    }
    if predictor.spec["input"]["kind"] == "image":
        content["multipart/form-data"] = {"schema": {"type": "object", "required": ["file"],
                                                     "properties": {"file": binary}}}
        content["image/png"] = {"schema": binary}
        content["image/jpeg"] = {"schema": binary}
    return {"requestBody": {"required": True, "content": content}}


def make_app(predictor: Any, max_batch: int = 32, max_body: int = 64 * MiB, top_k: int = 3):
    """The FastAPI app serving `predictor` (a `Predictor`): /predict, /health, /metadata, /docs.
    `max_body`: the largest request body in bytes (413 beyond it, by Content-Length or as it streams)."""
    from contextlib import asynccontextmanager

    batcher = Batcher(predictor, max_batch)

    @asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()

    meta = predictor.metadata()
    app = FastAPI(title=f"trainlab: {meta['name']}", lifespan=lifespan,
                  description=f"{meta['model']} ({meta['task']}) from {meta['run']}, {meta['checkpoint']} "
                              f"checkpoint, {predictor.backend} backend. Input: {meta['input'].get('description', '')}")
    app.state.batcher, app.state.predictor = batcher, predictor

    class TopK(BaseModel):
        class_: str = Field(alias="class")
        probability: float

    class Label(BaseModel):
        label: str
        probability: float

    class Prediction(BaseModel):  # answers.rows: the same rows as `trainlab predict --format json`
        prediction: str | None = Field(None, description="the most probable class")
        probability: float | None = Field(None, description="its probability")
        top_k: list[TopK] | None = Field(None, description="the top_k most probable classes, best first")
        labels: list[Label] | None = Field(None, description="multi-label: the labels above 0.5")
        probabilities: dict[str, float] | None = Field(None, description="every class's (or label's) probability")
        value: float | list[float] | None = Field(None, description="regression: the value in original units")

    class Predictions(BaseModel):
        predictions: list[Prediction]

    class Error(BaseModel):
        detail: str

    errors = {s: {"model": Error, "description": d} for s, d in
              [(400, "a body that does not parse (JSON, .npy, image, Content-Length)"),
               (413, "a body over the server's limit"), (415, "an unsupported Content-Type"),
               (422, "an input that does not fit the model (the detail names the field)")]}

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise ClientError(400, f"Content-Length: not a number ({length!r})")
            if int(length) > max_body:
                raise ClientError(413, f"body: {int(length)} bytes is over the limit of {max_body} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body:
                    raise ClientError(413, f"body: over the limit of {max_body} bytes")
                chunks.append(chunk)
        except ClientDisconnect:  # the client went away mid-body: nobody reads the answer
            raise ClientError(400, "body: the client disconnected before sending all of it") from None
        return b"".join(chunks)

    async def parse(request: Request) -> np.ndarray:
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        body = await read_body(request)
        if not body:
            raise ClientError(400, "body: empty")
        if ctype == "application/json":
            return parse_instances(body, predictor)
        if ctype in NPY_TYPES:
            return parse_npy(body, predictor)
        if ctype in IMAGE_TYPES:
            return parse_image(body, predictor, "body")
        if ctype == "multipart/form-data":
            async def replay():
                return {"type": "http.request", "body": body, "more_body": False}
            try:
                form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
            except Exception as e:  # noqa: BLE001 - the multipart parser's errors are the client's
                raise ClientError(400, f"body: not a valid multipart form ({getattr(e, 'detail', e)})") from None
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ClientError(422, "file: missing; send the image as the multipart field 'file'")
            data = await upload.read()
            await form.close()
            if not data:
                raise ClientError(422, "file: empty")
            return parse_image(data, predictor, f"file ({upload.filename or 'upload'})")
        kinds = "application/json, application/x-npy, application/octet-stream, multipart/form-data or image/png|jpeg"
        raise ClientError(415, f"Content-Type: expected {kinds}, got {ctype or 'none'!r}")

    @app.post("/predict", response_model=Predictions, responses=errors, openapi_extra=_openapi_body(predictor),
              summary="predict on raw inputs: JSON instances, a .npy array or an image")
    async def predict(request: Request, top_k: int = Query(top_k, ge=1, le=1000, description="classes per answer")):
        try:
            x = await parse(request)
        except ClientError as e:
            return JSONResponse({"detail": e.detail}, status_code=e.status)
        out = await batcher.submit(x)
        if not all(np.isfinite(v).all() for v in out.values()):
            return JSONResponse({"detail": "input: the model's output is not finite for it (values far out of "
                                           "the training range?)"}, status_code=422)
        return JSONResponse({"predictions": rows(out, predictor.spec, top_k)})

    @app.get("/health", summary="the server is up and the model loaded")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metadata", summary="the model, its classes, input spec and training metrics; batching counters")
    async def metadata() -> dict[str, Any]:
        return {**meta, "server": {**batcher.stats(), "max_body": max_body}}

    return app


def app_from_env():
    """The app for `uvicorn --workers K` (each worker process calls this; an app object cannot be passed
    to a new process): the settings `trainlab serve` put in TRAINLAB_SERVE as JSON."""
    import os

    from .predictor import Predictor

    cfg = json.loads(os.environ["TRAINLAB_SERVE"])
    predictor = Predictor(cfg["run_dir"], cfg["backend"], cfg["checkpoint"], trust_code=cfg["trust_code"],
                          threads=cfg.get("threads"))
    if cfg.get("threads") and cfg["backend"] == "torch":
        import torch

        torch.set_num_threads(int(cfg["threads"]))
    return make_app(predictor, cfg["max_batch"], cfg["max_body"])
