"""Which checkpoint a training job may resume from: only its own run's, never another execution's.

A checkpoint folder records the fingerprint of the run that wrote it (hyperparameters, the prepared
data, the pretrained model, the number of processes) and the job name. A job resumes only when the
fingerprint matches and the checkpoint is unfinished, or finished by this very job (a spot restart
of the same job after its last epoch). Anything else starts fresh, with one line saying why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from steps import contract
from steps.core.common import write_json

TUNING_HYPERPARAMETER = "_tuning_objective_metric"  # SageMaker adds it to every trial of a tuning job
JOB_NAME_ENV = "TRAINING_JOB_NAME"  # set by SageMaker in every training container


def job_name() -> str:
    return os.environ.get(JOB_NAME_ENV, "")


def own_dir(checkpoint_dir: Path) -> Path:
    """A tuning trial keeps its checkpoints under its own job name, so parallel trials never share one."""
    if TUNING_HYPERPARAMETER in contract.hyperparameters() and job_name():
        return checkpoint_dir / job_name()
    return checkpoint_dir


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_fingerprint(data_dir: Path) -> str:
    """What prepare recorded of the split's content; older outputs: the dataset files' names and sizes."""
    recorded = contract.read_json(data_dir / "model.json").get("fingerprint")
    if recorded:
        return recorded
    files = sorted((str(p.relative_to(data_dir)), p.stat().st_size) for p in data_dir.rglob("*") if p.is_file())
    return digest(files)


def source_fingerprint(pretrained: Path, hub_model_id: str) -> str:
    """The pretrained model: its config and its files' names and sizes (weights are not re-hashed)."""
    config = pretrained / "config.json"
    if not config.is_file():
        return f"hub:{hub_model_id}"
    files = sorted((p.name, p.stat().st_size) for p in pretrained.iterdir() if p.is_file())
    return digest([config.read_text(encoding="utf-8"), files])


def fingerprint(hyperparameters: dict, data_dir: Path, pretrained: Path, hub_model_id: str, processes: int) -> dict:
    return {"hyperparameters": {k: str(v) for k, v in sorted(hyperparameters.items())},
            "data": data_fingerprint(data_dir), "model": source_fingerprint(pretrained, hub_model_id),
            "processes": processes}


def differences(old: dict, new: dict) -> list[str]:
    out = []
    for key in ("data", "model", "processes"):
        if old.get(key) != new.get(key):
            out.append(f"{key} {old.get(key)} → {new.get(key)}")
    old_hp, new_hp = old.get("hyperparameters", {}), new.get("hyperparameters", {})
    for name in sorted(set(old_hp) | set(new_hp)):
        if old_hp.get(name) != new_hp.get(name):
            out.append(f"{name} {old_hp.get(name)} → {new_hp.get(name)}")
    return out


def fresh(run: dict) -> dict:
    return {"epoch": 0, "best": None, "best_epoch": 0, "history": [], "fingerprint": run, "job": job_name()}


def decide(ckpt: Path, run: dict, epochs: int) -> tuple[dict, str]:
    """(progress to start from, the line that says what was decided; empty when there was nothing)."""
    saved = contract.read_json(ckpt / "progress.json")
    if not saved.get("epoch"):
        return fresh(run), ""
    if "fingerprint" not in saved:
        return fresh(run), f"checkpoint in {ckpt} records no run fingerprint (written by an older version); " \
                           "starting fresh"
    changed = differences(saved["fingerprint"], run)
    if changed:
        return fresh(run), f"checkpoint in {ckpt} belongs to another run ({'; '.join(changed)}); starting fresh"
    if saved["epoch"] >= epochs and saved.get("job") != job_name():
        return fresh(run), (f"checkpoint in {ckpt} is a finished run of job {saved.get('job') or '?'}; this job "
                            f"({job_name() or '?'}) trains from the start")
    saved["job"] = job_name()
    return saved, f"resuming after epoch {saved['epoch']} of {epochs} from {ckpt} (same run, fingerprint " \
                  f"{digest(run)})"


def clear(ckpt: Path) -> None:
    """Remove another run's checkpoint files (only what train writes; the folder itself stays)."""
    for path in [*ckpt.glob("epoch_*"), ckpt / "best", ckpt / "best.tmp", ckpt / "progress.json"]:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


# -- in the training program (accelerate) ------------------------------------------------------------

def save_checkpoint(accelerator, ckpt: Path, epoch: int, progress: dict) -> None:
    """Written under a temporary name and renamed: the checkpoint folder is synced to S3 while training
    runs, so a folder that exists is complete, and progress.json only ever names a complete one."""
    staging = ckpt / f"epoch_{epoch}.tmp"
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_local_main_process:
        replace_dir(staging, ckpt / f"epoch_{epoch}")
    if accelerator.is_main_process:
        write_json(ckpt / "progress.json", progress)
        for old in ckpt.glob("epoch_*"):
            if old.name != f"epoch_{epoch}":
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def replace_dir(staging: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def save_best(accelerator, base, tokenizer, ckpt: Path) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        staging = ckpt / "best.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        base.save_pretrained(str(staging), safe_serialization=True)
        tokenizer.save_pretrained(str(staging))
        replace_dir(staging, ckpt / "best")
    accelerator.wait_for_everyone()


def resume(accelerator, args, hyperparameters: dict, ckpt: Path) -> dict:
    """This run's own checkpoint, or a fresh start (another run's files are removed first)."""
    run = fingerprint(hyperparameters, args.data_dir, args.pretrained, args.hub_model_id, accelerator.num_processes)
    progress, why = decide(ckpt, run, args.epochs)
    accelerator.wait_for_everyone()  # every process decided from the same files before any is removed
    if why:
        accelerator.print(why)
    if progress["epoch"]:
        accelerator.load_state(str(ckpt / f"epoch_{progress['epoch']}"))
    elif accelerator.is_main_process:
        clear(ckpt)
    accelerator.wait_for_everyone()
    return progress
