"""Command-line flags generated from a frozen config dataclass: the dataclass stays the truth.

Every field ``some_name`` becomes ``--some-name`` with the field's type, its ``help`` and
``choices`` from the field's metadata (see :mod:`autodata.train.config`), booleans become
``--flag`` / ``--no-flag`` pairs, and tuples take a comma-separated list. Flags that are not
given are absent from the parsed namespace (``argparse.SUPPRESS``), so they override a
config file field by field.

Example:
    >>> import argparse
    >>> from autodata.train import TrainConfig
    >>> parser = argparse.ArgumentParser()
    >>> add_config_arguments(parser, TrainConfig)
    >>> args = parser.parse_args(["--lr", "0.1", "--no-nesterov"])
    >>> config_overrides(TrainConfig, args)
    {'lr': 0.1, 'nesterov': False}
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["add_config_arguments", "config_from_arguments", "config_overrides", "flag_of", "name_flags_in"]


def flag_of(name: str) -> str:
    """``"meta_per_class"`` -> ``"--meta-per-class"``."""
    return "--" + name.replace("_", "-")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _base_type(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and typing.get_origin(hint) is not tuple else hint


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    defaults: Any = None,
    skip: tuple[str, ...] = (),
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """Add a flag for every field of ``cls`` (see the module docstring).

    Args:
        parser: the parser or argument group.
        cls: a dataclass.
        defaults: an instance whose values the help shows (default ``cls()``).
        skip: fields without a flag.
        aliases: extra flag spellings per field, e.g. ``{"dataset": ("--data",)}``.
    """
    defaults = defaults if defaults is not None else cls()
    hints = typing.get_type_hints(cls)
    aliases = aliases or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = _base_type(hints[f.name])
        default = getattr(defaults, f.name)
        text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["help"] = f"{text} (default: {'on' if default else 'off'})"
        elif typing.get_origin(hint) is tuple:
            kwargs["type"] = _csv
            kwargs["metavar"] = "A,B,..."
            kwargs["help"] = f"{text}; comma-separated (default: {','.join(map(str, default)) or 'none'})"
        else:
            kwargs["type"] = hint if hint in (int, float, str) else str
            kwargs["help"] = f"{text} (default: {default})"
            choices = f.metadata.get("choices")
            if choices is not None:
                known = choices() if callable(choices) else choices
                kwargs["metavar"] = "{" + ",".join(known) + "}"
        parser.add_argument(flag_of(f.name), *aliases.get(f.name, ()), **kwargs)


def config_overrides(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields given on the command line, by name."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def config_from_arguments(cls: type[T], args: argparse.Namespace, base: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from ``base`` (e.g. a config file's fields) with the given flags on top."""
    return cls(**{**(base or {}), **config_overrides(cls, args)})


def name_flags_in(message: str, cls: type) -> str:
    """Turn a config error about field ``x`` into one about the flag ``--x`` (for the command line)."""
    for f in dataclasses.fields(cls):
        for prefix in (f"{f.name} must", f"{f.name} is"):
            if message.startswith(prefix):
                return flag_of(f.name) + message[len(f.name):]
    return message
