"""Reading the sessions found on disk (or handed in memory) into numbered lines, in few trips.

The producer of the pipeline: it finds the sessions (``discover``), opens and reads them in
worker threads and splits them into lines there, and sends the adapter a list of items per
trip (``FileStart``, ``Batch``, ``FileEnd``, ``InputIssue``). One trip reads many small files
whole (up to ``_TRIP_FILES`` files or ``_TRIP_BYTES`` bytes) and a large file a few chunks at
a time: with many small sessions, thread trips and stream hand-offs, not parsing, dominated
reading, and a trip is cheap only when it does enough work. A long line is joined from its
chunks in the worker thread too, never on the event loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, BinaryIO

import anyio

from tracehint._ingest._discover import Found, FoundKind, Skipped, discover
from tracehint._ingest._files import open_regular
from tracehint._ingest._lines import BATCH_BYTES, BATCH_LINES, Line, LineSplitter, OverlongLine
from tracehint._ingest.claude_code import AgentMeta, read_agent_meta
from tracehint._ingest.openhands import read_event_folder
from tracehint._records import InputIssue
from tracehint._resume import FileKey, FileKeys, ResumeState, file_key

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from anyio.streams.memory import MemoryObjectSendStream

    from tracehint._limits import Limits
    from tracehint._stats import RunStats

__all__ = [
    "Batch",
    "FileEnd",
    "FileItem",
    "FileStart",
    "SessionBlob",
    "produce",
]

_TRIP_FILES = 256
"""Files opened in one worker-thread trip at most."""
_TRIP_BYTES = 4 * 1024 * 1024
"""Bytes read in one worker-thread trip: a trip ends after the file that reaches it."""
_PREAD = hasattr(os, "pread")
"""Long lines are read again whole where the platform has ``os.pread`` (POSIX)."""


@dataclass(frozen=True, slots=True)
class SessionBlob:
    """A session file already in memory (e.g. a row of a Ray dataset), read like a file.

    ``path`` names it in traces and issues; ``meta`` is what an ``agent-*.meta.json`` beside
    it says, when the reader had it.
    """

    path: str
    data: bytes
    meta: AgentMeta | None = None


@dataclass(frozen=True, slots=True)
class FileStart:
    """The lines that follow are this file's."""

    path: str
    meta: AgentMeta | None
    key: FileKey | None


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive lines of the current file, and their size in bytes."""

    lines: list[Line | OverlongLine]
    size: int
    """Bytes of the lines (an overlong line counts what it had)."""


def _batched(lines: list[Line | OverlongLine]) -> Iterator[Batch]:
    """``batches(lines)`` as ``Batch`` items, their sizes counted in the same pass."""
    batch: list[Line | OverlongLine] = []
    size = counted = 0
    for line in lines:
        batch.append(line)
        if isinstance(line, Line):
            size += len(line.data)
            counted += len(line.data)
        else:
            size += line.size  # an overlong line counts what it had, not toward the bound
        if len(batch) >= BATCH_LINES or counted >= BATCH_BYTES:
            yield Batch(batch, size)
            batch, size, counted = [], 0, 0
    if batch:
        yield Batch(batch, size)


@dataclass(frozen=True, slots=True)
class FileEnd:
    """The current file ended (``error``: why it could not be read to its end)."""

    error: str | None


@dataclass(frozen=True, slots=True)
class _Resumed:
    """A file an earlier run finished: counted, not read."""


FileItem = FileStart | Batch | FileEnd | InputIssue


@dataclass(frozen=True, slots=True)
class _Excluded:
    """The run's own output files, by name and by identity (any spelling, symlink or link)."""

    paths: frozenset[str]
    ids: frozenset[tuple[int, int]]

    @classmethod
    def of(cls, paths: frozenset[str]) -> _Excluded:
        """The files named in ``paths`` as they are now (blocking: stats each)."""
        ids = set()
        for path in paths:
            try:
                found = os.stat(path)  # noqa: PTH116 -- str paths
            except OSError:
                continue
            ids.add((found.st_dev, found.st_ino))
        return cls(frozenset(os.path.abspath(p) for p in paths), frozenset(ids))  # noqa: PTH100

    def __contains__(self, path: str) -> bool:
        if not self.paths:
            return False
        if os.path.abspath(path) in self.paths:  # noqa: PTH100 -- str paths
            return True
        try:
            found = os.stat(path)  # noqa: PTH116 -- str paths
        except OSError:
            return False
        return (found.st_dev, found.st_ino) in self.ids


