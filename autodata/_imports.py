"""Optional heavy dependencies, imported lazily with a message that names the extra to install.

``import autodata`` never imports Optuna, Ray, matplotlib or TensorBoard; the parts that need
them call :func:`require` at the point of use.

Example:
    >>> require("json", extra="none").__name__
    'json'
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message says which ``autodata[extra]`` brings it."""


def require(module: str, *, extra: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install 'autodata[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        what = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"{module} is needed{what} but is not installed; install it with "
            f"pip install 'autodata[{extra}]' (or pip install {module.split('.')[0]})."
        ) from error
