"""glibc's allocator told to keep freed memory: a process setting, for command lines that own their process.

On a CPU, PyTorch frees a step's activations and asks for blocks of the same sizes again at the
next step. glibc hands large freed blocks back to the system (``munmap`` above its mmap
threshold, heap trimming above its trim threshold), so each step's large tensors come back as
fresh pages and their page faults (kernel time). A population trained as wide models
(:class:`~autodata.pba.GroupedPopulation`) has large activations: there keeping freed memory made
the engine 1.2x -> 1.5x the loop in training alone, and the whole ``autodata search schedule`` on
the embedded digits about 10% faster (BENCHMARKS.md, "Population Based Augmentation").

The setting is the one the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` make, applied from inside the process with ``mallopt``: only where the
C library is glibc, and never over what the user's environment already asks of the allocator.
A library does not change its host process's allocator; the command lines that run a search do
(``--no-keep-freed-memory`` turns it off).
"""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["KEEP_BYTES", "keep_freed_memory"]

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3

KEEP_BYTES = 1 << 30
"""The thresholds set: blocks up to 1 GiB come from the heap, and the heap keeps up to 1 GiB free."""

ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
"""Variables through which a user tunes glibc's allocator themselves: when one is set, it is left alone."""


def keep_freed_memory(threshold: int = KEEP_BYTES) -> str | None:
    """Tell glibc to keep up to ``threshold`` bytes of freed memory for reuse; ``None`` when done, else why not.

    Raises the mmap threshold (blocks below it come from the heap, not from fresh pages) and the
    trim threshold (the heap keeps that much free memory instead of returning it). Whatever it
    returns, the process works as before: this only changes where freed memory goes.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(f"threshold must be a positive number of bytes, but got {threshold!r}.")
    chosen = [name for name in ENVIRONMENT if os.environ.get(name)]
    if chosen:
        return f"left to the environment ({', '.join(chosen)} is set)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "the C library is not glibc"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "glibc's mallopt is not reachable"
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    value = min(threshold, 2**31 - 1)  # mallopt takes an int
    if not (mallopt(M_MMAP_THRESHOLD, value) and mallopt(M_TRIM_THRESHOLD, value)):
        return f"glibc refused a threshold of {value} bytes"
    return None
