"""Resuming an interrupted run: what the output already holds, and which files are done.

Two files make a run resumable:

- the output JSONL itself: each line is one complete trace. After a ``kill -9`` its last line
  may be torn; ``prepare_resume`` cuts it off, so the file again ends with a complete line.
- a journal beside it (``OUT.done``): first the run's configuration (``RunConfig``: layers,
  judge model and prompt version, input format, resolved inputs, ...), then one JSON line per
  input file whose traces are *all* in the output (path, size, mtime), appended only after
  those lines were flushed. A resumed run skips journaled files without reading them, and
  skips traces already in the output when it has to read a file again, so nothing is
  duplicated and nothing is sent to the judge twice. A resume whose configuration differs from
  the recorded one is refused (``RunConfig.differences``): it would mix two runs in one file.

Files and traces are keyed by resolved absolute paths (symlinks followed), so the same input
spelled relative, absolute or through a symlink is the same input. Relative source paths of
the output are resolved from the folder the earlier run ran in (``RunConfig.cwd``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import orjson

from tracehint._exceptions import OutputError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "FileKey",
    "FileKeys",
    "ResumeState",
    "RunConfig",
    "file_key",
    "journal_path",
    "prepare_resume",
    "recorded_run",
    "trace_digest",
]

_READ = 1024 * 1024


def journal_path(output: str) -> str:
    """The journal beside ``output``."""
    return output + ".done"


def trace_digest(path: str, trace_id: str) -> bytes:
    """A compact fixed-size key for a trace of an input file (small for millions of traces).

    The input path (resolved: see ``ResumeState.trace_done``) is part of the key: two copies
    of one session are two traces to write.
    """
    return hashlib.blake2b(f"{path}\0{trace_id}".encode(), digest_size=12).digest()


def _resolved(path: str, cwd: str | None = None) -> str:
    """``path`` absolute, symlinks followed; a relative path is taken from ``cwd``."""
    return os.path.realpath(os.path.join(cwd, path) if cwd else path)  # noqa: PTH118 -- str paths


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """What decides a run's output; recorded in the journal, and a resume must match it."""

    layers: tuple[str, ...]
    judge_model: str | None = None
    """``None`` when no judge layer is used (nor the judge fields below)."""
    prompt_version: int | None = None
    judge_samples: int | None = None
    judge_show_next_action: bool | None = None
    input_format: str = "auto"
    inputs: tuple[str, ...] = ()
    """The input paths, resolved (absolute, symlinks followed) and sorted."""
    reasoning: bool = True
    detect: tuple[str, ...] | None = None
    """The site detectors (``--detect``), sorted; ``None`` in a journal that did not record
    them (not compared)."""
    cwd: str = ""
    """The folder the run ran in (relative paths of its output are relative to it); not
    compared: a resume from another folder is the same run."""

    @classmethod
    def resolve_inputs(cls, paths: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
        """``paths`` as ``inputs`` records them (blocking: resolving reads the file system)."""
        return tuple(
            sorted({_resolved(os.path.expanduser(os.fspath(p))) for p in paths})  # noqa: PTH111
        )

    def differences(self, earlier: RunConfig) -> list[str]:
        """What differs from ``earlier``, one phrase per setting (empty: the same run)."""
        found: list[str] = []
        for name, label in _COMPARED.items():
            before, now = getattr(earlier, name), getattr(self, name)
            if before == now or (name == "detect" and before is None):
                continue
            if name == "inputs":
                added = sorted(set(now) - set(before))
                gone = sorted(set(before) - set(now))
                parts = [f"new {', '.join(added)}"] * bool(added)
                parts += [f"no longer given {', '.join(gone)}"] * bool(gone)
                found.append(f"inputs: {'; '.join(parts)}")
            else:
                found.append(f"{label}: {_shown(before)} before, {_shown(now)} now")
        return found

    def journal_line(self) -> bytes:
        """The journal's first line."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        return orjson.dumps({"run": record}) + b"\n"

    @classmethod
    def from_record(cls, record: object) -> RunConfig | None:
        """The configuration in a journal record, or ``None`` if it is not one."""
        if not isinstance(record, dict) or not isinstance(record.get("run"), dict):
            return None
        data: dict[str, Any] = record["run"]
        names = {f.name for f in fields(cls)}
        try:
            values: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
            }
            return cls(**{k: v for k, v in values.items() if k in names})
        except TypeError:
            return None


_COMPARED = {
    "layers": "--layers",
    "judge_model": "judge model",
    "prompt_version": "judge prompt version",
    "judge_samples": "--judge-samples",
    "judge_show_next_action": "--judge-show-next-action",
    "input_format": "--format",
    "inputs": "inputs",
    "reasoning": "reasoning kept (--drop-reasoning)",
    "detect": "--detect",
}


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(x) for x in value)
    return str(value)


@dataclass(frozen=True, slots=True)
class FileKey:
    """An input file as it was when it was annotated."""

    path: str
    size: int
    mtime_ns: int


def file_key(path: str) -> FileKey | None:
    """The key of ``path`` now (resolved), or ``None`` when it cannot be stat'ed."""
    try:
        found = os.stat(path)  # noqa: PTH116 -- str paths
    except OSError:
        return None
    return FileKey(_resolved(path), found.st_size, found.st_mtime_ns)


class FileKeys:
    """``file_key`` for the many files of a few folders: each folder is resolved once.

    ``os.path.realpath`` costs an ``lstat`` per component of the path (about 30 µs a file,
    as much as reading a small session). A file that is not a symlink resolves to its folder's
    resolution joined with its name, so only the folder needs ``realpath``; a symlink (or an odd
    name) is resolved whole. The keys are the same as ``file_key``'s. Owned by one producer for
    one run (a folder re-linked during the run keeps its first resolution).
    """

    __slots__ = ("_folders",)

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def key(self, path: str) -> FileKey | None:
        """``file_key(path)``, in one ``lstat`` when the folder was seen before."""
        try:
            found = os.lstat(path)
        except OSError:
            return None
        folder, name = os.path.split(path)
        if stat.S_ISLNK(found.st_mode) or name in {"", ".", ".."}:
            return file_key(path)
        if not os.path.isabs(folder):  # noqa: PTH117 -- str paths
            folder = os.path.join(os.getcwd(), folder)  # noqa: PTH109, PTH118 -- as realpath does
        resolved = self._folder(folder)
        return FileKey(os.path.join(resolved, name), found.st_size, found.st_mtime_ns)  # noqa: PTH118 -- str paths

    def _folder(self, folder: str) -> str:
        """``os.path.realpath(folder)`` (absolute), from its parent's when that is known.

        A folder that is not a symlink resolves to its parent's resolution and its name: a
        tree of many folders (one session each) costs an ``lstat`` per new folder, not one per
        component of each.
        """
        resolved = self._folders.get(folder)
        if resolved is not None:
            return resolved
        parent, name = os.path.split(folder)
        resolved = None
        if name not in {"", ".", ".."} and parent != folder:
            try:
                if not stat.S_ISLNK(os.lstat(folder).st_mode):
                    resolved = os.path.join(self._folder(parent), name)  # noqa: PTH118 -- str paths
            except OSError:
                pass  # realpath says what it says about a folder that cannot be read
        if resolved is None:
            resolved = os.path.realpath(folder)
        self._folders[folder] = resolved
        return resolved


@dataclass(slots=True)
class ResumeState:
    """What an earlier run already finished."""

    done_traces: set[bytes] = field(default_factory=set)
    done_files: set[FileKey] = field(default_factory=set)
    truncated_bytes: int = 0
    """Bytes of a torn last line cut off the output."""
    run: RunConfig | None = None
    """The earlier run's configuration, when its journal records one."""
    _last: tuple[str, str] = field(default=("", ""), init=False, repr=False)
    """The last path resolved and its resolution: a file's traces come one after another."""
    _keys: FileKeys = field(default_factory=FileKeys, init=False, repr=False)

    def file_done(self, path: str) -> bool:
        """Whether ``path`` (unchanged since) was fully annotated before."""
        key = self._keys.key(path)
        return key is not None and key in self.done_files

    def trace_done(self, path: str, trace_id: str) -> bool:
        """Whether the trace ``trace_id`` of input ``path`` is already in the output.

        ``path`` is resolved (blocking, a few ``lstat`` calls), so any spelling of the input
        finds the trace.
        """
        if self._last[0] != path:
            self._last = (path, _resolved(path))
        return trace_digest(self._last[1], trace_id) in self.done_traces


def _scan_output(path: str, state: ResumeState, cwd: str | None) -> None:
    """Collect trace ids and cut a torn tail (sync: run in a worker thread)."""
    good_end = 0
    offset = 0
    pending = b""
    resolved = ("", "")  # the last source path and its resolution
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
                    source_path = source["path"]
                    if source_path != resolved[0]:
                        resolved = (source_path, _resolved(source_path, cwd))
                    state.done_traces.add(trace_digest(resolved[1], record["trace_id"]))
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
            except orjson.JSONDecodeError:
                continue  # a torn last journal line: that file is simply read again
            run = RunConfig.from_record(record)
            if run is not None:
                state.run = state.run or run
                continue
            try:
                state.done_files.add(FileKey(record["path"], record["size"], record["mtime_ns"]))
            except (KeyError, TypeError):
                continue


def recorded_run(output: str) -> RunConfig | None:
    """The configuration the journal of ``output`` records (blocking; reads nothing else).

    ``None`` when there is no journal, or it records none (written by an older tracehint).
    """
    state = ResumeState()
    _scan_journal(journal_path(output), state)
    return state.run


def prepare_resume(output: str) -> ResumeState:
    """Read what ``output`` and its journal hold; cut a torn last output line.

    Relative source paths in the output are resolved from the folder the earlier run ran in,
    as its journal records it (else the current folder). Sync (file I/O): call it from a
    worker thread.
    """
    state = ResumeState()
    _scan_journal(journal_path(output), state)
    if os.path.exists(output):  # noqa: PTH110 -- str paths
        _scan_output(output, state, state.run.cwd if state.run is not None else None)
    return state


def journal_line(key: FileKey) -> bytes:
    """One journal line for a finished file."""
    return orjson.dumps({"path": key.path, "size": key.size, "mtime_ns": key.mtime_ns}) + b"\n"
