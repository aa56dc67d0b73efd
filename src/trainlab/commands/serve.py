"""`trainlab serve`: an HTTP prediction server for a run (FastAPI + uvicorn, dynamic batching)."""
from __future__ import annotations

import argparse

from . import _trust
from ._console import console

NAME = "serve"
HELP = "serve a run's model over HTTP: POST /predict, GET /health, GET /metadata, /docs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="run directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                   help="eager PyTorch, or ONNX Runtime on the run's export (written first if missing)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument("--max-batch", type=int, default=32,
                   help="requests that arrive together become one model call of up to this many samples "
                        "(1: no dynamic batching; default 32)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes, each with its own copy of the model and cores/K threads (default 1)")
    p.add_argument("--max-body", type=int, default=64, metavar="MIB",
                   help="largest request body in MiB; larger ones get 413 (default 64)")
    _trust.add_argument(p)


def _check(args: argparse.Namespace) -> None:
    import socket

    from ..errors import RecipeError

    for flag, value, low in (("--max-batch", args.max_batch, 1), ("--workers", args.workers, 1),
                             ("--max-body", args.max_body, 1), ("--port", args.port, 0)):
        if value < low:
            raise RecipeError(f"{flag}: must be at least {low}, got {value}")
    if args.port > 65535:
        raise RecipeError(f"--port: must be at most 65535, got {args.port}")
    try:  # before loading the model: a taken port is found in a moment, not after the model loads
        infos = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            s.bind(infos[0][4])
    except OSError as e:
        raise RecipeError(f"--host/--port: cannot listen on {args.host}:{args.port} ({e.strerror or e})") from None


def run(args: argparse.Namespace) -> int:
    import json
    import os

    import uvicorn
    from rich.markup import escape

    from ..deploy.server import MiB, make_app

    _check(args)
    max_body = args.max_body * MiB
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}"
    if args.workers == 1:
        from ..deploy.predictor import Predictor

        predictor = Predictor(args.run_dir, args.backend, args.checkpoint, trust_code=args.trust_code)
        app, run_dir = make_app(predictor, args.max_batch, max_body), predictor.run_dir
    else:
        # each worker process loads its own model: uvicorn starts them from an import string. Loading it
        # here first turns a bad run into one line before any worker starts, and writes the ONNX export
        # once rather than in K workers at the same time
        from ..deploy.predictor import Predictor

        run_dir = Predictor(args.run_dir, args.backend, args.checkpoint, trust_code=args.trust_code).run_dir
        threads = max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
                      // args.workers)
        os.environ["TRAINLAB_SERVE"] = json.dumps({
            "run_dir": str(run_dir), "backend": args.backend, "checkpoint": args.checkpoint,
            "trust_code": bool(args.trust_code), "max_batch": args.max_batch, "max_body": max_body,
            "threads": threads})
        app = "trainlab.deploy.server:app_from_env"
    console.print(f"serving {escape(str(run_dir))} at {url} (backend {args.backend}, {args.checkpoint} checkpoint, "
                  f"max batch {args.max_batch}, {args.workers} worker{'s' if args.workers > 1 else ''}); "
                  f"docs at {url}/docs; Ctrl-C stops", highlight=False)
    console.print(f"  curl -s {url}/metadata\n"
                  f"  curl -s -X POST {url}/predict -H 'Content-Type: application/json' -d '{{\"instances\": [...]}}'\n"
                  f"  curl -s -X POST {url}/predict -F file=@image.png\n"
                  f"  curl -s -X POST {url}/predict -H 'Content-Type: application/x-npy' --data-binary @batch.npy",
                  highlight=False, markup=False)
    uvicorn.run(app, host=args.host, port=args.port, workers=args.workers, factory=args.workers > 1,
                log_level="warning", timeout_graceful_shutdown=5)
    console.print("server stopped")
    return 0
