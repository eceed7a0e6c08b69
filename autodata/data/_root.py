"""Where datasets live on disk, and the errors raised when they are missing or broken.

A data root is taken from the ``root=`` argument, or else from the ``AUTODATA_DATA``
environment variable. The library never guesses a path of its own.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV_VAR", "DatasetNotFoundError", "CorruptDatasetError", "resolve_root"]

DATA_ENV_VAR = "AUTODATA_DATA"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing or incomplete under the data root."""


class CorruptDatasetError(ValueError):
    """A dataset file exists but cannot be read (bad archive, bad header, wrong size)."""


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """Returns the data root: ``root`` if given, else ``$AUTODATA_DATA``.

    Args:
        root: A folder (or, for some readers, an archive) holding the data, or ``None``.

    Returns:
        The root as a :class:`~pathlib.Path` (not checked for existence here).

    Raises:
        ValueError: If ``root`` is ``None`` and ``AUTODATA_DATA`` is unset or empty.

    Example:
        >>> resolve_root("/data")
        PosixPath('/data')
    """
    if root is None:
        env = os.environ.get(DATA_ENV_VAR, "")
        if not env:
            raise ValueError(
                f"No data root given: pass root=<folder with the datasets> or set the "
                f"{DATA_ENV_VAR} environment variable, but got root=None and "
                f"{DATA_ENV_VAR} unset."
            )
        root = env
    return Path(root).expanduser()
