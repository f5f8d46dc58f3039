"""SageMaker's step caching, here: a job step whose arguments (execution variables as written, not as
values) match an earlier successful run within ExpireAfter reuses that run's properties."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.local import expressions as ex
from pipelines.local.graph import descendants


def symbolic(value, scope: ex.Scope):
    """Resolve parameters and step properties, keep execution variables as written (the cache key)."""
    if isinstance(value, dict):
        if set(value) == {"Get"} and str(value["Get"]).startswith("Execution."):
            return value
        if len(value) == 1 and next(iter(value)) in ("Get", "Std:JsonGet"):
            return ex.evaluate(value, scope)
        if set(value) == {"Std:Join"}:
            parts = [symbolic(v, scope) for v in value["Std:Join"]["Values"]]
            return {"Std:Join": {"On": value["Std:Join"]["On"], "Values": parts}}
        return {k: symbolic(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [symbolic(v, scope) for v in value]
    return value


def expiry(duration: str | None) -> timedelta:
    match = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?",
                         duration or "")
    if not match:
        return timedelta(days=36500)
    y, mo, w, d, h, mi, s = (int(g or 0) for g in match.groups())
    return timedelta(days=365 * y + 30 * mo + 7 * w + d, hours=h, minutes=mi, seconds=s)


class StepCache:
    def __init__(self, folder: Path, use_cache: bool, from_step: str | None, deps: dict, execution_id: str):
        self.folder, self.use_cache, self.from_step = folder, use_cache, from_step
        self.deps, self.execution_id = deps, execution_id

    def key(self, step: dict, scope: ex.Scope) -> str:
        return hashlib.sha256(ex.dumps(self.body(step, scope)).encode()).hexdigest()

    @staticmethod
    def body(step: dict, scope: ex.Scope) -> dict:
        return {"Type": step["Type"], "Arguments": symbolic(step["Arguments"], scope)}

    def lookup(self, name: str, step: dict, key: str, body: dict | None = None) -> tuple[dict | None, str]:
        """(the cached entry, or None with the reason the step runs: which arguments changed, by name)."""
        config = step.get("CacheConfig") or {}
        if not config.get("Enabled"):
            return None, "caching is off for this step"
        if not self.use_cache:
            return None, "--no-cache"
        if self.from_step and name in descendants(self.deps, self.from_step):
            return None, f"--from {self.from_step}"
        path = self.folder / name / f"{key}.json"
        if not path.is_file():
            earlier = sorted((self.folder / name).glob("*.json"), key=lambda p: p.stat().st_mtime) \
                if (self.folder / name).is_dir() else []
            return None, changed_since(earlier[-1], body) if earlier else "first run"
        entry = json.loads(path.read_text(encoding="utf-8"))
        age = datetime.now(UTC) - datetime.fromisoformat(entry["finished"])
        if age > expiry(config.get("ExpireAfter")):
            return None, f"cached result expired ({config.get('ExpireAfter')})"
        return entry, ""

    def remember(self, name: str, key: str, properties: dict, body: dict | None = None) -> None:
        path = self.folder / name / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"execution": self.execution_id, "finished": datetime.now(UTC).isoformat(),
                                    "properties": properties, "arguments": body}, default=str), encoding="utf-8")


SHOWN_CHANGES = 4


def changed_since(entry_path: Path, body: dict | None) -> str:
    """Why a step runs again: the arguments that differ from its last cached run, by path, old → new."""
    try:
        before = json.loads(entry_path.read_text(encoding="utf-8")).get("arguments")
    except (OSError, ValueError):
        before = None
    if before is None or body is None:
        return "arguments changed since the last run"
    old, new = dict(_flat(json.loads(ex.dumps(before)))), dict(_flat(json.loads(ex.dumps(body))))
    changes = [f"{path}: {_short(old.get(path))} → {_short(new.get(path))}"
               for path in sorted(set(old) | set(new)) if old.get(path) != new.get(path)]
    shown = "; ".join(changes[:SHOWN_CHANGES]) + (f"; and {len(changes) - SHOWN_CHANGES} more"
                                                   if len(changes) > SHOWN_CHANGES else "")
    return f"arguments changed since the last run: {shown}"


def _flat(value, path: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _flat(item, f"{path}[{i}]")
    else:
        yield path, value


def _short(value) -> str:
    text = "(none)" if value is None else json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 48 else text[:20] + "…" + text[-24:]
