"""What an input path is: a regular file to read, or why it cannot be read.

Only regular files are read. A FIFO, a socket or a device found as input is refused with its
kind named, never opened: opening a FIFO blocks until a writer comes, which may be never, and a
device may never end. ``open_regular`` checks again on the opened descriptor (a file may be
replaced between a check and the open) and opens without blocking. Symlinks that lead nowhere
are told apart from missing paths, so an input issue says what is wrong.

Everything here is blocking: call it from a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

__all__ = ["NotRegularFileError", "broken_link_reason", "not_regular_reason", "open_regular"]

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


class NotRegularFileError(OSError):
    """An input path is something other than a regular file (a FIFO, a device, ...)."""


def not_regular_reason(mode: int) -> str | None:
    """Why a file of ``mode`` (``st_mode``) is not read; ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "something else")
    return f"not a regular file but {kind}; only regular files and folders are read"


def broken_link_reason(path: str) -> str | None:
    """Why ``path``, a symlink that cannot be followed, leads nowhere; ``None`` otherwise."""
    try:
        os.stat(path)  # noqa: PTH116 -- str paths
    except OSError as exc:
        if not os.path.islink(path):  # noqa: PTH114 -- str paths
            return None
        if exc.errno == errno.ELOOP:
            return "symlink loop: the link never leads to a file or folder"
        if exc.errno == errno.ENOENT:
            try:
                target = os.readlink(path)  # noqa: PTH115 -- str paths
            except OSError:
                target = "?"
            return f"dangling symlink: its target {target} does not exist"
        return f"cannot follow symlink: {exc.strerror or exc}"
    return None


def _refuse_unless_regular(mode: int, path: str) -> None:
    reason = not_regular_reason(mode)
    if reason is not None:
        raise NotRegularFileError(errno.EINVAL, reason, path)


def open_regular(path: str) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file; raise ``OSError`` otherwise.

    A non-regular file raises ``NotRegularFileError`` (its ``strerror`` says what it is)
    without being read; the open itself never blocks (``O_NONBLOCK``), even on a FIFO.
    """
    # Refused before opening: opening a device may have effects of its own.
    _refuse_unless_regular(os.stat(path).st_mode, path)  # noqa: PTH116 -- str paths
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_CLOEXEC", 0))
    try:
        # Checked again on what was opened: the path may have been replaced meanwhile.
        _refuse_unless_regular(os.fstat(fd).st_mode, path)
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
