"""The ``autodata`` command line: one subcommand per use, each in its own module.

Each subcommand module has ``register(commands)``, which adds its parser to the subparsers
and sets ``run``; :data:`SUBCOMMANDS` lists them (a registry, not a chain of ifs). A user
error is one line on stderr and exit status 2, found before any training starts; Ctrl-C or a
closed pipe ends quietly and a run directory stays resumable (``--resume``).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import autodata
from autodata.cli._common import EXIT_INTERRUPTED, EXIT_USAGE, Parser

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

SUBCOMMANDS: tuple[str, ...] = (
    "autodata.cli.demo",
    "autodata.cli.train",
    "autodata.cli.search",
    "autodata.tune.cli",
    "autodata.cli.policy",
    "autodata.cli.report",
    "autodata.cli.version",
)
"""Modules with ``register(commands)``, in the order ``autodata --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="autodata",
        description="Learn the data side of training: augmentation policies, sample weights, hyperparameters.",
    )
    parser.add_argument("--version", action="version", version=f"autodata {autodata.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from autodata._imports import MissingExtraError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, FloatingPointError, MissingExtraError) as error:
        print(f"autodata: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = ""
        if args.command == "train" and out:
            hint = f"; continue with: autodata train --out {out} --resume"
        elif args.command == "search" and getattr(args, "what", None) == "schedule":
            hint = "; run the same command again to resume from the last perturbation point"
        elif args.command == "tune":
            hint = "; the finished trials are kept: run the same command again to resume the study"
        print(f"autodata: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``autodata ... | head``): end quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
