"""Find session files under the paths a user gives, streaming, in a stable order.

Folders are searched for ``*.jsonl``, ``*.json`` and ``*.traj`` files; the content decides
their format later (``formats``). A symlink that leads nowhere (dangling, or a loop) is an
``InputIssue`` naming it; a FIFO or device with a session name is found, and refused when
opened (``_files``). Files that are clearly not transcripts by their name (a
Claude Code sub-agent's ``.meta.json``, an OpenHands session's ``metadata.json``, ...) are
reported as ``Skipped`` with the reason, never read as broken transcripts. An OpenHands
session folder's ``events/`` (one ``<n>.json`` per event) is found as one session.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from tracehint._ingest._files import broken_link_reason
from tracehint._records import InputIssue

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = [
    "DEFAULT_CLAUDE_DIR",
    "DEFAULT_DIRS",
    "Found",
    "FoundKind",
    "Skipped",
    "discover",
    "skip_reason",
]

DEFAULT_CLAUDE_DIR = Path("~/.claude/projects")
"""Where Claude Code keeps its sessions."""

DEFAULT_DIRS = (
    DEFAULT_CLAUDE_DIR,
    Path("~/.codex/sessions"),
    Path("~/.gemini/tmp"),
    Path("~/.openhands/sessions"),
)
"""Where coding agents keep their sessions; those that exist are read when no path is given."""

_SUFFIXES = (".jsonl", ".json", ".traj")
_EVENT_FILE = re.compile(r"\d+\.json")
# Files found in session folders that hold no conversation, by name.
_NOT_TRANSCRIPTS = {
    "metadata.json": "session metadata, not a transcript",
    "package.json": "a package manifest, not a transcript",
    "package-lock.json": "a package lock file, not a transcript",
    "tsconfig.json": "a TypeScript configuration, not a transcript",
    "settings.json": "agent settings, not a transcript",
    "settings.local.json": "agent settings, not a transcript",
    "logs.json": "a Gemini CLI prompt log, not a transcript",
}


class FoundKind(Enum):
    """What a found path holds."""

    FILE = "file"
    EVENT_FOLDER = "event_folder"
    """An OpenHands session's ``events/`` folder: one event per ``<n>.json`` file."""


