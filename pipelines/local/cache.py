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
        body = {"Type": step["Type"], "Arguments": symbolic(step["Arguments"], scope)}
        return hashlib.sha256(ex.dumps(body).encode()).hexdigest()

    def lookup(self, name: str, step: dict, key: str) -> tuple[dict | None, str]:
        """(the cached entry, or None with the reason the step runs)."""
        config = step.get("CacheConfig") or {}
        if not config.get("Enabled"):
            return None, "caching is off for this step"
        if not self.use_cache:
            return None, "--no-cache"
        if self.from_step and name in descendants(self.deps, self.from_step):
            return None, f"--from {self.from_step}"
        path = self.folder / name / f"{key}.json"
        if not path.is_file():
            earlier = list((self.folder / name).glob("*.json")) if (self.folder / name).is_dir() else []
            return None, "arguments changed since the last run" if earlier else "first run"
        entry = json.loads(path.read_text(encoding="utf-8"))
        age = datetime.now(UTC) - datetime.fromisoformat(entry["finished"])
        if age > expiry(config.get("ExpireAfter")):
            return None, f"cached result expired ({config.get('ExpireAfter')})"
        return entry, ""

    def remember(self, name: str, key: str, properties: dict) -> None:
        path = self.folder / name / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"execution": self.execution_id, "finished": datetime.now(UTC).isoformat(),
                                    "properties": properties}, default=str), encoding="utf-8")
