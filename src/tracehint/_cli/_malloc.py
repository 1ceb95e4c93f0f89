"""Fewer glibc malloc arenas for the command line: peak memory that does not grow with the input.

glibc gives each thread that allocates an arena of its own (up to 8 per core). The pipeline's
worker threads read files, decode large lines and serialise large traces, so their blocks end
up spread over several arenas whose free space the other threads cannot reuse: on the corpus
x20, peak RSS was 88 to 97 MB with the default arenas, 76 to 84 MB with two and 74 MB with one,
against 68 to 74 MB on the corpus x2 (no change in CPU time). Almost every allocation happens
with the GIL held, so one arena shared by every thread is not contended.

Only the ``tracehint`` command does this, for its own process: a library must not change how
the program that imports it allocates memory. ``MALLOC_ARENA_MAX`` in the environment (read by
glibc itself) is left to win, and other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["ARENAS", "limit_malloc_arenas"]

ARENAS = 1
"""Arenas the command line allows: glibc's main arena, shared by every thread."""
_M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter number for the most arenas (``malloc.h``)."""


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Allow at most ``arenas`` glibc malloc arenas in this process; whether it was set.

    ``False`` off Linux, without glibc's ``mallopt``, or when ``MALLOC_ARENA_MAX`` is set.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