def _meta_for(path: str) -> AgentMeta | None:
    if os.path.basename(path).startswith("agent-"):  # noqa: PTH119 -- str paths
        return read_agent_meta(path)
    return None


def _cannot_read(exc: OSError) -> FileEnd:
    return FileEnd(f"cannot read file: {exc.strerror or exc}")


@dataclass(slots=True)
class _Reading:
    """A file being read: its handle and the line splitter that carries a line across chunks."""

    handle: BinaryIO
    splitter: LineSplitter
    chunk_bytes: int

    def read(self, budget: int, out: list[FileItem | _Resumed]) -> tuple[int, bool]:
        """Read chunks until ``budget`` bytes or the end; (bytes read, whether it ended).

        Blocking: runs in a worker thread. At the end (or on a read error) the file is closed
        and its ``FileEnd`` added to ``out``.
        """
        done = 0
        try:
            while done < budget:
                chunk = self.handle.read(self.chunk_bytes)
                done += len(chunk)
                out.extend(_batched(self.splitter.feed(chunk)))
                # A buffered read returns less than asked only at the end of the file.
                if len(chunk) < self.chunk_bytes:
                    out.extend(_batched(self.splitter.finish()))
                    out.append(FileEnd(None))
                    self.handle.close()
                    return done, True
        except OSError as exc:
            out.append(_cannot_read(exc))
            self.handle.close()
            return done, True
        return done, False

    def close(self) -> None:
        """Close the file (reading stopped early)."""
        self.handle.close()


@dataclass(slots=True)
class _Trip:
    """What one worker-thread trip read: items, the files it used, a file left open."""

    items: list[FileItem | _Resumed] = field(default_factory=list)
    used: int = 0
    reading: _Reading | None = None


def _read_files(
    paths: Sequence[str],
    count: int,
    resume: ResumeState | None,
    limits: Limits,
    exclude: _Excluded,
    long_line_bytes: int | None,
    keys: FileKeys,
) -> _Trip:
    """Open and read up to ``count`` files from ``paths`` in order, whole while the budget lasts.

    Blocking: runs in a worker thread. A file not read to its end when the budget runs out
    is the last one used, left open in ``reading``. A line of ``long_line_bytes`` or more is
    read again whole once its end is found (``LineSplitter``), not joined from its chunks.
    """
    trip = _Trip()
    budget = _TRIP_BYTES
    for path in paths[:count]:
        trip.used += 1
        if path in exclude:
            continue
        key = keys.key(path)
        if resume is not None and key is not None and key in resume.done_files:
            trip.items.append(_Resumed())
            continue
        trip.items.append(FileStart(path, _meta_for(path), key))
        try:
            handle = open_regular(path)
        except OSError as exc:
            trip.items.append(_cannot_read(exc))
            continue
        splitter = LineSplitter(
            limits.max_line_bytes,
            defer_bytes=long_line_bytes,
            read_at=partial(os.pread, handle.fileno()) if _PREAD else None,
        )
        reading = _Reading(handle, splitter, limits.chunk_bytes)
        done, ended = reading.read(max(budget, 1), trip.items)
        budget -= done
        if not ended:
            trip.reading = reading
            break
        if budget <= 0:
            break
    return trip


def _read_more(reading: _Reading) -> tuple[list[FileItem | _Resumed], bool]:
    """The next part of a file being read, and whether it ended (blocking: a worker thread)."""
    out: list[FileItem | _Resumed] = []
    _, ended = reading.read(_TRIP_BYTES, out)
    return out, ended


def _blob_items(data: bytes, max_line_bytes: int) -> list[FileItem | _Resumed]:
    splitter = LineSplitter(max_line_bytes)
    return list(_batched(splitter.feed(data) + splitter.finish()))


