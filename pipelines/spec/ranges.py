"""Tuning ranges: structured YAML or the original pipeline's compact strings.

``"1e-5->5e-5"`` is an interval (integer when both ends are integers), ``"16,32,64"`` a set of choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParsedRange:
    kind: str  # continuous | integer | categorical
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()
    scaling: str = "Auto"


def number(text: str) -> int | float:
    """A number as a tuning job reads it: ASCII digits only (Python's int() also takes '١٢' and '1_000')."""
    text = text.strip()
    if not text.isascii() or "_" in text:
        raise ValueError(f"{text!r} is not a number written in ASCII digits")
    try:
        return int(text)
    except ValueError:
        return float(text)


def _interval(name: str, low: Any, high: Any, scaling: str, kind: str | None) -> ParsedRange:
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        raise ValueError(f"{name}: interval ends must be numbers")
    if low >= high:
        raise ValueError(f"{name}: inverted or empty interval {low} -> {high} (the lower end comes first)")
    if scaling == "Logarithmic" and low <= 0:
        raise ValueError(f"{name}: Logarithmic scaling needs a lower end > 0")
    integer = kind == "integer" or (kind is None and isinstance(low, int) and isinstance(high, int))
    return ParsedRange("integer" if integer else "continuous", float(low), float(high), (), scaling)


def _choices(name: str, values: list) -> ParsedRange:
    cleaned = tuple(str(v).strip() for v in values)
    if len(cleaned) < 1 or any(not v for v in cleaned):
        raise ValueError(f"{name}: categorical values must be non-empty")
    if len(set(cleaned)) != len(cleaned):
        raise ValueError(f"{name}: categorical values repeat")
    if len(cleaned) > 30:
        raise ValueError(f"{name}: at most 30 categorical values (SageMaker limit)")
    return ParsedRange("categorical", values=cleaned)


def parse(name: str, raw: Any) -> ParsedRange:
    """Parse one range; raises ValueError with a message fit for the user."""
    if isinstance(raw, str):
        if "->" in raw:
            low, _, high = raw.partition("->")
            try:
                return _interval(name, number(low), number(high), "Auto", None)
            except ValueError as exc:
                if "interval" in str(exc) or "Logarithmic" in str(exc):
                    raise
                raise ValueError(f"{name}: {raw!r} is not 'low->high' with numbers (e.g. \"1e-5->5e-5\")") from None
        return _choices(name, raw.split(","))
    if isinstance(raw, list):
        return _choices(name, raw)
    if raw.values is not None:
        if raw.min is not None or raw.max is not None:
            raise ValueError(f"{name}: give either values or min/max, not both")
        return _choices(name, raw.values)
    if raw.min is None or raw.max is None:
        raise ValueError(f"{name}: a range needs min and max, or values")
    kind = raw.type if raw.type in ("integer", "continuous") else None
    low, high = (int(raw.min), int(raw.max)) if kind == "integer" else (raw.min, raw.max)
    return _interval(name, low, high, raw.scaling, kind)
