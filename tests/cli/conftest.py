"""Run the new subcommands the way ``autodata`` does, before and after they join SUBCOMMANDS."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

import pytest

from autodata._imports import MissingExtraError
from autodata.cli import SUBCOMMANDS, main
from autodata.cli._common import EXIT_USAGE, Parser

MODULES = ("autodata.cli.report", "autodata.cli.policy")


def run_cli(argv: Sequence[str]) -> int:
    """``autodata ARGV``: the real ``main`` once the modules are wired, else the same dispatch."""
    if all(m in SUBCOMMANDS for m in MODULES):
        try:
            return main(list(argv))
        except SystemExit as exit_:
            return int(exit_.code or 0)
    parser = Parser(prog="autodata")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in MODULES:
        importlib.import_module(name).register(commands)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, MissingExtraError) as error:
        print(f"autodata: error: {error}", file=sys.stderr)
        return EXIT_USAGE


@pytest.fixture
def cli() -> Callable[[Sequence[str]], int]:
    return run_cli
