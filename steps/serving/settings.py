"""The serving program's numeric environment settings, checked once before anything starts: a bad value is
one line naming the variable, its value and what it takes, not a traceback from whichever process reads it."""

from __future__ import annotations

import os

from steps.core.common import StepError

# name: (type, smallest value, what it is)
NUMBERS = {
    "SMPIPE_SERVE_WORKERS": (int, 1, "serving processes"),
    "SMPIPE_SERVE_TOKENS": (int, 1, "padded tokens in one forward pass"),
    "SMPIPE_SERVE_ROWS": (int, 1, "rows in one forward pass"),
    "SMPIPE_SERVE_OVERHEAD_TOKENS": (int, 0, "a pass's fixed cost in padded tokens"),
    "SMPIPE_SERVE_GRAPH_TOKENS": (int, 0, "the largest pass CUDA graphs replay, in padded tokens"),
    "SMPIPE_SERVE_INFLIGHT": (int, 1, "batches in flight per serving process"),
    "SMPIPE_SERVE_MODEL_THREADS": (int, 1, "model threads"),
    "SMPIPE_SERVE_MAX_REQUESTS": (int, 1, "requests waiting per serving process"),
    "SMPIPE_SERVE_MAX_TEXTS": (int, 0, "texts in one request, 0 = any"),
    "SMPIPE_SERVE_MAX_WAIT": (float, 0, "seconds to wait for more requests to batch with"),
    "SMPIPE_MAX_BODY_MB": (float, 0, "the largest request body, MB"),
    "SAGEMAKER_BIND_TO_PORT": (int, 1, "the port"),
}


def check(environ=os.environ) -> None:
    """Raise StepError for the first set variable of NUMBERS that is not a number of its kind at or above its
    smallest value (an empty value counts as unset, as the readers treat it)."""
    for name, (kind, smallest, what) in NUMBERS.items():
        value = environ.get(name, "")
        if not value:
            continue
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or number != number or number < smallest:
            noun = "a whole number" if kind is int else "a number"
            raise StepError(f"{name}={value!r} is not {noun} >= {smallest:g} ({what}): unset it or fix its value")
