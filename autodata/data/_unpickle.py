"""A restricted unpickler for CIFAR-style batches.

A pickle can run arbitrary code when loaded (``pickle`` resolves any global it names), and
even without a single global a few bytes can ask for a terabyte (``BINBYTES8`` announcing
2**40 bytes, a memo index of 2**32) or for tuples nested a million deep, which crash Python
when hashed. CIFAR batches hold only dicts, bytes, lists of ints and numpy arrays, so:

* one pass of :func:`pickletools.genops` over the opcodes comes first: every counted
  argument must fit in the data, memo indices must be plausible, and objects may nest at
  most :data:`MAX_DEPTH` levels (a CIFAR batch nests about 5);
* the unpickler admits exactly the globals that rebuild numpy arrays, numpy scalars and
  bytes, and refuses the rest *before* calling anything. The admitted ones are checked
  stand-ins: an array is rebuilt with :func:`numpy.frombuffer` from its pickled state only
  when its dtype is a plain number type and its bytes match its shape exactly, so nothing
  is ever allocated from a shape alone;
* no single allocation may exceed :data:`MAX_ALLOCATION_BYTES` (512 MiB; the largest CIFAR
  file, ``cifar-100-python/train``, holds 50000 x 3072 bytes of images, about 147 MiB).

Arrays come back read-only (views of the pickled bytes) and must sit in a dict or a list.
"""
from __future__ import annotations

import io
import math
import pickle
import pickletools
import reprlib
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["MAX_ALLOCATION_BYTES", "MAX_DEPTH", "UnsafePickleError", "restricted_loads"]

MAX_ALLOCATION_BYTES = 512 * 2**20
MAX_DEPTH = 64
_DTYPE_NAMES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"})
_MUTATORS = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60
_short = _REPR.repr  # error messages stay short whatever the file holds
_CAP = f"{MAX_ALLOCATION_BYTES} bytes (512 MiB), the most autodata allocates for one object of a CIFAR file"


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something the restricted unpickler refuses: a global it does not
    admit, an allocation beyond :data:`MAX_ALLOCATION_BYTES`, or nesting beyond :data:`MAX_DEPTH`."""


# --- the pass over the opcodes ---------------------------------------------------------------


def _check_opcodes(data: bytes, source: str) -> None:
    """Simulates the unpickler's stack with one depth cell per object (shared through the memo)."""
    stack: list[list[int]] = []
    marks: list[int] = []
    memo: dict[int, list[int]] = {}

    def pop(n: int, pos: int) -> list[list[int]]:
        if len(stack) - n < (marks[-1] if marks else 0):
            raise pickle.UnpicklingError(f"{source}: not a valid pickle (stack underflow at byte {pos}).")
        taken = stack[len(stack) - n:]
        del stack[len(stack) - n:]
        return taken

    try:
        for op, arg, pos in pickletools.genops(data):
            name = op.name
            if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                index = len(memo) if name == "MEMOIZE" else arg
                if index > pos or not stack:  # a pickler numbers its memo entries 0, 1, 2, ...
                    raise UnsafePickleError(f"{source}: refusing the memo index {index} at byte {pos}.")
                memo[index] = stack[-1]
                continue
            if name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in memo:
                    raise pickle.UnpicklingError(f"{source}: not a valid pickle (memo {arg} unset at byte {pos}).")
                stack.append(memo[arg])
                continue
            if name == "FRAME" and arg > len(data) - pos:
                raise pickle.UnpicklingError(f"{source}: not a valid pickle (a frame of {arg} bytes at byte {pos}).")
            before, after = op.stack_before, op.stack_after
            if pickletools.markobject in before:
                if not marks:
                    raise pickle.UnpicklingError(f"{source}: not a valid pickle (no mark at byte {pos}).")
                items = stack[marks[-1]:]
                del stack[marks.pop():]
                taken = pop(before.index(pickletools.markobject), pos) + items
            else:
                taken = pop(len(before), pos)
            if pickletools.markobject in after:
                marks.append(len(stack))
            elif name == "DUP":
                stack.extend(taken * 2)
            elif name in _MUTATORS:  # the container (first taken) now also holds the rest
                cell = taken[0]
                cell[0] = max([cell[0]] + [1 + c[0] for c in taken[1:]])
                stack.append(cell)
            else:
                depth = 1 + max(c[0] for c in taken) if taken else 0
                stack.extend([depth] for _ in after)
            if stack and stack[-1][0] > MAX_DEPTH:
                raise UnsafePickleError(
                    f"{source}: refusing objects nested more than {MAX_DEPTH} levels deep (at byte {pos}); "
                    f"a CIFAR batch nests about 5, and deeper tuples can crash Python when hashed."
                )
    except ValueError as err:  # genops: unknown opcode, an argument longer than the data left, no STOP
        raise pickle.UnpicklingError(f"{source}: not a valid pickle ({err}).") from None


# --- the admitted globals, each a checked stand-in -------------------------------------------


