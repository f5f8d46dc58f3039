#!/usr/bin/env bash
# On the GPU machine (its own torch): put the wheels of .whl/ in a folder of their own, ahead of its
# packages on PYTHONPATH (so they are imported together, as tested here), without touching the rest.
#   source bench/device_wheels.sh            # sets PYTHONPATH for this shell and the benchmarks it starts
# .whl/ is filled here with the versions this venv pins:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d .whl <pkgs>
EXTRA=${EXTRA:-/tmp/smpipe-extra}
${BENCH_PY:-python3} -m pip install -q --no-deps --no-index --target "$EXTRA" .whl/*.whl
export PYTHONPATH="$EXTRA${PYTHONPATH:+:$PYTHONPATH}"
${BENCH_PY:-python3} -c "import datasets, fastapi, uvicorn, httpx, pydantic; print('wheels from .whl:', fastapi.__version__, uvicorn.__version__, datasets.__version__)"
