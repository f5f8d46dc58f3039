"""Serve: the model artifact behind SageMaker's hosting contract, for endpoints and batch transform.

    python -m steps.launcher serve                      # in the image: how SageMaker starts it
    python -m steps.serve --model-dir DIR --port 8080   # by hand (make serve does this)

GET /ping answers 200 once the model is loaded; POST /invocations takes application/json,
application/jsonlines or text/csv (steps/serving/formats.py) and answers in the Accept type. Requests that
arrive together are batched on the device (steps/serving/batcher.py). A bad request gets a 4xx with
{"error": "..."}; the server never stops for one. Port: SAGEMAKER_BIND_TO_PORT, else 8080.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from steps import contract
from steps.core.common import run_main
from steps.serving import app


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


def main(argv=None) -> int:
    import uvicorn

    from steps.serving import settings

    settings.check()
    args = parse_args(argv)
    workers = int(os.environ.get("SMPIPE_SERVE_WORKERS") or app.default_workers())
    os.environ.update(SMPIPE_SERVE_MODEL_DIR=str(args.model_dir), SMPIPE_SERVE_WORKERS=str(workers),
                      SMPIPE_SERVE_MAX_WAIT=str(args.max_wait_ms / 1000))
    print(f"serving {args.model_dir} on http://{args.host}:{args.port} with {workers} worker(s) "
          "(POST /invocations, GET /ping)", flush=True)
    if workers == 1:  # the model loads before the port opens
        uvicorn.run(app.app_from_env(), host=args.host, port=args.port, log_level="warning", timeout_keep_alive=75)
        return 0
    from steps.serving import workers as serve_workers
    from steps.serving.model import check_model_dir

    check_model_dir(args.model_dir)  # before the workers start: one clear message, not one per worker
    return serve_workers.run(args.host, args.port, workers, args.model_dir)


if __name__ == "__main__":
    run_main(main)