class _Admitted:
    """One admitted global: calls ``fn(loader, *args)``; a BUILD opcode cannot re-aim it."""

    __slots__ = ("fn", "loader", "name")

    def __init__(self, name: str, fn: Callable[..., Any], loader: _RestrictedUnpickler) -> None:
        for key, value in (("name", name), ("fn", fn), ("loader", loader)):
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: object) -> None:
        raise UnsafePickleError(f"{self.loader.source}: refusing to set attributes of {self.name}.")

    def __call__(self, *args: Any) -> Any:
        return self.fn(self.loader, *args)

    def __repr__(self) -> str:
        return self.name


class _DtypeStandIn:
    """A plain number dtype; its pickled state may only set the byte order."""

    __slots__ = ("dtype", "used")
    __hash__ = None  # type: ignore[assignment]  # never a dict key: it must be replaced

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype, self.used = dtype, False

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or any(s is not None for s in state[2:5]):
            raise ValueError(f"a dtype state must be (version, byte order, None, None, None, ...), but got {_short(state)}.")
        order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]
        if order not in ("<", ">", "=", "|"):
            raise ValueError(f"a dtype byte order must be one of '<>=|', but got {_short(order)}.")
        self.dtype = self.dtype.newbyteorder(order) if order in "<>" else self.dtype


