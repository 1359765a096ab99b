"""The command line: ``python -m rlhf_demo COMMAND ...`` over the same core the UI uses.

Each command lives in ``rlhf_demo/cli/NAME.py`` and provides ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. Errors a user can fix are printed as one line ``error: ...`` (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["generate", "train", "preferences", "kl", "runs", "inspect"]


class UsageError(ValueError):
    """Bad input from the command line: printed as ``error: ...`` with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rlhf_demo", description="RLHF Lab: watch a language model learn from feedback.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        mod = importlib.import_module(f"rlhf_demo.cli.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as exc:
        # Our own error classes (ModelLoadError, RewardError, PromptError, config validation, ...)
        # all derive from these: one clear line, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
