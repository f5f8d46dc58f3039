"""Commands of the specification layer: the JSON Schema, and scaffolding a new experiment."""

from __future__ import annotations

from pipelines.commands.common import command


def cmd_schema(_args) -> int:
    from pipelines.spec.schema import write_schema

    print(write_schema())
    return 0


def cmd_new_exp(args) -> int:
    from pipelines.spec.scaffold import new_experiment

    folder = new_experiment(args.name, args.source)
    print(f"created {folder}: write (or delete) the stubs in user_defined_funcs.py, then "
          f"make validate exp={args.name}")
    return 0


def register(sub) -> None:
    new_exp = command(sub, "new-exp", "scaffold experiments/<name>/ from templates/new-exp or another experiment",
                      cmd_new_exp, spec=False)
    new_exp.add_argument("name", help="EXP-NNNN-slug")
    new_exp.add_argument("--from", dest="source", help="copy this experiment folder instead of the template")
    command(sub, "schema", "write schema/experiment.schema.json", cmd_schema, spec=False)
