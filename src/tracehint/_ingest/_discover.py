"""Find session files under the paths a user gives, streaming, in a stable order."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from tracehint._records import InputIssue

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = ["DEFAULT_CLAUDE_DIR", "Found", "discover"]

DEFAULT_CLAUDE_DIR = Path("~/.claude/projects")
"""Where Claude Code keeps its sessions; read when no path is given."""


@dataclass(frozen=True, slots=True)
class Found:
    """A session file to read."""

    path: str


def _scan(directory: str) -> tuple[list[str], list[str], str | None]:
    """List ``directory``: (sub-directories, ``*.jsonl`` files), sorted, or an error text."""
    dirs: list[str] = []
    files: list[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=True):
                        dirs.append(entry.path)
                    elif entry.name.endswith(".jsonl") and entry.is_file(follow_symlinks=True):
                        files.append(entry.path)
                except OSError:
                    continue  # a dangling symlink or a racing delete: not a session file
    except OSError as exc:
        return [], [], f"cannot list folder: {exc.strerror or exc}"
    dirs.sort()
    files.sort()
    return dirs, files, None


def _identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)  # noqa: PTH116 -- os.stat follows symlinks, as needed for loops
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


async def discover(paths: Sequence[str | os.PathLike[str]]) -> AsyncIterator[Found | InputIssue]:
    """Yield each session file under ``paths`` once, or an ``InputIssue`` for a bad path.

    Files given directly are read whatever their name; folders are searched recursively for
    ``*.jsonl``. Symlinked folders are followed, but each real folder is visited once, so a
    symlink loop ends (only folders are remembered, so memory grows with the number of
    folders, not files). Listing runs in worker threads, one folder at a time, so the event loop
    never blocks and memory does not grow with the corpus.
    """
    seen: set[tuple[int, int]] = set()
    for raw in paths:
        path = os.path.expanduser(os.fspath(raw))  # noqa: PTH111, ASYNC240 -- no I/O: reads $HOME
        is_dir = await anyio.to_thread.run_sync(os.path.isdir, path)
        if not is_dir:
            exists = await anyio.to_thread.run_sync(os.path.exists, path)
            if not exists:
                yield InputIssue(path, None, "no such file or folder")
                continue
            identity = await anyio.to_thread.run_sync(_identity, path)
            if identity is not None and identity in seen:
                continue
            if identity is not None:
                seen.add(identity)
            yield Found(path)
            continue
        stack = [path]
        while stack:
            directory = stack.pop()
            identity = await anyio.to_thread.run_sync(_identity, directory)
            if identity is None or identity in seen:
                continue
            seen.add(identity)
            dirs, files, error = await anyio.to_thread.run_sync(_scan, directory)
            if error is not None:
                yield InputIssue(directory, None, error)
                continue
            for file in files:
                yield Found(file)
            stack.extend(reversed(dirs))
