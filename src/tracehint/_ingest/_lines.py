"""Bounded line splitting of JSONL bytes fed in chunks (never a whole file in memory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "BATCH_BYTES",
    "BATCH_LINES",
    "READ_AGAIN_BYTES",
    "Line",
    "LineSplitter",
    "OverlongLine",
    "batches",
    "split_lines",
]


READ_AGAIN_BYTES = 1024 * 1024
"""Bytes of a long line read again per ``read_at`` call."""


@dataclass(frozen=True, slots=True)
class Line:
    """One input line (without its newline) and its 1-based number."""

    number: int
    data: bytes


@dataclass(frozen=True, slots=True)
class OverlongLine:
    """A line longer than the limit: skipped without being held in memory."""

    number: int
    size: int


class LineSplitter:
    """Split a byte stream fed in chunks into numbered lines, bounded by ``max_line_bytes``.

    Empty and whitespace-only lines are dropped. A line over ``max_line_bytes`` is reported
    as ``OverlongLine`` and its bytes are discarded as they arrive, so memory stays bounded
    by the limit. The last line may lack its newline (or be truncated): it is still a line.

    With ``read_at`` (reading a file), a line that reaches ``defer_bytes`` is not joined from
    its chunks either: its bytes are discarded as they arrive too, and once its end is found
    the line is read again with ``read_at(size, offset)`` (``os.pread``, without the GIL), a
    ``READ_AGAIN_BYTES`` slice per call, and the slices are joined (``bytes.join`` copies
    without the GIL from 1 MiB on). One ``pread`` of 50 MB does not hold the GIL either, but
    with the machine's other core busy it stalled the event loop for 20 to 45 ms on a 2-core
    Linux VM: the kernel copies the whole read before the thread gives its core up.
    """

    __slots__ = (
        "_defer",
        "_deferred",
        "_max",
        "_number",
        "_offset",
        "_pending",
        "_read_at",
        "_skipping",
        "_start",
    )

    def __init__(
        self,
        max_line_bytes: int,
        *,
        defer_bytes: int | None = None,
        read_at: Callable[[int, int], bytes] | None = None,
    ) -> None:
        self._max = max_line_bytes
        self._number = 0
        self._pending = bytearray()
        self._skipping = 0  # > 0 while discarding an overlong line: bytes seen so far
        self._defer = defer_bytes if read_at is not None else None
        self._read_at = read_at
        self._offset = 0  # bytes fed so far
        self._deferred = 0  # > 0 while passing over a long line to read again: its bytes so far
        self._start = 0  # where that line starts

    def _long_line(self, number: int, size: int) -> Line | None:
        """The deferred line, read again whole (``None`` when it is only whitespace)."""
        assert self._read_at is not None  # noqa: S101 -- lines are deferred only with it
        read_at, start = self._read_at, self._start
        data = b"".join(
            read_at(min(READ_AGAIN_BYTES, size - done), start + done)
            for done in range(0, size, READ_AGAIN_BYTES)
        )
        if len(data) != size:
            raise OSError(f"the file changed while it was read (line {number})")
        return None if data.isspace() else Line(number, data)

    def _carried(self, number: int, end: bytes, out: list[Line | OverlongLine]) -> None:
        """Complete with ``end`` the line being skipped or deferred, adding it to ``out``."""
        if self._skipping:
            out.append(OverlongLine(number, self._skipping + len(end)))
            self._skipping = 0
            return
        size, self._deferred = self._deferred + len(end), 0
        if size > self._max:
            out.append(OverlongLine(number, size))
            return
        found = self._long_line(number, size)
        if found is not None:
            out.append(found)

    def feed(self, chunk: bytes) -> list[Line | OverlongLine]:
        """The lines completed by ``chunk``.

        The chunk is split in C (``bytes.split``); only the line it completes from the last
        chunk's tail and the tail it leaves are handled apart.
        """
        pieces = chunk.split(b"\n")
        rest = pieces.pop()  # after the last newline: the start of a line not yet complete
        out: list[Line | OverlongLine] = []
        if pieces:
            limit = self._max
            number = self._number
            first = 0
            if self._skipping or self._deferred:
                number += 1
                first = 1
                self._carried(number, pieces[0], out)
            elif self._pending:
                self._pending += pieces[0]
                pieces[0] = bytes(self._pending)
                self._pending.clear()
            for piece in pieces[first:]:
                number += 1
                if len(piece) > limit:
                    out.append(OverlongLine(number, len(piece)))
                elif piece and not piece.isspace():
                    out.append(Line(number, piece))
            self._number = number
        self._offset += len(chunk)
        if rest:
            self._rest(rest)
        return out

    def _rest(self, rest: bytes) -> None:
        """Keep (or count) the start of the line the last chunk left incomplete."""
        if self._skipping:
            self._skipping += len(rest)
        elif self._deferred:
            self._deferred += len(rest)
        else:
            size = len(self._pending) + len(rest)
            if size > self._max:
                self._skipping = size
                self._pending.clear()
            elif self._defer is not None and size >= self._defer:
                self._deferred = size
                self._start = self._offset - size
                self._pending.clear()
            else:
                self._pending += rest
        if self._deferred > self._max:  # over the limit after all: skipped, not read again
            self._skipping, self._deferred = self._deferred, 0

    def finish(self) -> list[Line | OverlongLine]:
        """The last line, when the input did not end with a newline."""
        if self._skipping:
            self._number += 1
            skipped, self._skipping = self._skipping, 0
            return [OverlongLine(self._number, skipped)]
        if self._deferred:
            self._number += 1
            size, self._deferred = self._deferred, 0
            found = self._long_line(self._number, size)
            return [] if found is None else [found]
        if self._pending:
            self._number += 1
            data = bytes(self._pending)
            self._pending.clear()
            if not data.isspace():
                return [Line(self._number, data)]
        return []


BATCH_LINES = 256
"""Lines handed on together at most."""
BATCH_BYTES = 4 * 1024 * 1024
"""Bytes of lines handed on together, about (a batch ends at the line that reaches it)."""


def batches(
    lines: list[Line | OverlongLine], batch_lines: int = BATCH_LINES, batch_bytes: int = BATCH_BYTES
) -> Iterator[list[Line | OverlongLine]]:
    """``lines`` in batches of at most ``batch_lines`` lines or about ``batch_bytes`` bytes."""
    batch: list[Line | OverlongLine] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line.data) if isinstance(line, Line) else 0
        if len(batch) >= batch_lines or size >= batch_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def split_lines(
    data: bytes,
    *,
    max_line_bytes: int,
    batch_lines: int = BATCH_LINES,
    batch_bytes: int = BATCH_BYTES,
) -> Iterator[list[Line | OverlongLine]]:
    """Batches of the lines of an in-memory file (as ``lines_from`` gives for a file on disk)."""
    splitter = LineSplitter(max_line_bytes)
    yield from batches(splitter.feed(data) + splitter.finish(), batch_lines, batch_bytes)
