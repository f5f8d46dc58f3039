"""python -m pipelines <command> ...: the thin front door the Makefile calls.

Commands live in pipelines/commands/, one module per layer; this file builds the parser from them and
turns every expected failure into a message and an exit status, never a traceback. The one exit policy:
a user's mistake exits 2 (a spec problem names its file, line and field), a platform's refusal (AWS, a
store) exits 1, an interrupt 130; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelines.commands import register_all
from pipelines.spec.errors import SpecError

EPILOG = """examples:
  python -m pipelines definition experiments/EXP-0002-bert-vs-distilbert/experiment.yaml
  python -m pipelines validate experiments/EXP-0003-tuning-minilm/experiment.yaml train.hyperparameters.epochs=1
  python -m pipelines local experiments/EXP-0001-docstring-topics/experiment.yaml
"""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    register_all(root.add_subparsers(dest="command", required=True))
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found.", file=sys.stderr)
        return 2
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _platform_errors() as exc:
        print(f"error: {aws_message(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... | head` closed our stdout: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _user_errors() -> tuple:
    """Besides SpecError: a definition or parameter the local executor cannot resolve."""
    from pipelines.local.expressions import ExpressionError

    return (ExpressionError,)


def _platform_errors() -> tuple:
    from botocore.exceptions import BotoCoreError, ClientError

    from pipelines.aws.pipeline import AwsError
    from pipelines.store.base import StoreError

    return (AwsError, StoreError, BotoCoreError, ClientError)


def aws_message(exc) -> str:
    from botocore.exceptions import NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found: set AWS_PROFILE (or run `aws sso login`) and try again"
    if isinstance(exc, NoRegionError):
        return "no AWS region: set aws.region in the spec or AWS_DEFAULT_REGION"
    return str(exc)
