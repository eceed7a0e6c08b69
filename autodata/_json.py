"""Reading JSON files that a user wrote by hand: every failure is a ValueError naming the file.

:func:`json.loads` alone fails in ways a user cannot act on: a ``RecursionError`` on deeply
nested input, a bare ``UnicodeDecodeError``, an ``OverflowError`` or Python's int digit-limit
message on huge numbers. :func:`read_json_text` and :func:`read_json_file` bound the nesting
depth and the length of numbers before parsing and refuse non-finite numbers.

Example:
    >>> read_json_text('{"lr": 0.1}', "config.json")
    {'lr': 0.1}
    >>> read_json_text('[' * 1000, "config.json")
    Traceback (most recent call last):
    ...
    ValueError: config.json must nest JSON arrays and objects at most 64 deep, but got more.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NUMBER_CHARS", "read_json_file", "read_json_text"]

MAX_DEPTH = 64
MAX_NUMBER_CHARS = 64
MAX_FILE_BYTES = 64 * 1024 * 1024


def _depth_ok(text: str) -> bool:
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _number(source: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(token: str) -> Any:
        if len(token) > MAX_NUMBER_CHARS:
            raise ValueError(
                f"{source} must hold numbers of at most {MAX_NUMBER_CHARS} characters, but got one of "
                f"{len(token)} characters ({token[:20]}...)."
            )
        value = convert(token)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{source} must hold finite numbers, but got {token} (too large for a float).")
        return value

    return parse


def _constant(source: str) -> Callable[[str], Any]:
    def refuse(token: str) -> Any:
        raise ValueError(f"{source} must hold finite numbers, but got {token} (not valid JSON).")

    return refuse


def _no_duplicates(source: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"{source} must name each field once, but got {key!r} twice.")
            out[key] = value
        return out

    return build


def read_json_text(text: str, source: str = "<json>") -> Any:
    """Parse JSON ``text``; ``source`` (a file name) starts every error message."""
    if not _depth_ok(text):
        raise ValueError(f"{source} must nest JSON arrays and objects at most {MAX_DEPTH} deep, but got more.")
    try:
        return json.loads(
            text,
            parse_int=_number(source, int),
            parse_float=_number(source, float),
            parse_constant=_constant(source),
            object_pairs_hook=_no_duplicates(source),
        )
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{source} must be valid JSON, but got an error at line {err.lineno}, column {err.colno}: {err.msg}."
        ) from None


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """Read and parse a UTF-8 JSON file; a missing, huge, binary or malformed file is a clear error."""
    source = os.fspath(path)
    try:
        size = os.path.getsize(source)
    except FileNotFoundError:
        raise FileNotFoundError(f"{source} does not exist; check the path.") from None
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{source} must be a JSON file of at most {MAX_FILE_BYTES} bytes, but got {size} bytes.")
    with open(source, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{source} must be UTF-8 encoded JSON, but byte {err.start} is {raw[err.start:err.start + 1]!r}; "
            f"is it the right file?"
        ) from None
    return read_json_text(text, source)
