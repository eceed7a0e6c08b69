"""A restricted unpickler for CIFAR-style batches.

A pickle can run arbitrary code when loaded (``pickle`` resolves any global it names).
CIFAR batches hold only dicts, bytes, lists of ints and numpy arrays, so the unpickler
below admits exactly the globals needed to rebuild numpy arrays and refuses the rest
*before* calling anything.
"""
from __future__ import annotations

import io
import pickle
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "restricted_loads"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle named a global that the restricted unpickler does not admit."""


def _reconstruct() -> Any:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _scalar() -> Any:
    try:
        from numpy._core.multiarray import scalar as fn
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar as fn
    return fn


# (module, name) -> zero-argument resolver; resolved lazily so that nothing is imported
# on behalf of an untrusted file.
_ALLOWED: MappingProxyType[tuple[str, str], Any] = MappingProxyType({
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: __import__("codecs").encode,  # bytes under protocol 2
    ("builtins", "bytearray"): lambda: bytearray,
    ("__builtin__", "bytearray"): lambda: bytearray,
})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        resolver = _ALLOWED.get((module, name))
        if resolver is None:
            raise UnsafePickleError(
                f"{self._source}: refusing to unpickle the global '{module}.{name}'; "
                f"a CIFAR batch must contain only numpy arrays, lists and bytes "
                f"(admitted globals: {sorted(f'{m}.{n}' for m, n in _ALLOWED)})."
            )
        return resolver()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: persistent ids are not allowed, but got {pid!r}.")


def restricted_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickles ``data`` admitting only the globals that CIFAR batches contain.

    Args:
        data: The pickled bytes.
        source: A name for the data (a file path) used in error messages.

    Returns:
        The unpickled object; strings come back as ``bytes`` (``encoding="bytes"``).

    Raises:
        UnsafePickleError: If the pickle names any other global (e.g. ``os.system``);
            nothing it names is imported or called.
        pickle.UnpicklingError: If the data is not a valid pickle.

    Example:
        >>> import pickle
        >>> restricted_loads(pickle.dumps({b"labels": [1, 2]}))
        {b'labels': [1, 2]}
    """
    return _RestrictedUnpickler(io.BytesIO(data), source).load()
