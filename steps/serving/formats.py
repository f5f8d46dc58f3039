"""Request and response bodies of the serving program, per content type.

    application/json       {"inputs": "text"} or {"inputs": ["text", ...]} (a bare string or list too)
                           → {"predictions": [{"label", "score", "probabilities"}, ...]}
    application/jsonlines  one text per line: a JSON string, or {"inputs": "..."} / {"text": "..."}
                           → one JSON prediction per line
    text/csv               one text per row, in the first column (quotes as CSV writes them)
                           → one "label,score" row per input row

Batch transform splits files by line and sends several lines per request, so the line forms answer with
exactly one output line per input line. Every mistake is a ``BadRequest`` naming what is wrong.
"""

from __future__ import annotations

import csv
import io
import json

JSON, JSONLINES, CSV = "application/json", "application/jsonlines", "text/csv"
ALIASES = {"application/x-jsonlines": JSONLINES, "application/jsonl": JSONLINES, "application/x-ndjson": JSONLINES}
SUPPORTED = (JSON, JSONLINES, CSV)


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def media_type(header: str | None) -> str:
    base = (header or "").split(";")[0].strip().lower()
    return ALIASES.get(base, base)


def parse(body: bytes, content_type: str | None) -> tuple[list[str], str]:
    """(texts, the request's media type)."""
    kind = media_type(content_type)
    if kind not in SUPPORTED:
        raise BadRequest(415, f"content type {content_type or '(none)'!r} is not supported; use one of {', '.join(SUPPORTED)}")
    if not body.strip():
        raise BadRequest(400, "the request body is empty")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"the body is not UTF-8 (byte {exc.start})") from None
    texts = {JSON: _json, JSONLINES: _jsonlines, CSV: _csv}[kind](text)
    if not texts:
        raise BadRequest(400, "no texts in the request")
    _encodable(texts)
    return texts, kind


def _encodable(texts: list[str]) -> None:
    """JSON can spell a lone UTF-16 surrogate (\\ud800) that no tokenizer can encode: refused here, for this
    request alone, before it is batched with anyone else's."""
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadRequest(400, f"text {i} holds a lone UTF-16 surrogate at character {exc.start} "
                                  f"({text[exc.start]!r}), which is not a character; send valid Unicode") from None


def _loads(text: str, where: str):
    """json.loads, with the values it cannot hold (a number of more than 4,300 digits, nesting deeper than the
    interpreter's stack) answered as the request's own 400 instead of a 500."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"{where}is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:  # int() refuses more than sys.get_int_max_str_digits() digits
        raise BadRequest(400, f"{where}holds a number too long to read ({str(exc).split(';')[0]})") from None
    except RecursionError:
        raise BadRequest(400, f"{where}is nested too deeply to read; send a flat list of strings") from None


def _json(text: str) -> list[str]:
    data = _loads(text, "the body ")
    inputs = data.get("inputs") if isinstance(data, dict) else data
    if isinstance(data, dict) and "inputs" not in data:
        raise BadRequest(400, 'the JSON object needs an "inputs" field: {"inputs": ["text", ...]}')
    if isinstance(inputs, str):
        return [inputs]
    if not isinstance(inputs, list):
        raise BadRequest(400, f'"inputs" must be a string or a list of strings, not {type(inputs).__name__}')
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise BadRequest(400, f'"inputs"[{i}] is {type(item).__name__}, not a string')
    return inputs


def _jsonlines(text: str) -> list[str]:
    texts = []
    for number, line in enumerate(text.rstrip("\r\n").split("\n"), start=1):
        line = line.rstrip("\r")
        item = _loads(line, f"line {number} ") if line.strip() else ""
        if isinstance(item, dict):
            item = item.get("inputs", item.get("text"))
        if not isinstance(item, str):
            raise BadRequest(400, f'line {number}: expected a JSON string or an object with a string "inputs" or '
                                  f'"text", got {type(item).__name__}')
        texts.append(item)
    return texts


def _csv(text: str) -> list[str]:
    try:
        return [row[0] if row else "" for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise BadRequest(400, f"malformed CSV: {exc}") from None


def render(predictions: list[dict], request_kind: str, accept: str | None) -> tuple[bytes, str]:
    """The response body: in the Accept type when it is one we write, else in the request's own form."""
    kind = media_type(accept)
    kind = kind if kind in SUPPORTED else request_kind
    if kind == JSON:
        return json.dumps({"predictions": predictions}).encode(), JSON
    if kind == JSONLINES:
        return "".join(json.dumps(p) + "\n" for p in predictions).encode(), JSONLINES
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for p in predictions:
        writer.writerow([p["label"], p["score"]])
    return out.getvalue().encode(), CSV
