"""Long strings made while other threads run: the copying runs without the GIL.

A ``str`` is one block of memory, so joining, slicing or stripping a long one copies all of
it, in one call that holds the GIL: for 50 MB, 20 to 30 ms on a 2-core machine, during which
the event loop (in another thread) cannot run, even though the copy runs in a worker thread.
``join`` and ``strip`` here make the same string the way CPython's own C code builds one:
they allocate it empty (``PyUnicode_New``, the GIL held for a moment) and copy each piece in
with ``ctypes.memmove``, a foreign call that releases the GIL. The page faults of the new
memory and the copy itself then run while the event loop runs; nobody sees the string before
it is complete.

This relies on CPython's layout of a compact string: its characters right after a header of
known size, 1, 2 or 4 bytes each, the narrowest width that holds its largest character. Each
piece is checked (exact ``str``, size as the layout says) and a self-check at import builds
strings of every width and compares them with ``"".join``. Whenever a check fails, off
CPython, for results under ``LONG_CHARS`` and for pieces under ``MEAN_PIECE_CHARS`` on
average, the plain ``str.join`` or ``str.strip`` runs.
"""

from __future__ import annotations

import ctypes
import sys
from typing import TYPE_CHECKING

from tracehint._limits import strip_span

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["LONG_CHARS", "MEAN_PIECE_CHARS", "join", "strip"]

LONG_CHARS = 1024 * 1024
"""A result this long or longer is copied a piece at a time without the GIL."""
MEAN_PIECE_CHARS = 64 * 1024
"""Pieces shorter than this on average are joined by ``str``: each ``memmove`` is a foreign
call of a few microseconds (a 2 MB text with thousands of secrets cut out took 220 ms instead
of 80), and only long pieces make a long copy."""

# Header sizes of a compact ASCII string and of a compact non-ASCII one: ``getsizeof`` of a
# 1-character string is the header, the character and the terminating NUL.
_ASCII_HEADER = sys.getsizeof("a") - 2
_WIDE_HEADER = sys.getsizeof("\xe9") - 2
# The largest character of each width (0: ASCII): what ``PyUnicode_New`` makes room for.
_MAXCHAR = {0: 0x7F, 1: 0xFF, 2: 0xFFFF, 4: 0x10FFFF}
# How to get a narrower piece's characters at a wider width (one short call per piece).
_WIDEN = {2: "utf-16-le", 4: "utf-32-le"}

_Span = tuple[str, int, int]


def _most_pieces(size: int) -> int:
    """How many pieces a result of ``size`` characters is copied from at most, without the GIL."""
    return max(size // MEAN_PIECE_CHARS, 2)


def _width(piece: str) -> int | None:
    """Bytes per character of ``piece`` (0: ASCII); ``None`` unless its layout is as expected.

    A subclass, a string with a cached UTF-8 copy or a legacy string has another size.
    """
    if type(piece) is not str:
        return None
    if piece.isascii():
        return 0 if sys.getsizeof(piece) == _ASCII_HEADER + len(piece) + 1 else None
    width = (sys.getsizeof(piece) - _WIDE_HEADER) // (len(piece) + 1)
    if width in (1, 2, 4) and sys.getsizeof(piece) == _WIDE_HEADER + (len(piece) + 1) * width:
        return width
    return None


def _header(width: int) -> int:
    return _ASCII_HEADER if width == 0 else _WIDE_HEADER


def _unicode_new() -> Callable[[int, int], str] | None:
    """CPython's ``PyUnicode_New`` (the GIL held), as a function of our own; ``None`` off it.

    A prototype of our own: setting ``restype`` on ``ctypes.pythonapi.PyUnicode_New`` would
    change it for every other user of ``ctypes.pythonapi`` in the process.
    """
    if sys.implementation.name != "cpython":
        return None
    try:
        prototype = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_ssize_t, ctypes.c_uint32)
        new: Callable[[int, int], str] = prototype(("PyUnicode_New", ctypes.pythonapi))
    except (AttributeError, OSError):
        return None
    return new


_NEW = _unicode_new()


def _new(size: int, width: int) -> str:
    """An empty string of ``size`` characters of ``width``, to be filled before it is seen."""
    assert _NEW is not None  # noqa: S101 -- only called when _check found it
    return _NEW(size, _MAXCHAR[width])


def _copied(spans: Sequence[_Span], widths: Sequence[int], width: int) -> str | None:
    """The spans' characters end to end, in a new string of ``width`` (the spans' widest).

    ``None`` if a narrower span does not widen to exactly ``width`` bytes per character
    (never seen; checked before anything is written past the span's place).
    """
    size = max(width, 1)
    text = _new(sum(stop - start for _, start, stop in spans), width)
    at = id(text) + _header(width)
    for (piece, start, stop), own in zip(spans, widths, strict=True):
        count = (stop - start) * size
        if max(own, 1) == size:  # the same bytes per character: straight from the piece
            ctypes.memmove(at, id(piece) + _header(own) + start * size, count)
        else:
            wide = piece[start:stop].encode(_WIDEN[size], "surrogatepass")
            if len(wide) != count:
                return None
            ctypes.memmove(at, wide, count)
        at += count
    return text


def _check() -> bool:
    """Whether ``_copied`` makes exactly what ``"".join`` makes, for every width."""
    samples = ["ab", "c\xe9", "\u0101d", "\U0001f600e", "\ud800"]
    try:
        for first in samples:
            for second in samples:
                for pieces in ([first, second], [second, "xyz", first]):
                    widths = [_width(piece) for piece in pieces]
                    if None in widths:
                        return False
                    known = [width for width in widths if width is not None]
                    spans = [(piece, 0, len(piece)) for piece in pieces]
                    made = _copied(spans, known, max(known))
                    expected = "".join(pieces)
                    if made is None or made != expected:
                        return False
                    if sys.getsizeof(made) != sys.getsizeof(expected):
                        return False
    except (AttributeError, OSError, ValueError, TypeError):
        return False
    return True


_ENABLED = _NEW is not None and _check()


def join(pieces: Sequence[str], sep: str = "", *, min_chars: int = LONG_CHARS) -> str:
    """``sep.join(pieces)``; a result of ``min_chars`` or more is copied without the GIL.

    Call it in a worker thread: during the copies, the event loop runs.
    """
    size = sum(map(len, pieces))
    copies = 2 * len(pieces) - 1 if sep else len(pieces)  # a separator between two pieces
    if not _ENABLED or size < min_chars or not 2 <= copies <= _most_pieces(size):
        return sep.join(pieces)  # one piece is returned as it is: nothing to copy
    if sep:
        pieces = [item for piece in pieces for item in (sep, piece)][1:]
    widths = [_width(piece) for piece in pieces]
    known = [width for width in widths if width is not None]
    if len(known) != len(widths):
        return "".join(pieces)
    made = _copied([(piece, 0, len(piece)) for piece in pieces], known, max(known))
    return made if made is not None else "".join(pieces)


def strip(text: str, start: int = 0, *, min_chars: int = LONG_CHARS) -> str:
    """``text[start:].strip()``; from ``min_chars`` or more, copied without the GIL.

    Call it in a worker thread: during the copy, the event loop runs.
    """
    if not _ENABLED or len(text) - start < min_chars:
        return text[start:].strip()
    begin, end = strip_span(text, start)
    width = _width(text)
    # When all that is cut off is ASCII, what is kept needs the text's own width.
    if width is None or not (text[:begin].isascii() and text[end:].isascii()):
        return text[start:].strip()
    made = _copied([(text, begin, end)], [width], width)
    return made if made is not None else text[start:].strip()
