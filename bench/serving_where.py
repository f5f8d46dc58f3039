"""Where the serving program's CPU time goes under load: every process of the server sampled by py-spy (an
ancestor of them all, so no ptrace rights are needed) while bench/serving.py's clients load it
(py-spy attaches to the running server: that needs the right to trace one's own processes).

    python bench/serving_where.py [--model bert-base] [--clients 256] [--seconds 12] [--set NAME=VALUE ...]

The result file holds, per server process, the CPU it used per wall second and the busy fraction of each of
its threads, and the functions where its busiest threads spend their time (own time and with callees).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import serving  # noqa: E402

RATE = 50  # samples per second per thread


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children[int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])].append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [pid]
    while todo:
        found = children[todo.pop()]
        out += found
        todo += found
    return sorted(out)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


def summarise(raw: Path, seconds: float, top: int = 25) -> dict:
    """Per process: each thread's busy fraction; for the process's busiest threads, top own and inclusive frames."""
    threads, own, incl = collections.Counter(), collections.defaultdict(collections.Counter), \
        collections.defaultdict(collections.Counter)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack.startswith("process ") or not count.isdigit():
            continue
        frames = stack.split(";")
        process = [f for f in frames if f.startswith("process ")][-1].split(":", 1)[0]
        thread = next((f for f in frames if f.startswith("thread ")), "thread ?")
        threads[(process, thread)] += int(count)
        body = [f for f in frames[1:] if not f.startswith(("thread ", "process "))]
        if body:
            own[process][body[-1]] += int(count)
            for frame in set(body):
                incl[process][frame] += int(count)
    out: dict = {}
    for (process, thread), n in sorted(threads.items()):
        out.setdefault(process, {"threads": {}})["threads"][thread] = round(n / (RATE * seconds), 2)
    for process, entry in out.items():
        entry["own"] = own[process].most_common(top)
        entry["inclusive"] = incl[process].most_common(top)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(serving.MODELS), default="bert-base")
    p.add_argument("--clients", type=int, default=256)
    p.add_argument("--seconds", type=float, default=12)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a serving setting")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "serving-where")
    p.add_argument("--opt-ml", type=Path, help="an artifact bench/serving.py exported (its --work/opt/ml), reused")
    args = p.parse_args()
    from bench.provenance import provenance, result_path

    shutil.rmtree(args.work, ignore_errors=True)
    rows = serving.docs()
    if args.opt_ml:
        args.work.mkdir(parents=True)
    opt_ml = args.opt_ml.resolve() if args.opt_ml else serving.artifact(args.work, args.model, rows)
    texts, port = [r["text"] for r in rows], serving.free_port()
    settings = dict(s.split("=", 1) for s in args.set)
    env = {**os.environ, "PYTHONPATH": serving.pythonpath(), "SMPIPE_OPT_ML": str(opt_ml), "SAGEMAKER_BIND_TO_PORT":
           str(port), "SMPIPE_SERVE_HOST": "127.0.0.1", **settings}
    from steps.serving.app import default_workers

    workers = int(settings.get("SMPIPE_SERVE_WORKERS") or default_workers())
    raw, log = args.work / "py-spy.txt", args.work / "serve.log"
    spy_bin = os.environ.get("PY_SPY") or shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with serving.serving([sys.executable, "-m", "steps.launcher", "serve"], env, log, port, workers) as server:
        pids = [server.pid, *descendants(server.pid)]
        names = {pid: name(pid) for pid in pids}
        spy = subprocess.Popen([spy_bin, "record", "--pid", str(server.pid), "--subprocesses", "--nonblocking",
                                "--threads", "--format", "raw", "-r", str(RATE), "-o", str(raw), "--duration",
                                str(int(args.seconds) + 1)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        before, started = {pid: cpu_seconds(pid) for pid in pids}, time.perf_counter()
        load = serving.load(port, texts, args.clients, args.seconds, warmup=0)
        wall = time.perf_counter() - started
        cpu = {pid: round((cpu_seconds(pid) - before[pid]) / wall, 2) for pid in pids}
        spy_log = spy.communicate(timeout=120)[0]
    profile = summarise(raw, args.seconds + 1) if raw.is_file() else {"py-spy failed": spy_log[-2000:]}
    result = {**provenance(), "model": args.model, "clients": args.clients, "seconds": args.seconds,
              "settings": settings, "workers": workers, "load": load,
              "cpu_per_wall_second": {f"{pid} {names[pid]}": c for pid, c in cpu.items()},
              "note": "load measured while py-spy samples every thread: slower than bench/serving.py's figures",
              "profile": profile}
    path = result_path(f"serving-where-{args.model}", args.out)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"load": load, "cpu": result["cpu_per_wall_second"]}, indent=1))
    print(f"→ {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
