"""Bounded line splitting of JSONL bytes fed in chunks (never a whole file in memory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "BATCH_BYTES",
    "BATCH_LINES",
    "Line",
    "LineSplitter",
    "OverlongLine",
    "batches",
    "split_lines",
]


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
    """

    __slots__ = ("_max", "_number", "_pending", "_skipping")

    def __init__(self, max_line_bytes: int) -> None:
        self._max = max_line_bytes
        self._number = 0
        self._pending = bytearray()
        self._skipping = 0  # > 0 while discarding an overlong line: bytes seen so far

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
            if self._skipping:
                number += 1
                out.append(OverlongLine(number, self._skipping + len(pieces[0])))
                self._skipping = 0
                first = 1
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
        if rest:
            if self._skipping:
                self._skipping += len(rest)
            elif len(self._pending) + len(rest) > self._max:
                self._skipping = len(self._pending) + len(rest)
                self._pending.clear()
            else:
                self._pending += rest
        return out

    def finish(self) -> list[Line | OverlongLine]:
        """The last line, when the input did not end with a newline."""
        if self._skipping:
            self._number += 1
            skipped, self._skipping = self._skipping, 0
            return [OverlongLine(self._number, skipped)]
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
