"""autodata._malloc: glibc told to keep freed memory, checked on the process's own pages."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from autodata._malloc import ENVIRONMENT, keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A child process (the setting is process-wide): malloc 64 MiB, touch every page, free it, and report
# how much of it is still resident. glibc serves a block that large with mmap and unmaps it at free,
# unless told to keep freed memory.
CHILD = textwrap.dedent("""
    import ctypes, os, sys
    from autodata._malloc import keep_freed_memory
    reason = keep_freed_memory() if sys.argv[1] == "keep" else "not asked"
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    page = os.sysconf("SC_PAGE_SIZE")
    def resident():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page
    size = 64 << 20
    before = resident()
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    touched = resident() - before
    libc.free(block)
    print(reason, touched >> 20, (resident() - before) >> 20)
""")


def _child(mode: str, **env: str) -> tuple[str, int, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True,
                         env={**clean, **env}).stdout.split()
    return " ".join(out[:-2]), int(out[-2]), int(out[-1])


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's")
def test_freed_memory_is_kept_only_when_asked():
    reason, touched, left = _child("default")
    assert touched >= 60 and left < 8, "glibc's default should unmap a freed 64 MiB block"
    reason, touched, left = _child("keep")
    assert reason == "None" and touched >= 60 and left >= 60, "kept: the freed block stays resident for reuse"


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's")
def test_the_users_allocator_settings_win():
    reason, _, left = _child("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert reason == "left to the environment (MALLOC_TRIM_THRESHOLD_ is set)" and left < 8


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_bad_threshold_is_refused(bad):
    with pytest.raises(ValueError, match="threshold must be a positive number of bytes"):
        keep_freed_memory(bad)
