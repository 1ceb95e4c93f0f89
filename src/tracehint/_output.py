"""Output files: written whole line by line, and checked before a run does any work.

Every line is written whole, in batches, never on the event loop; ``check_outputs`` makes sure,
before anything is read or created, that every file a run will write can be written.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import Enum
from typing import IO, TYPE_CHECKING, Self

import anyio

from tracehint._exceptions import ConfigError, OutputError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

__all__ = ["JsonlSink", "MemorySink", "OutputPath", "SinkState", "check_outputs"]

STDOUT = "-"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputPath:
    """A file a run will write, as the user named it."""

    option: str
    """How it was given, for messages: ``-o``, ``--errors``, ...."""
    path: str
    replace: bool = True
    """Whether an existing file may be replaced (or continued); ``False`` refuses it."""


def _same_file(a: str | os.PathLike[str], b: str) -> bool:
    try:
        return os.path.samefile(a, b)  # noqa: PTH121 -- str paths
    except OSError:
        return False


def _check_writable(output: OutputPath) -> None:
    path, named = output.path, f"{output.option} {output.path}"
    if os.path.isdir(path):  # noqa: PTH112 -- str paths
        raise OutputError(f"{named} is a folder; name a file")
    if os.path.exists(path):  # noqa: PTH110 -- str paths
        if not output.replace:
            raise ConfigError(
                f"output {path} already exists; pass --overwrite to replace it "
                "or choose another path",
            )
        if not os.access(path, os.W_OK):
            raise OutputError(f"cannot write {named}: permission denied")
        return
    folder = os.path.dirname(os.path.realpath(path)) or "."  # noqa: PTH120 -- str paths
    if not os.path.isdir(folder):  # noqa: PTH112 -- str paths
        what = "is not a folder" if os.path.exists(folder) else "does not exist"  # noqa: PTH110
        raise OutputError(f"cannot create {named}: {folder} {what}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create {named}: the folder {folder} is not writable")


def check_outputs(outputs: Sequence[OutputPath], inputs: Sequence[str | os.PathLike[str]]) -> None:
    """Check, before any work, that every file of ``outputs`` can be written; create nothing.

    Raises ``OutputError`` for a path that cannot be written (a folder, a missing or read-only
    folder, a read-only file), and ``ConfigError`` for an output that already exists and may
    not be replaced, two outputs that are one file, or an output that is one of the input files
    ``inputs`` (by any spelling, symlink or hard link): writing it would destroy that input.
    Output files inside an input *folder* are allowed (the run does not read them). ``-`` is
    stdout and is not checked. Blocking: call it from a worker thread.
    """
    files = [output for output in outputs if output.path != STDOUT]
    for output in files:
        _check_writable(output)
    for index, output in enumerate(files):
        for other in files[:index]:
            same = os.path.realpath(output.path) == os.path.realpath(other.path)
            if same or _same_file(output.path, other.path):
                raise ConfigError(
                    f"{other.option} and {output.option} name the same file {output.path}; "
                    "give each its own path",
                )
        for given in inputs:
            if _same_file(os.path.expanduser(given), output.path):  # noqa: PTH111 -- str paths
                raise ConfigError(
                    f"{output.option} {output.path} is one of the inputs ({given}); writing it "
                    "would destroy that session: choose another path",
                )


def _write_lines(file: IO[bytes], lines: list[bytes]) -> None:
    """Write and flush ``lines`` (blocking: a worker thread)."""
    file.writelines(lines)
    file.flush()


class SinkState(Enum):
    """Where a ``JsonlSink`` is in its life: lines are taken only while it is open."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


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
        self.state = SinkState.NEW

    async def __aenter__(self) -> Self:
        if self.state is not SinkState.NEW:
            raise RuntimeError(f"a JsonlSink is entered once (this one is {self.state.value})")
        if self.path == STDOUT:
            self._file = anyio.wrap_file(sys.stdout.buffer)
            self.state = SinkState.OPEN
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
        self.state = SinkState.OPEN
        return self

    @property
    def buffered(self) -> int:
        """Bytes queued and not yet written (0 right after a flush)."""
        return self._size

    def _check_open(self) -> None:
        if self.state is not SinkState.OPEN:
            raise RuntimeError(
                f"JsonlSink {self.path} is {self.state.value}: "
                "write inside `async with JsonlSink(...)`"
            )

    async def write(self, line: bytes) -> None:
        """Queue one complete line (ending in a newline); flush when the batch is full."""
        self._check_open()
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= self._batch_bytes:
            await self.flush()

    async def write_parts(self, parts: Sequence[bytes]) -> None:
        """Queue one complete line given in parts, written one after the other, never joined.

        A huge line (``dump_parts``) is written this way: joining its parts would copy all
        of it in one call that holds the GIL.
        """
        self._check_open()
        self._buffer.extend(parts)
        self._size += sum(len(part) for part in parts)
        if self._size >= self._batch_bytes:
            await self.flush()

    async def flush(self) -> None:
        """Write the queued lines (in one worker-thread trip, never joined on the event loop)."""
        if not self._buffer or self._file is None:
            return
        lines, self._buffer = self._buffer, []
        self._size = 0
        try:
            await anyio.to_thread.run_sync(_write_lines, self._file.wrapped, lines)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.state is not SinkState.OPEN:
            return
        self.state = SinkState.CLOSED
        file = self._file
        try:
            with anyio.CancelScope(shield=True):
                try:
                    await self.flush()
                finally:
                    self._file = None
                    if file is not None and self.path != STDOUT:
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