class _ArrayStandIn:
    """Takes an ndarray's place until BUILD hands it the state ``(1, shape, dtype, fortran, bytes)``."""

    __slots__ = ("array", "loader")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, loader: _RestrictedUnpickler) -> None:
        self.array: np.ndarray | None = None
        self.loader = loader

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise ValueError(f"an array state must be (1, shape, dtype, fortran, bytes), but got {_short(state)}.")
        shape, dtype, fortran, raw = state
        if not isinstance(shape, tuple) or len(shape) > 32 or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ValueError(f"an array shape must be a tuple of ints >= 0, but got {_short(shape)}.")
        if not isinstance(fortran, int):
            raise ValueError(f"an array's fortran flag must be a bool, but got {_short(fortran)}.")
        dt = _dtype_of(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        if nbytes > MAX_ALLOCATION_BYTES:
            raise UnsafePickleError(
                f"{self.loader.source}: refusing an array of shape {shape} and dtype {dt} "
                f"({nbytes} bytes): more than {_CAP}."
            )
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != nbytes:
            got = f"{len(raw)} bytes" if isinstance(raw, (bytes, bytearray)) else type(raw).__name__
            raise ValueError(f"an array of shape {shape} and dtype {dt} needs {nbytes} bytes of data, but got {got}.")
        self.array = np.frombuffer(raw, dtype=dt).reshape(shape, order="F" if fortran else "C")


def _dtype_of(value: object) -> np.dtype:
    if not isinstance(value, _DtypeStandIn):
        raise ValueError(f"an array or scalar dtype must be a pickled numpy dtype, but got {type(value).__name__}.")
    value.used = True
    return value.dtype


def _dtype(loader: _RestrictedUnpickler, name: object, align: object = False, copy: object = True) -> _DtypeStandIn:
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    if text not in _DTYPE_NAMES:
        raise UnsafePickleError(
            f"{loader.source}: refusing the dtype {_short(name)}; admitted: {sorted(_DTYPE_NAMES)}."
        )
    stand_in = _DtypeStandIn(np.dtype(text))
    loader.stand_ins.append(stand_in)
    return stand_in


def _ndarray(loader: _RestrictedUnpickler, *args: Any) -> None:
    raise UnsafePickleError(
        f"{loader.source}: refusing to call numpy.ndarray; a pickled array is rebuilt only "
        f"by numpy's _reconstruct(ndarray, (0,), b'b') and its state."
    )


def _reconstruct(loader: _RestrictedUnpickler, cls: object, shape: object, code: object) -> _ArrayStandIn:
    if not (isinstance(cls, _Admitted) and cls.fn is _ndarray and shape == (0,) and code in (b"b", "b")):
        raise UnsafePickleError(
            f"{loader.source}: refusing _reconstruct{_short((cls, shape, code))}; numpy pickles "
            f"arrays as _reconstruct(ndarray, (0,), b'b')."
        )
    stand_in = _ArrayStandIn(loader)
    loader.stand_ins.append(stand_in)
    return stand_in


def _scalar(loader: _RestrictedUnpickler, dtype: object, data: object) -> Any:
    dt = _dtype_of(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise ValueError(f"a numpy scalar of dtype {dt} needs {dt.itemsize} bytes, but got {_short(data)}.")
    return np.frombuffer(data, dtype=dt)[0]


def _encode(loader: _RestrictedUnpickler, text: object, encoding: object = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(
            f"{loader.source}: refusing _codecs.encode({type(text).__name__}, {_short(encoding)}); "
            f"a pickle encodes bytes as latin-1 text."
        )
    return text.encode("latin-1")


def _bytearray(loader: _RestrictedUnpickler, *args: Any) -> bytearray:
    if len(args) == 2 and isinstance(args[0], str):
        return bytearray(_encode(loader, *args))
    if not args or (len(args) == 1 and isinstance(args[0], (bytes, bytearray))):
        return bytearray(*args)
    if len(args) == 1 and isinstance(args[0], int) and not isinstance(args[0], bool):
        if not 0 <= args[0] <= MAX_ALLOCATION_BYTES:
            raise UnsafePickleError(f"{loader.source}: refusing bytearray({args[0]}): more than {_CAP}.")
        return bytearray(args[0])
    raise UnsafePickleError(f"{loader.source}: refusing bytearray{_short(args)}; it is made from bytes.")


def _bytes(loader: _RestrictedUnpickler, *args: Any) -> bytes:
    if not args or (len(args) == 1 and isinstance(args[0], (bytes, bytearray))):
        return bytes(*args)  # protocol 2 writes b"" as bytes()
    raise UnsafePickleError(f"{loader.source}: refusing bytes{_short(args)}; it is made from bytes.")


# (module, name) -> the checked stand-in; numpy 1.x and 2.x spell the module differently.
_ALLOWED: MappingProxyType[tuple[str, str], Callable[..., Any]] = MappingProxyType({
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): _ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,  # bytes under protocol 2
    ("builtins", "bytearray"): _bytearray,
    ("__builtin__", "bytearray"): _bytearray,
    ("builtins", "bytes"): _bytes,
    ("__builtin__", "bytes"): _bytes,
})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source
        self.stand_ins: list[_ArrayStandIn | _DtypeStandIn] = []

    def find_class(self, module: str, name: str) -> Any:
        fn = _ALLOWED.get((module, name))
        if fn is None:
            raise UnsafePickleError(
                f"{self.source}: refusing to unpickle the global '{module}.{name}'; "
                f"a CIFAR batch must contain only numpy arrays, lists and bytes "
                f"(admitted globals: {sorted(f'{m}.{n}' for m, n in _ALLOWED)})."
            )
        return _Admitted(f"{module}.{name}", fn, self)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: persistent ids are not allowed, but got {_short(pid)}.")


def _value(stand_in: _ArrayStandIn | _DtypeStandIn, source: str) -> Any:
    if isinstance(stand_in, _DtypeStandIn):
        stand_in.used = True
        return stand_in.dtype
    if stand_in.array is None:
        raise pickle.UnpicklingError(f"{source}: not a valid pickle (an array without its state).")
    return stand_in.array


def _put_in_place(obj: Any, loader: _RestrictedUnpickler) -> Any:
    """Replaces every stand-in held by a dict or a list (iteratively: cycles are fine)."""
    stand_ins = (_ArrayStandIn, _DtypeStandIn)
    if isinstance(obj, stand_ins):
        placed, obj = {id(obj)}, _value(obj, loader.source)
    else:
        placed = set()
    todo, seen = [obj], set()
    while todo:
        node = todo.pop()
        if id(node) in seen or not isinstance(node, (dict, list)):
            continue
        seen.add(id(node))
        for key, value in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(value, stand_ins):
                node[key] = _value(value, loader.source)
                placed.add(id(value))
            else:
                todo.append(value)
    lost = [s for s in loader.stand_ins if id(s) not in placed and not (isinstance(s, _DtypeStandIn) and s.used)]
    if lost:
        raise UnsafePickleError(
            f"{loader.source}: refusing a numpy {'array' if isinstance(lost[0], _ArrayStandIn) else 'dtype'} "
            f"held outside a "
            f"dict or a list; a CIFAR batch keeps its arrays as dict values."
        )
    return obj


def restricted_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickles ``data`` admitting only what CIFAR batches contain, within size limits.

    Args:
        data: The pickled bytes, at most :data:`MAX_ALLOCATION_BYTES`.
        source: A name for the data (a file path) used in error messages.

    Returns:
        The unpickled object; strings come back as ``bytes`` (``encoding="bytes"``) and
        numpy arrays as read-only arrays.

    Raises:
        UnsafePickleError: If the pickle names any other global (e.g. ``os.system``), asks
            for an allocation over :data:`MAX_ALLOCATION_BYTES` or nests deeper than
            :data:`MAX_DEPTH`; nothing it names is imported or called, and nothing is
            allocated first.
        pickle.UnpicklingError: If the data is not a valid pickle, or an array's, scalar's
            or dtype's pickled state is malformed; the message starts with ``source``.

    Example:
        >>> import pickle
        >>> restricted_loads(pickle.dumps({b"labels": [1, 2]}))
        {b'labels': [1, 2]}
    """
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"data must be bytes, but got {type(data).__name__}.")
    if len(data) > MAX_ALLOCATION_BYTES:
        raise UnsafePickleError(f"{source}: refusing {len(data)} bytes of pickle: more than {_CAP}.")
    _check_opcodes(bytes(data), source)
    loader = _RestrictedUnpickler(io.BytesIO(data), source)
    try:
        obj = loader.load()
    except pickle.UnpicklingError:
        raise
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, EOFError, OverflowError) as err:
        # e.g. REDUCE on something not callable, BUILD on bytes, a malformed array state
        raise pickle.UnpicklingError(f"{source}: not a valid pickle ({type(err).__name__}: {err}).") from err
    return _put_in_place(obj, loader)
