"""Reading JSON that a user wrote by hand: every failure is a ValueError naming the file.

:func:`json.loads` alone fails in ways a user cannot act on: a ``RecursionError`` on deeply
nested input, a bare ``UnicodeDecodeError``, Python's int digit-limit message (advising
``sys.set_int_max_str_digits``) on a 5,000-digit number. This is the one reader of autodata's
hand-editable files (configs, policies, schedules):

* nesting deeper than :data:`MAX_DEPTH` is refused before parsing;
* bytes that are not UTF-8 are refused with the offset of the first bad byte;
* a number literal longer than :data:`MAX_NUMBER_CHARS` becomes a :class:`LongNumber`, a
  value no field accepts, so that the check of the field that holds it names the field;
  numbers too large for a float become ``inf`` and ``NaN`` stays ``nan``: the field checks
  refuse them by name;
* an object that repeats a field is refused.

Example:
    >>> read_json_text('{"lr": 0.1}', "config.json")
    {'lr': 0.1}
    >>> read_json_text('[' * 1000, "config.json")
    Traceback (most recent call last):
    ...
    ValueError: config.json must nest JSON arrays and objects at most 64 deep, but got more.
"""
from __future__ import annotations

import collections
import json
import os
from typing import Any

__all__ = ["LongNumber", "MAX_DEPTH", "MAX_NUMBER_CHARS", "read_json_file", "read_json_text", "short_repr"]

MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100  # repr of any float needs at most 24
MAX_FILE_BYTES = 64 * 1024 * 1024


class LongNumber:
    """Stands for a number literal longer than :data:`MAX_NUMBER_CHARS` characters.

    It is never a valid value, so the check of the field holding it names the field.
    """

    __slots__ = ("chars",)

    def __init__(self, chars: int) -> None:
        self.chars = chars

    def __repr__(self) -> str:
        return f"a number literal of {self.chars} characters (at most {MAX_NUMBER_CHARS} are read)"


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (error messages stay short on huge input)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _parse_int(text: str) -> int | LongNumber:
    return int(text) if len(text) <= MAX_NUMBER_CHARS else LongNumber(len(text))


def _parse_float(text: str) -> float | LongNumber:
    return float(text) if len(text) <= MAX_NUMBER_CHARS else LongNumber(len(text))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        counts = collections.Counter(k for k, _ in pairs)
        repeated = sorted(k for k, n in counts.items() if n > 1)
        raise ValueError(f"must not repeat a field, but got {short_repr(repeated)} more than once in one object.")
    return out


def read_json_text(text: str | bytes, source: str = "<json>") -> Any:
    """Parse JSON ``text`` (a str or UTF-8 bytes); ``source`` (a file name) starts every error."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{source} must be UTF-8 encoded JSON, but byte {text[err.start]:#04x} at offset {err.start} "
                f"is not valid UTF-8; is it the right file? Save it as UTF-8."
            ) from None
    elif not isinstance(text, str):
        raise TypeError(f"text must be a str or bytes, but got {type(text).__name__}.")
    if not _depth_ok(text):
        raise ValueError(f"{source} must nest JSON arrays and objects at most {MAX_DEPTH} deep, but got more.")
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{source} must be valid JSON, but got an error at line {err.lineno}, column {err.colno}: {err.msg}."
        ) from None
    except ValueError as err:  # from _no_duplicates
        raise ValueError(f"{source} {err}") from None


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
    return read_json_text(raw, source)
