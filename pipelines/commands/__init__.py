"""The command front door's commands, one module per layer; pipelines.cli builds the parser from them.

Each module exposes ``register(sub)``: it adds its subcommands and sets each one's ``run`` function.
A new command is a function and a few lines in the module of the layer it drives, never a longer cli.py.
Commands may import every layer; no layer imports them.
"""

from __future__ import annotations

from importlib import import_module

MODULES = ("spec", "compile", "local", "aws")


def register_all(sub) -> None:
    for name in MODULES:
        import_module(f"pipelines.commands.{name}").register(sub)
