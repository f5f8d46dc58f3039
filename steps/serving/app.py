"""The serving program's web app: SageMaker's hosting contract (GET /ping, POST /invocations and batch
transform's GET /execution-parameters) over the batched predictor, one app per serving process."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations as objects.
import gc
import json
import os
from contextlib import asynccontextmanager
from pathlib import Path


def max_body_mb() -> float:
    """An endpoint's payloads are at most 6 MB; a batch transform sends up to its MaxPayloadInMB, which
    SageMaker tells the container (SAGEMAKER_MAX_PAYLOAD_IN_MB; 0 means no limit, chunked bodies)."""
    if os.environ.get("SAGEMAKER_BATCH") == "true" and os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB"):
        return float(os.environ["SAGEMAKER_MAX_PAYLOAD_IN_MB"]) or float("inf")
    return float(os.environ.get("SMPIPE_MAX_BODY_MB", "6"))



def max_texts() -> int:
    """Texts one endpoint request may hold (SMPIPE_SERVE_MAX_TEXTS, 0 = any): one request must not hold the
    model for everyone. A batch transform's records are bounded by its MaxPayloadInMB instead."""
    if os.environ.get("SAGEMAKER_BATCH") == "true":
        return int(os.environ.get("SMPIPE_SERVE_MAX_TEXTS", "0"))
    return int(os.environ.get("SMPIPE_SERVE_MAX_TEXTS", "1000"))


def create_app(model_dir: Path, max_wait: float = 0.0, model=None):
    from fastapi import FastAPI, Request

    from steps.serving.batcher import Batcher, ClientGone
    from steps.serving.formats import JSON, BadRequest, parse, render
    from steps.serving.model import Predictor

    predictor = Predictor(model_dir, model)  # model: the shared model process's pipe when there are workers
    predictor.warm_up()
    # torch, transformers and FastAPI leave a very large number of long-lived objects: a full collection walking
    # them stalls every request in flight. Frozen, collections see only new ones.
    gc.collect()
    gc.freeze()
    batcher = Batcher(predictor, max_wait=max_wait)
    limit, max_mb = max_texts(), max_body_mb()

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
        return {"MaxConcurrentTransforms": 4, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": int(min(max_mb, 100))}

    async def invocations(request: Request) -> tuple[int, bytes, str]:
        """(status, body, media type) of one POST /invocations."""
        try:
            declared = int(request.headers.get("content-length") or 0)
            body = b"" if declared > max_mb * 2**20 else await request.body()
            if max(declared, len(body)) > max_mb * 2**20:
                raise BadRequest(413, f"the body is larger than {max_mb:g} MB; send fewer texts per request")
            texts, kind = parse(body, request.headers.get("content-type"))
            if limit and len(texts) > limit:
                raise BadRequest(413, f"{len(texts):,} texts in one request; at most {limit:,} "
                                      "(SMPIPE_SERVE_MAX_TEXTS): send them in several requests")
        except BadRequest as exc:
            return exc.status, _error(str(exc)), JSON
        try:
            predictions = await batcher.predict(texts, request.is_disconnected)
        except ClientGone as exc:  # nobody reads this answer; said for the log
            return 499, _error(str(exc)), JSON
        except Exception as exc:  # noqa: BLE001 - out of memory, a stopped model process: the client learns why
            return 500, _error(f"the model could not score this request: {exc}"), JSON
        content, media = render(predictions, kind, request.headers.get("accept"))
        return 200, content, media

    return fast_path(app, invocations)


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def fast_path(app, invocations):
    """POST /invocations answered without FastAPI's routing, middleware and dependency solving: they cost the
    serving process more than parsing, batching and answering the request do (a third of its event loop's time
    under load). Every other path goes to ``app``."""
    from starlette.requests import Request

    from steps.serving.formats import JSON

    async def asgi(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/invocations":
            return await app(scope, receive, send)
        if scope["method"] == "POST":
            status, content, media = await invocations(Request(scope, receive))
            headers = []
        else:
            status, content, media = 405, _error("POST /invocations, not " + scope["method"]), JSON
            headers = [(b"allow", b"POST")]
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", media.encode()), (b"content-length", b"%d" % len(content)), *headers]})
        await send({"type": "http.response.body", "body": content})

    asgi.app = app  # the FastAPI app itself (its lifespan, its other routes)
    return asgi


def default_workers() -> int:
    """One process on CPU (torch uses every core); on a GPU, serving processes sharing one model process
    (steps/serving/engine.py), because one Python process cannot parse, encode and answer requests as fast as
    the GPU serves them: on an H200 with 16 cores, 6 (bench/results/serving-gpu-2026-11-30-model-process.json)."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(2, min(6, cpus * 3 // 8)) if torch.cuda.is_available() else 1


def app_from_env(connection=None):
    """The app of one serving process; ``connection``: its pipe to the model process when there are several."""
    model = None
    if connection is not None:  # this process encodes; the processes together keep every core busy
        from steps.serving.engine import RemoteModel

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        model = RemoteModel(connection)
    return create_app(Path(os.environ["SMPIPE_SERVE_MODEL_DIR"]), float(os.environ.get("SMPIPE_SERVE_MAX_WAIT", "0")),
                      model)
