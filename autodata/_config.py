"""What every frozen config dataclass of autodata shares: exact JSON round trips, atomic files.

A config class is a frozen dataclass that validates itself in ``__post_init__``; mixing in
:class:`JsonConfig` gives it ``to_dict``/``from_dict`` (unknown fields refused, errors prefixed
with the source, e.g. the file name), ``to_json``/``from_json``, ``save`` (atomic) and ``load``
(through :mod:`autodata._json`, the one reader of hand-editable JSON) and ``replace``.
A field that is itself a config (``PBASearchConfig.train``) round-trips as a nested object.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Small(JsonConfig):
    ...     steps: int = 3
    >>> Small.from_json(Small().to_json()) == Small()
    True
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, TypeVar

from autodata._io import write_json_atomic
from autodata._json import read_json_file, read_json_text

__all__ = ["JsonConfig"]

C = TypeVar("C", bound="JsonConfig")


class JsonConfig:
    """Mixin for frozen config dataclasses (see the module docstring)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists, nested configs as objects); :meth:`from_dict` inverts it."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def _nested(cls) -> dict[str, type[JsonConfig]]:
        """Fields that are configs themselves, by name (override when there are any)."""
        return {}

    @classmethod
    def from_dict(cls: type[C], data: Any, source: str = "config", saved: bool = False) -> C:
        """Build from a dict; an unknown field or a bad value is an error that starts with ``source``.

        An absent field takes its default; with ``saved`` (``data`` is a config written earlier, as
        :meth:`load` reads) the value it meant when ``data`` was saved (:meth:`absent_fields`).
        """
        if not isinstance(data, dict):
            raise ValueError(f"{source} must be a JSON object of config fields, but got {type(data).__name__}.")
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"{source}: unknown config field(s) {unknown}; the fields are {names}.")
        fields = {**data, **cls.absent_fields(data)} if saved else dict(data)
        for name, sub in cls._nested().items():
            if name in fields and not isinstance(fields[name], sub):
                fields[name] = sub.from_dict(fields[name], f"{source}: {name}", saved)
        try:
            return cls(**fields)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def _meant_when_absent(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Values that fields added later had in a config saved before them, where that is not the
        field's default (override when there are any): what the saved config meant."""
        return {}

    @classmethod
    def absent_fields(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The fields ``data`` (a saved config) lacks, each with the value it had when ``data`` was
        saved: its default, unless :meth:`_meant_when_absent` says otherwise.

        A config, checkpoint or study saved before a field existed is read with these; nested
        configs fill theirs when they are built."""
        meant = cls._meant_when_absent(data)
        absent = [f for f in dataclasses.fields(cls) if f.name not in data and f.name not in cls._nested()]  # type: ignore[arg-type]
        return {f.name: meant[f.name] if f.name in meant else _default(f) for f in absent
                if f.name in meant or _has_default(f)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_json(cls: type[C], text: str | bytes, source: str = "config") -> C:
        return cls.from_dict(read_json_text(text, source), source, saved=True)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the config as JSON, atomically."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls: type[C], path: str | os.PathLike[str]) -> C:
        return cls.from_dict(read_json_file(path), os.fspath(path), saved=True)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})  # type: ignore[arg-type]
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}.")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _has_default(field: dataclasses.Field[Any]) -> bool:
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return _jsonable(field.default_factory())
    return _jsonable(field.default)


def _jsonable(value: Any) -> Any:
    if isinstance(value, JsonConfig):
        return value.to_dict()
    return list(value) if isinstance(value, tuple) else value
