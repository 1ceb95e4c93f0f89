"""Resuming an interrupted run: what the output already holds, and which files are done.

Two files make a run resumable:

- the output JSONL itself: each line is one complete trace. After a ``kill -9`` its last line
  may be torn; ``prepare_resume`` cuts it off, so the file again ends with a complete line.
- a journal beside it (``OUT.done``): one JSON line per input file whose traces are *all* in
  the output (path, size, mtime), appended only after those lines were flushed. A resumed run
  skips journaled files without reading them, and skips traces already in the output when it
  has to read a file again, so nothing is duplicated and nothing is sent to the judge twice.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import orjson

from tracehint._exceptions import OutputError

__all__ = ["FileKey", "ResumeState", "file_key", "journal_path", "prepare_resume", "trace_digest"]

_READ = 1024 * 1024


def journal_path(output: str) -> str:
    """The journal beside ``output``."""
    return output + ".done"


def trace_digest(path: str, trace_id: str) -> bytes:
    """A compact fixed-size key for a trace of an input file (small for millions of traces).

    The input path is part of the key: two copies of one session are two traces to write.
    """
    return hashlib.blake2b(f"{path}\0{trace_id}".encode(), digest_size=12).digest()


@dataclass(frozen=True, slots=True)
class FileKey:
    """An input file as it was when it was annotated."""

    path: str
    size: int
    mtime_ns: int


def file_key(path: str) -> FileKey | None:
    """The key of ``path`` now, or ``None`` when it cannot be stat'ed."""
    try:
        stat = os.stat(path)  # noqa: PTH116 -- str paths
    except OSError:
        return None
    return FileKey(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)  # noqa: PTH100 -- str paths


@dataclass(slots=True)
class ResumeState:
    """What an earlier run already finished."""

    done_traces: set[bytes] = field(default_factory=set)
    done_files: set[FileKey] = field(default_factory=set)
    truncated_bytes: int = 0
    """Bytes of a torn last line cut off the output."""

    def file_done(self, path: str) -> bool:
        """Whether ``path`` (unchanged since) was fully annotated before."""
        key = file_key(path)
        return key is not None and key in self.done_files

    def trace_done(self, path: str, trace_id: str) -> bool:
        """Whether the trace ``trace_id`` of input ``path`` is already in the output."""
        return trace_digest(path, trace_id) in self.done_traces


def _scan_output(path: str, state: ResumeState) -> None:
    """Collect trace ids and cut a torn tail (sync: run in a worker thread)."""
    good_end = 0
    offset = 0
    pending = b""
    with open(path, "r+b") as handle:  # noqa: PTH123 -- str paths
        while True:
            chunk = handle.read(_READ)
            if not chunk:
                break
            data = pending + chunk
            start = 0
            while True:
                newline = data.find(b"\n", start)
                if newline < 0:
                    break
                line = data[start:newline]
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    record = None
                source = record.get("source") if isinstance(record, dict) else None
                if (
                    isinstance(record, dict)
                    and isinstance(record.get("trace_id"), str)
                    and isinstance(source, dict)
                    and isinstance(source.get("path"), str)
                ):
                    state.done_traces.add(trace_digest(source["path"], record["trace_id"]))
                    good_end = offset + newline + 1
                elif line.strip():
                    # A torn line in the middle can only come from a foreign writer.
                    msg = f"{path} is not tracehint output (bad line at byte {offset + start})"
                    raise OutputError(msg + "; choose another -o or pass --overwrite")
                else:
                    good_end = offset + newline + 1
                start = newline + 1
            offset += start
            pending = data[start:]
        size = handle.seek(0, os.SEEK_END)
        if size > good_end:
            state.truncated_bytes = size - good_end
            handle.truncate(good_end)


def _scan_journal(path: str, state: ResumeState) -> None:
    try:
        handle = open(path, "rb")  # noqa: SIM115, PTH123 -- closed below; str paths
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                record = orjson.loads(line)
                state.done_files.add(FileKey(record["path"], record["size"], record["mtime_ns"]))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # a torn last journal line: that file is simply read again


def prepare_resume(output: str) -> ResumeState:
    """Read what ``output`` and its journal hold; cut a torn last output line.

    Sync (file I/O): call it from a worker thread.
    """
    state = ResumeState()
    if os.path.exists(output):  # noqa: PTH110 -- str paths
        _scan_output(output, state)
    _scan_journal(journal_path(output), state)
    return state


def journal_line(key: FileKey) -> bytes:
    """One journal line for a finished file."""
    return orjson.dumps({"path": key.path, "size": key.size, "mtime_ns": key.mtime_ns}) + b"\n"
