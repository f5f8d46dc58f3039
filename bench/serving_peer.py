"""The peer a user would deploy instead of our server: a `transformers.pipeline` behind FastAPI, written as
the Hugging Face and FastAPI docs show it (one pipeline, a plain `def` handler that FastAPI runs in its thread
pool, uvicorn with one worker, the pipeline's default dtype). Served on the hosting contract's paths so
bench/serving.py drives it with the same clients.

    PEER_MODEL=<hf folder> uvicorn bench.serving_peer:app --host 127.0.0.1 --port N
"""

# No `from __future__ import annotations`: FastAPI reads the handler's annotations as objects.
import os

from fastapi import FastAPI
from transformers import pipeline

classify = pipeline("text-classification", model=os.environ["PEER_MODEL"],
                    device=0 if os.environ.get("PEER_DEVICE", "cuda") == "cuda" else -1)
app = FastAPI()


@app.get("/ping")
def ping() -> dict:
    return {"worker": os.getpid(), "batches": 0}


@app.post("/invocations")
def invocations(body: dict) -> list:
    return classify(body["inputs"], truncation=True)
