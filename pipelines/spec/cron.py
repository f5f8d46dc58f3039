"""EventBridge Scheduler expressions, checked field by field the way the scheduler reads them.

cron(minutes hours day-of-month month day-of-week year): each field a list of `*`, values, ranges `a-b`
and steps `x/n`; months and weekdays also by name (JAN, MON); day-of-month also `L`, `LW`, `15W`;
day-of-week also `L`, `6L`, `2#3`; exactly one of the two day fields is `?`.
rate(value unit): a positive whole number and minute(s) / hour(s) / day(s), singular only for 1.
Each function returns problems as messages (empty when the expression is valid).
"""

from __future__ import annotations

import re

MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), start=1)}
WEEKDAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split(), start=1)}
FIELDS = (  # name, lowest, highest, names
    ("minutes", 0, 59, {}), ("hours", 0, 23, {}), ("day-of-month", 1, 31, {}), ("month", 1, 12, MONTHS),
    ("day-of-week", 1, 7, WEEKDAYS), ("year", 1970, 2199, {}),
)
RATE_RE = re.compile(r"^([0-9]+) (minute|minutes|hour|hours|day|days)$")


def check_cron(expression: str) -> list[str]:
    fields = expression.split()
    if len(fields) != 6:
        return [f"a cron expression has 6 fields (minutes hours day-of-month month day-of-week year), not {len(fields)}"]
    problems = []
    for (name, low, high, names), value in zip(FIELDS, fields, strict=True):
        problems += [f"{name} {value!r}: {p}" for p in _field(name, value, low, high, names)]
    if (fields[2] == "?") == (fields[4] == "?"):
        problems.append("exactly one of day-of-month and day-of-week must be '?' (the other says which days)")
    return problems


def _field(name: str, value: str, low: int, high: int, names: dict) -> list[str]:
    if value == "?":
        return [] if name in ("day-of-month", "day-of-week") else ["'?' only stands in a day field"]
    problems = []
    for part in value.split(","):
        special = _special(name, part, low, high)
        problems += special if special is not None else _part(part, low, high, names)
    return problems


def _special(name: str, part: str, low: int, high: int) -> list[str] | None:
    """The day fields' own forms; None when ``part`` is not one of them."""
    if name == "day-of-month" and part in ("L", "LW"):
        return []
    if name == "day-of-month" and (m := re.fullmatch(r"([0-9]+)W", part)):
        return [] if 1 <= int(m.group(1)) <= 31 else [f"{part}: the weekday nearest day {m.group(1)}, outside 1-31"]
    if name == "day-of-week" and part == "L":
        return []
    if name == "day-of-week" and (m := re.fullmatch(r"([1-7]|[A-Z]{3})(L|#([1-5]))", part)):
        return [] if m.group(1).isdigit() or m.group(1) in WEEKDAYS else [f"{m.group(1)} is not a weekday"]
    if name == "day-of-week" and "#" in part:
        return [f"{part}: 'day#n' takes a weekday (1-7 or SUN-SAT) and n from 1 to 5"]
    return None


def _part(part: str, low: int, high: int, names: dict) -> list[str]:
    base, _, step = part.partition("/")
    if step and (not step.isdigit() or not 1 <= int(step) <= high):
        return [f"step /{step} must be a whole number from 1 to {high}"]
    if base == "*":
        return []
    first, dash, last = base.partition("-")
    values = [v for v in (first, last if dash else None) if v is not None]
    problems = []
    for v in values:
        number = names.get(v.upper()) if not v.isdigit() else int(v)
        if number is None:
            allowed = f"{low}-{high}" + (f" or {'/'.join(list(names)[:3])}…" if names else "")
            problems.append(f"{v!r} is not a value ({allowed})")
        elif not low <= number <= high:
            problems.append(f"{v} is outside {low}-{high}")
    return problems


def check_rate(expression: str) -> list[str]:
    match = RATE_RE.match(expression)
    if not match:
        return ["a rate is 'N minutes', 'N hours' or 'N days' (e.g. '1 day', '6 hours')"]
    number, unit = int(match.group(1)), match.group(2)
    if number < 1:
        return ["a rate must be at least 1"]
    if (number == 1) == unit.endswith("s"):
        return [f"EventBridge wants '{number} {unit.rstrip('s') if number == 1 else unit + 's'}'"]
    return []
