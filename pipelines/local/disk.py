"""What local executions hold on disk, and pruning the old ones (`make clean-runs keep=N`).

An execution lives in two places: its folder under the runs (state, logs, one sandbox per job) and its
outputs in the store (``<experiment>/runs/<execution id>/``: data, checkpoints, models, evaluation).
Pruning keeps the N newest executions of each experiment whole, and every execution whose outputs a kept
one reused from the cache; of the rest it deletes everything but the model archives the registry names
(so `make serve` of any registered version still works), and forgets the cache entries that point at
them, so the cache never hands a later run outputs that are gone.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class OnDisk:
    id: str
    folder: Path
    outputs: list[Path]  # the store's folders of this execution
    experiment: str
    started: str
    state: dict = field(repr=False, default_factory=dict)

    def bytes(self) -> int:
        return size(self.folder, *self.outputs)


def size(*paths: Path) -> int:
    """Bytes under the paths, each file once (a hard link is not a second copy)."""
    seen, total = set(), 0
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for name in files:
                info = os.lstat(os.path.join(dirpath, name))
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_size
    return total


def human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return ""


def run_prefixes(definition: dict) -> set[str]:
    """The ``…/runs`` prefixes the definition writes under (joined with the execution id)."""
    found: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, dict):
            parts = value.get("Std:Join", {}).get("Values") if set(value) == {"Std:Join"} else None
            if parts and isinstance(parts[0], str) and parts[1:2] == [{"Get": "Execution.PipelineExecutionId"}]:
                found.add(parts[0])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(definition)
    return found


def executions(runs: Path, store) -> list[OnDisk]:
    """Every local execution under ``runs``, oldest first."""
    found = []
    for state_file in runs.glob("local-*/state.json"):
        folder = state_file.parent
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            definition = json.loads((folder / "definition.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an execution cut off before it wrote its files: left alone
        prefixes = sorted(run_prefixes(definition))
        outputs = [path for p in prefixes if (path := store.local_path(f"{p}/{folder.name}")) is not None]
        experiment = prefixes[0].rsplit("/", 2)[-2] if prefixes else "?"
        found.append(OnDisk(folder.name, folder, outputs, experiment, state.get("started", ""), state))
    return sorted(found, key=lambda e: (e.started, e.id))


def registered_paths(runs: Path, store) -> set[Path]:
    """The store paths the registry names (each version's model archive): pruning never deletes them."""
    out = set()
    for path in sorted((runs / "registry").glob("*/*.json")):
        for uri in _uris(json.loads(path.read_text(encoding="utf-8"))):
            if (local := store.local_path(uri)) is not None:
                out.add(local.resolve())
    return out


def _uris(value) -> list[str]:
    if isinstance(value, dict):
        return [u for v in value.values() for u in _uris(v)]
    if isinstance(value, list):
        return [u for v in value for u in _uris(v)]
    return [value] if isinstance(value, str) and value.startswith("s3://") else []


def reused_by(execution: OnDisk) -> set[str]:
    """The executions whose outputs this one's cached steps reused."""
    return {s.get("reason", "") for s in execution.state.get("steps", {}).values() if s.get("status") == "Cached"}


def to_keep(all_: list[OnDisk], keep: int, experiment: str | None) -> dict[str, str]:
    """execution id → why it stays whole."""
    why: dict[str, str] = {}
    for name in sorted({e.experiment for e in all_}):
        if experiment and name != experiment:
            why |= {e.id: "another experiment" for e in all_ if e.experiment == name}
            continue
        why |= {e.id: f"one of the {keep} newest of {name}" for e in [e for e in all_ if e.experiment == name][-keep:]}
    by_id, pending = {e.id: e for e in all_}, list(why)
    while pending:  # what a kept execution reused must stay, and what that one reused
        for used in reused_by(by_id[pending.pop()]):
            if used in by_id and used not in why:
                why[used] = "a kept execution reuses its cached outputs"
                pending.append(used)
    return why


def remove_except(root: Path, pinned: set[Path]) -> list[Path]:
    """Delete ``root`` but the pinned paths under it; returns the pinned paths that stayed."""
    root = root.resolve()
    inside = [p for p in pinned if p == root or root in p.parents]
    if not inside:
        shutil.rmtree(root, ignore_errors=True)
        return []
    if root in inside or not root.is_dir():
        return [root] if root.exists() else []
    stayed = []
    for child in root.iterdir():
        stayed += remove_except(child, inside) if child.is_dir() else ([child] if child in inside else [])
        if child.is_file() and child not in inside:
            child.unlink()
    return stayed


def forget_cache(runs: Path, gone: set[str]) -> int:
    """Remove the cache entries that point at deleted executions; returns how many."""
    removed = 0
    for path in (runs / "cache").glob("*/*.json"):
        try:
            execution = json.loads(path.read_text(encoding="utf-8")).get("execution")
        except (OSError, ValueError):
            continue
        if execution in gone:
            path.unlink()
            removed += 1
    return removed


def prune(runs: Path, store, keep: int, experiment: str | None = None, dry_run: bool = False) -> list[str]:
    """Delete what ``keep`` leaves out, but the models the registry names; the lines say what went and why."""
    all_ = executions(runs, store)
    why, pinned = to_keep(all_, keep, experiment), registered_paths(runs, store)
    gone = [e for e in all_ if e.id not in why]
    lines, freed = [], 0
    for e in gone:
        before = e.bytes()
        stayed = [] if dry_run else [p for out in e.outputs for p in remove_except(out, pinned)]
        if not dry_run:
            shutil.rmtree(e.folder, ignore_errors=True)
        kept = [p for p in pinned if any(p == o.resolve() or o.resolve() in p.parents for o in e.outputs)]
        left = size(*stayed) if not dry_run else size(*kept)
        freed += before - left
        note = f"; kept the registered model {', '.join(str(p) for p in sorted(kept))}" if kept else ""
        lines.append(f"{'would delete' if dry_run else 'deleted'} {e.id} ({e.experiment}, {human(before - left)}){note}")
    lines += [f"kept {e.id} ({e.experiment}): {why[e.id]}" for e in all_ if e.id in why]
    forgotten = 0 if dry_run else forget_cache(runs, {e.id for e in gone})
    lines.append(f"{'would free' if dry_run else 'freed'} {human(freed)} of {len(gone)} execution(s)"
                 + (f"; {forgotten} cache entr{'y' if forgotten == 1 else 'ies'} of theirs forgotten" if forgotten else ""))
    return lines