@dataclass(slots=True)
class _Producer:
    send: MemoryObjectSendStream[list[FileItem]]
    limits: Limits
    stats: RunStats
    resume: ResumeState | None
    exclude: _Excluded = field(default_factory=lambda: _Excluded(frozenset(), frozenset()))
    trip_files: int = 1
    """Files the next trip may open (doubles each trip, up to ``_TRIP_FILES``)."""
    long_line_bytes: int | None = None
    """A line this long is read again whole at its end, not joined from its chunks."""
    keys: FileKeys = field(default_factory=FileKeys)

    async def emit(self, items: list[FileItem | _Resumed]) -> None:
        out: list[FileItem] = []
        for item in items:
            if isinstance(item, _Resumed):
                self.stats.files_resumed += 1
            else:
                out.append(item)
        if out:
            await self.send.send(out)

    async def blob(self, blob: SessionBlob) -> None:
        if self.resume is not None and self.resume.file_done(blob.path):
            self.stats.files_resumed += 1
            return
        items: list[FileItem | _Resumed] = [FileStart(blob.path, blob.meta, None)]
        items += _blob_items(blob.data, self.limits.max_line_bytes)
        items.append(FileEnd(None))
        await self.emit(items)

    async def files(self, paths: list[str]) -> None:
        """Read ``paths`` in order, many per worker-thread trip."""
        while paths:
            trip = await anyio.to_thread.run_sync(
                _read_files,
                paths,
                self.trip_files,
                self.resume,
                self.limits,
                self.exclude,
                self.long_line_bytes,
                self.keys,
            )
            # The first trips are short: the first traces go out soon, and a file is opened
            # close to when it is parsed (it may change or go away meanwhile).
            self.trip_files = min(self.trip_files * 2, _TRIP_FILES)
            del paths[: trip.used]
            await self.emit(trip.items)
            reading = trip.reading
            if reading is None:
                continue
            try:
                ended = False
                while not ended:
                    items, ended = await anyio.to_thread.run_sync(_read_more, reading)
                    await self.emit(items)
            finally:
                reading.close()

    async def listed(self, sessions: list[Found]) -> None:
        """Read sessions an earlier discovery listed (the Ray engine's driver) as they are."""
        pending: list[str] = []
        for session in sessions:
            if session.kind is FoundKind.FILE:
                pending.append(session.path)
                if len(pending) >= _TRIP_FILES:
                    await self.files(pending)
            else:
                await self.files(pending)
                await self.event_folder(session.path)
        await self.files(pending)

    async def event_folder(self, path: str) -> None:
        opened = await anyio.to_thread.run_sync(_open_event_folder, path, self.resume, self.exclude)
        if opened is None:
            return
        if isinstance(opened, _Resumed):
            self.stats.files_resumed += 1
            return
        key, data, issues = opened
        items: list[FileItem | _Resumed] = [FileStart(path, None, key), *issues]
        items += _blob_items(data, self.limits.max_line_bytes)
        items.append(FileEnd(None))
        await self.emit(items)


def _open_event_folder(
    path: str, resume: ResumeState | None, exclude: _Excluded
) -> tuple[FileKey | None, bytes, list[InputIssue]] | _Resumed | None:
    """An OpenHands ``events/`` folder read as one JSONL session (blocking)."""
    if path in exclude:
        return None
    if resume is not None and resume.file_done(path):
        return _Resumed()
    key = file_key(path)
    data, issues = read_event_folder(path)
    return key, data, issues


async def produce(
    inputs: Sequence[str | os.PathLike[str] | SessionBlob | Found],
    send: MemoryObjectSendStream[list[FileItem]],
    *,
    limits: Limits,
    exclude: frozenset[str],
    stats: RunStats,
    resume: ResumeState | None,
    long_line_bytes: int | None = None,
) -> None:
    """Send the items of every session in ``inputs``, in order, a list per worker-thread trip.

    Files found on disk are read in discovery order; files the run must not read (its own
    output, files a resumed run finished) are left out. Does not close ``send``. A line of a
    file on disk of ``long_line_bytes`` or more is read again whole with one ``os.pread``
    once its end is found, instead of being joined from its chunks (a copy that holds the GIL).
    """
    producer = _Producer(send, limits, stats, resume, long_line_bytes=long_line_bytes)
    paths: list[str | os.PathLike[str]] = []
    listed: list[Found] = []
    for item in inputs:
        if isinstance(item, SessionBlob):
            await producer.blob(item)
        elif isinstance(item, Found):
            listed.append(item)
        else:
            paths.append(item)
    # By identity too: an output reached through a symlinked input folder is still the output.
    producer.exclude = await anyio.to_thread.run_sync(_Excluded.of, exclude)
    await producer.listed(listed)
    pending: list[str] = []
    async for found_batch in discover(paths):
        for found in found_batch:
            if isinstance(found, Found) and found.kind is FoundKind.FILE:
                pending.append(found.path)
                if len(pending) >= _TRIP_FILES:
                    await producer.files(pending)
                continue
            await producer.files(pending)
            if isinstance(found, Skipped):
                stats.record_skipped_file(found.reason)
            elif isinstance(found, Found):
                await producer.event_folder(found.path)
            else:
                await send.send([found])
    await producer.files(pending)
