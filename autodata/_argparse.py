"""Command-line flags from a frozen config dataclass, and back: the dataclass stays the truth."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["add_config_arguments", "config_from_arguments"]


def add_config_arguments(
    parser: argparse.ArgumentParser, cls: type, defaults: Any = None, skip: tuple[str, ...] = ()
) -> None:
    """Add ``--field-name`` for every field of ``cls`` (bools become ``store_true`` flags).

    Tuple fields take a comma-separated list.
    """
    defaults = defaults if defaults is not None else cls()
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", default=default)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=lambda s: tuple(s.split(",")), default=default,
                                help=f"comma-separated (default: {','.join(map(str, default))})")
        else:
            parser.add_argument(flag, type=type(default) if default is not None else str, default=default)


def config_from_arguments(cls: type[T], args: argparse.Namespace) -> T:
    """Build ``cls`` from the parsed flags that :func:`add_config_arguments` added."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})
