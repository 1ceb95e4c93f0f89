"""Chunked, bounded line reading of JSONL files (async, never a whole file in memory)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiofiles

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["Line", "OverlongLine", "read_lines"]


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


async def read_lines(  # noqa: C901, PLR0912, PLR0915 -- one tight splitting loop, kept whole
    path: str,
    *,
    chunk_bytes: int,
    max_line_bytes: int,
    batch_lines: int = 256,
    batch_bytes: int = 4 * 1024 * 1024,
) -> AsyncIterator[list[Line | OverlongLine]]:
    """Yield batches of lines of ``path``, reading ``chunk_bytes`` at a time.

    Empty and whitespace-only lines are dropped. A line over ``max_line_bytes`` is reported
    as ``OverlongLine`` and its bytes are discarded as they arrive, so memory stays bounded
    by the limit. Raises ``OSError`` when the file cannot be opened or read.
    """
    number = 0
    pending = bytearray()
    skipping = 0  # > 0 while discarding an overlong line: bytes seen so far
    batch: list[Line | OverlongLine] = []
    size = 0
    async with aiofiles.open(path, "rb") as handle:
        while True:
            chunk: bytes = await handle.read(chunk_bytes)
            if not chunk:
                break
            start = 0
            while True:
                newline = chunk.find(b"\n", start)
                if newline < 0:
                    rest = len(chunk) - start
                    if skipping:
                        skipping += rest
                    elif len(pending) + rest > max_line_bytes:
                        skipping = len(pending) + rest
                        pending.clear()
                    else:
                        pending += chunk[start:]
                    break
                number += 1
                piece = chunk[start:newline]
                start = newline + 1
                if skipping:
                    batch.append(OverlongLine(number, skipping + len(piece)))
                    skipping = 0
                    continue
                if pending:
                    pending += piece
                    data = bytes(pending)
                    pending.clear()
                else:
                    data = piece
                if len(data) > max_line_bytes:
                    batch.append(OverlongLine(number, len(data)))
                elif data.strip():
                    batch.append(Line(number, data))
                    size += len(data)
                if len(batch) >= batch_lines or size >= batch_bytes:
                    yield batch
                    batch = []
                    size = 0
    # The last line may lack its newline (or be truncated): it is still a line.
    if skipping or pending:
        number += 1
        if skipping:
            batch.append(OverlongLine(number, skipping))
        elif pending.strip():
            batch.append(Line(number, bytes(pending)))
    if batch:
        yield batch
