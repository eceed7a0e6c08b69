"""Atomic file writes: every file that replaces an older one goes to a temporary name first.

A crash (or ``kill -9``) in the middle of a write leaves either the old file or the new one,
never a half-written file: the data is written to a temporary file in the same folder,
flushed and fsynced, then renamed over the target with :func:`os.replace` (atomic on POSIX
and on Windows for files on one volume).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a" / "b.json"
    >>> write_json_atomic(path, {"x": 1})
    >>> path.read_text()
    '{\\n "x": 1\\n}\\n'
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["append_line", "atomic_write_bytes", "atomic_write_text", "torch_save_atomic", "write_json_atomic"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename; creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], record: Any, indent: int | None = 1) -> None:
    """Write ``record`` as JSON (NaN and infinities refused: they are not JSON) atomically."""
    atomic_write_text(path, json.dumps(record, indent=indent, allow_nan=False) + "\n")


def torch_save_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically (a checkpoint is never half-written)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line (a JSON-lines record) and fsync it: a crash loses at most that line.

    A reader of such a file must ignore a last line without its newline (a torn write).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())
