"""JSONL output files: every line written whole, in batches, never on the event loop."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Self

import anyio

from tracehint._exceptions import ConfigError, OutputError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["JsonlSink", "MemorySink"]

STDOUT = "-"


class JsonlSink:
    """An append-only JSONL file (or stdout for ``-``), as an async context manager.

    Lines are collected and written in batches of whole lines; a write error raises
    ``OutputError`` so the run stops instead of continuing into nowhere.
    """

    def __init__(
        self,
        path: str,
        *,
        overwrite: bool = False,
        append: bool = False,
        batch_bytes: int = 256 * 1024,
    ) -> None:
        self.path = path
        self._overwrite = overwrite
        self._append = append
        self._batch_bytes = batch_bytes
        self._buffer: list[bytes] = []
        self._size = 0
        self._file: anyio.AsyncFile[bytes] | None = None

    async def __aenter__(self) -> Self:
        if self.path == STDOUT:
            self._file = anyio.wrap_file(sys.stdout.buffer)
            return self
        if not self._overwrite and not self._append and await anyio.Path(self.path).exists():
            raise ConfigError(
                f"output {self.path} already exists; pass --overwrite to replace it "
                "or choose another path",
            )
        try:
            self._file = await anyio.open_file(self.path, "ab" if self._append else "wb")
        except OSError as exc:
            raise OutputError(f"cannot open output {self.path}: {exc.strerror or exc}") from exc
        return self

    @property
    def buffered(self) -> int:
        """Bytes queued and not yet written (0 right after a flush)."""
        return self._size

    async def write(self, line: bytes) -> None:
        """Queue one complete line (ending in a newline); flush when the batch is full."""
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= self._batch_bytes:
            await self.flush()

    async def flush(self) -> None:
        """Write the queued lines."""
        if not self._buffer or self._file is None:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        try:
            await self._file.write(data)
            await self._file.flush()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            with anyio.CancelScope(shield=True):
                if self._buffer:
                    self._file = file
                    await self.flush()
                    self._file = None
                if self.path != STDOUT:
                    await file.aclose()
        except OutputError:
            if exc is None:
                raise


class MemorySink:
    """Collects output lines in memory (for tests and small embedded runs)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    @property
    def buffered(self) -> int:
        """Always 0: every line is kept as soon as it is written."""
        return 0

    async def write(self, line: bytes) -> None:
        """Keep one line."""
        self.lines.append(line)

    async def flush(self) -> None:
        """Nothing to do."""
