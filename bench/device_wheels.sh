#!/usr/bin/env bash
# On the GPU machine (its own torch): install from .whl/ only what its Python cannot import, without
# dependencies, so nothing it already has is replaced. .whl/ is filled here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d .whl <pkgs>
set -euo pipefail
PY=${BENCH_PY:-python3}
for pair in datasets:datasets dill:dill multiprocess:multiprocess xxhash:xxhash pydantic_core:pydantic_core \
            pydantic:pydantic annotated_types:annotated_types typing_inspection:typing_inspection anyio:anyio \
            sniffio:sniffio h11:h11 httpcore:httpcore httpx:httpx starlette:starlette fastapi:fastapi \
            uvicorn:uvicorn fsspec:fsspec; do
  module=${pair%%:*}; wheel=${pair##*:}
  if ! "$PY" -c "import $module" 2>/dev/null; then
    "$PY" -m pip install -q --no-deps --no-index .whl/${wheel}-*.whl && echo "installed $wheel"
  fi
done