@dataclass(frozen=True, slots=True)
class Found:
    """A session to read: a file, or a folder of event files."""

    path: str
    kind: FoundKind = FoundKind.FILE


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file found in a folder and left unread because it is clearly not a transcript."""

    path: str
    reason: str


def skip_reason(name: str) -> str | None:
    """Why a file of this name, found in a folder, is not read; ``None`` to read it."""
    if name.endswith(".meta.json"):
        return "Claude Code sub-agent metadata, not a transcript"
    return _NOT_TRANSCRIPTS.get(name)


def _scan(directory: str) -> tuple[list[str], list[str], list[InputIssue], str | None]:
    """List ``directory``: (sub-directories, candidate files, broken links), or an error text.

    A candidate is a file whose name ends in a session suffix, whatever it is: a FIFO or a
    device among them is refused when opened, with its kind named, never skipped silently.
    """
    dirs: list[str] = []
    files: list[str] = []
    broken: list[InputIssue] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                kind = _entry_kind(entry)
                if kind is _Entry.DIR:
                    dirs.append(entry.path)
                elif kind is _Entry.FILE:
                    files.append(entry.path)
                elif kind is _Entry.BROKEN_LINK:
                    reason = broken_link_reason(entry.path)
                    if reason is not None:
                        broken.append(InputIssue(entry.path, None, reason))
    except OSError as exc:
        return [], [], [], f"cannot list folder: {exc.strerror or exc}"
    dirs.sort()
    files.sort()
    broken.sort(key=lambda issue: issue.path)
    return dirs, files, broken, None


class _Entry(Enum):
    DIR = "dir"
    FILE = "file"
    BROKEN_LINK = "broken_link"
    OTHER = "other"


def _entry_kind(entry: os.DirEntry[str]) -> _Entry:
    """What a folder entry is to the search (no system call for plain files and folders)."""
    try:
        if entry.is_dir(follow_symlinks=True):
            return _Entry.DIR
        if entry.name.endswith(_SUFFIXES) and entry.is_file(follow_symlinks=True):
            return _Entry.FILE
    except OSError:
        pass  # a symlink loop: told apart below
    if entry.is_symlink() and not os.path.exists(entry.path):  # noqa: PTH110 -- str paths
        return _Entry.BROKEN_LINK
    return _Entry.FILE if entry.name.endswith(_SUFFIXES) else _Entry.OTHER


def _is_event_folder(directory: str, dirs: list[str], files: list[str]) -> bool:
    """An OpenHands ``events/`` folder: nothing in it but ``<n>.json`` files."""
    return (
        os.path.basename(directory) == "events"  # noqa: PTH119 -- str paths
        and bool(files)
        and not dirs
        and all(_EVENT_FILE.fullmatch(os.path.basename(f)) for f in files)  # noqa: PTH119
    )


def _identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)  # noqa: PTH116 -- os.stat follows symlinks, as needed for loops
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _top(path: str, seen: set[tuple[int, int]]) -> Found | InputIssue | None:
    """A path given directly that is not a folder: the file to read, why not, or ``None``."""
    if not os.path.exists(path):  # noqa: PTH110 -- str paths
        return InputIssue(path, None, broken_link_reason(path) or "no such file or folder")
    identity = _identity(path)
    if identity is not None and identity in seen:
        return None
    if identity is not None:
        seen.add(identity)
    return Found(path)


def _walk(
    stack: list[str], seen: set[tuple[int, int]], budget: int
) -> list[Found | Skipped | InputIssue]:
    """Visit folders from ``stack`` depth first until about ``budget`` entries are listed.

    Folders still to visit stay on ``stack`` for the next call, so many small folders cost
    one worker-thread trip, not two per folder, and memory stays bounded by ``budget``.
    """
    out: list[Found | Skipped | InputIssue] = []
    listed = 0
    while stack and listed < budget:
        directory = stack.pop()
        identity = _identity(directory)
        if identity is None or identity in seen:
            continue
        seen.add(identity)
        dirs, files, broken, error = _scan(directory)
        if error is not None:
            out.append(InputIssue(directory, None, error))
            continue
        listed += 1 + len(dirs) + len(files)
        out.extend(broken)
        if _is_event_folder(directory, dirs, files):
            out.append(Found(directory, FoundKind.EVENT_FOLDER))
            continue
        for file in files:
            reason = skip_reason(os.path.basename(file))  # noqa: PTH119 -- str paths
            out.append(Found(file) if reason is None else Skipped(file, reason))
        stack.extend(reversed(dirs))
    return out


async def discover(
    paths: Sequence[str | os.PathLike[str]], *, budget: int = 4096
) -> AsyncIterator[list[Found | Skipped | InputIssue]]:
    """Yield, in batches, each session under ``paths`` once, and why a path or file is not read.

    An ``InputIssue`` is a bad path; a ``Skipped`` is a file that is clearly not a transcript.
    Files given directly are read whatever their name; folders are searched recursively for
    ``*.jsonl``, ``*.json`` and ``*.traj``. Symlinked folders are followed, but each real
    folder is visited once, so a symlink loop ends (only folders are remembered, so memory
    grows with the number of folders, not files). Listing runs in worker threads, about
    ``budget`` folder entries per trip, so the event loop never blocks, a corpus of many small
    folders costs few thread trips, and memory does not grow with the corpus.
    """
    seen: set[tuple[int, int]] = set()
    for raw in paths:
        path = os.path.expanduser(os.fspath(raw))  # noqa: PTH111, ASYNC240 -- no I/O: reads $HOME
        if not await anyio.to_thread.run_sync(os.path.isdir, path):
            found = await anyio.to_thread.run_sync(_top, path, seen)
            if found is not None:
                yield [found]
            continue
        stack = [path]
        while stack:
            batch = await anyio.to_thread.run_sync(_walk, stack, seen, budget)
            if batch:
                yield batch
