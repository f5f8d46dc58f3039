"""Serve: the model artifact behind SageMaker's hosting contract, for endpoints and batch transform.

    python -m steps.launcher serve                      # in the image: how SageMaker starts it
    python -m steps.serve --model-dir DIR --port 8080   # by hand (make serve does this)

GET /ping answers 200 once the model is loaded; POST /invocations takes application/json,
application/jsonlines or text/csv (steps/serve_formats.py) and answers in the Accept type. Requests that
arrive together are batched on the device (steps/serve_batcher.py). A bad request gets a 4xx with
{"error": "..."}; the server never stops for one. Port: SAGEMAKER_BIND_TO_PORT, else 8080.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations as objects.
import argparse
import gc
import os
from contextlib import asynccontextmanager
from pathlib import Path

from steps import contract
from steps.common import run_main


def max_body_mb() -> float:
    """An endpoint's payloads are at most 6 MB; a batch transform sends up to its MaxPayloadInMB, which
    SageMaker tells the container (SAGEMAKER_MAX_PAYLOAD_IN_MB; 0 means no limit, chunked bodies)."""
    if os.environ.get("SAGEMAKER_BATCH") == "true" and os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB"):
        return float(os.environ["SAGEMAKER_MAX_PAYLOAD_IN_MB"]) or float("inf")
    return float(os.environ.get("SMPIPE_MAX_BODY_MB", "6"))


MAX_BODY_MB = max_body_mb()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path, default=None,
                   help=f"the unpacked model artifact (default {contract.TRAIN_MODEL_DIR})")
    p.add_argument("--host", default=os.environ.get("SMPIPE_SERVE_HOST", "0.0.0.0"))
    p.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")))
    p.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="extra wait for more requests to batch with (default 0: under load the queue fills by itself)")
    args = p.parse_args(argv)
    args.model_dir = args.model_dir or contract.local(contract.TRAIN_MODEL_DIR)
    return args


def create_app(model_dir: Path, max_wait: float = 0.0, model=None):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    from steps.serve_batcher import Batcher
    from steps.serve_formats import BadRequest, parse, render
    from steps.serve_model import Predictor

    predictor = Predictor(model_dir, model)  # model: the shared model process's pipe when there are workers
    predictor.warm_up()
    # torch, transformers and FastAPI leave over 200,000 long-lived objects: a full collection walking them
    # stalls every request in flight (83 ms on a 2-core laptop). Frozen, collections see only new ones.
    gc.collect()
    gc.freeze()
    batcher = Batcher(predictor, max_wait=max_wait)

    @asynccontextmanager
    async def lifespan(_app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="smpipe model server", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/ping")
    async def ping():
        return {"status": "ok", **predictor.describe(), "worker": os.getpid(), "batches": batcher.batches,
                "requests": batcher.requests}

    @app.get("/execution-parameters")
    async def execution_parameters():  # what batch transform asks before it starts sending records
        return {"MaxConcurrentTransforms": 4, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": int(min(MAX_BODY_MB, 100))}

    @app.post("/invocations")
    async def invocations(request: Request):
        try:
            declared = int(request.headers.get("content-length") or 0)
            body = b"" if declared > MAX_BODY_MB * 2**20 else await request.body()
            if max(declared, len(body)) > MAX_BODY_MB * 2**20:
                raise BadRequest(413, f"the body is larger than {MAX_BODY_MB:g} MB; send fewer texts per request")
            texts, kind = parse(body, request.headers.get("content-type"))
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        try:
            predictions = await batcher.predict(texts)
        except Exception as exc:  # noqa: BLE001 - out of memory, a stopped model process: the client learns why
            return JSONResponse({"error": f"the model could not score this request: {exc}"}, status_code=500)
        content, media = render(predictions, kind, request.headers.get("accept"))
        return Response(content=content, media_type=media)

    return app


def default_workers() -> int:
    """One process on CPU (torch uses every core); on a GPU, serving processes sharing one model process
    (steps/serve_engine.py), because one Python process cannot parse, encode and answer requests as fast as
    the GPU serves them: on an H200 with 16 cores, 6 (bench/results/serving-gpu-2026-11-30-model-process.json)."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(2, min(6, cpus * 3 // 8)) if torch.cuda.is_available() else 1


def app_from_env(connection=None):
    """The app of one serving process; ``connection``: its pipe to the model process when there are several."""
    model = None
    if connection is not None:  # this process encodes; the processes together keep every core busy
        from steps.serve_engine import RemoteModel

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        model = RemoteModel(connection)
    return create_app(Path(os.environ["SMPIPE_SERVE_MODEL_DIR"]), float(os.environ.get("SMPIPE_SERVE_MAX_WAIT", "0")),
                      model)


def main(argv=None) -> int:
    import uvicorn

    args = parse_args(argv)
    workers = int(os.environ.get("SMPIPE_SERVE_WORKERS") or default_workers())
    os.environ.update(SMPIPE_SERVE_MODEL_DIR=str(args.model_dir), SMPIPE_SERVE_WORKERS=str(workers),
                      SMPIPE_SERVE_MAX_WAIT=str(args.max_wait_ms / 1000))
    print(f"serving {args.model_dir} on http://{args.host}:{args.port} with {workers} worker(s) "
          "(POST /invocations, GET /ping)", flush=True)
    if workers == 1:  # the model loads before the port opens
        uvicorn.run(app_from_env(), host=args.host, port=args.port, log_level="warning", timeout_keep_alive=75)
        return 0
    from steps import serve_workers
    from steps.serve_model import check_model_dir

    check_model_dir(args.model_dir)  # before the workers start: one clear message, not one per worker
    return serve_workers.run(args.host, args.port, workers, args.model_dir)


if __name__ == "__main__":
    run_main(main)
