"""Input and output paths through the real CLI: what is refused before any work is done, and
which inputs are skipped (each named in ``--errors`` with the reason)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES, run_cli

POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and symlinks")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def trace_ids(path: Path) -> list[str]:
    return sorted(t["trace_id"] for t in read_jsonl(path))


@pytest.fixture
def sessions(tmp_path: Path) -> Path:
    """A private copy of the example sessions."""
    folder = tmp_path / "sessions"
    shutil.copytree(EXAMPLES, folder)
    return folder


@pytest.fixture
def expected(tmp_path: Path) -> list[str]:
    """The trace ids of the example sessions annotated alone."""
    alone = tmp_path / "alone.jsonl"
    result = run_cli("annotate", str(EXAMPLES), "-o", str(alone))
    assert result.returncode == 0, result.stderr
    return trace_ids(alone)


# -- inputs that are not read ------------------------------------------------------------------


@POSIX_ONLY
def test_fifos_broken_links_and_empty_files_are_named_not_read(
    tmp_path: Path, sessions: Path, expected: list[str]
) -> None:
    given = tmp_path / "given.jsonl"
    os.mkfifo(given)  # as a PATH: opening it would wait for a writer forever
    os.mkfifo(sessions / "pipe.jsonl")
    (sessions / "loop-a.jsonl").symlink_to(sessions / "loop-b.jsonl")
    (sessions / "loop-b.jsonl").symlink_to(sessions / "loop-a.jsonl")
    (sessions / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    (sessions / "empty.jsonl").write_bytes(b"")
    given_loop = tmp_path / "given-loop.jsonl"
    given_loop.symlink_to(given_loop)
    out, errors = tmp_path / "t.jsonl", tmp_path / "e.jsonl"
    result = run_cli(
        "annotate", str(given), str(given_loop), str(sessions),
        "-o", str(out), "--errors", str(errors),
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert trace_ids(out) == expected
    reasons = {issue["path"]: issue["reason"] for issue in read_jsonl(errors)}
    fifo = "not a regular file but a FIFO (named pipe); only regular files and folders are read"
    loop = "symlink loop: the link never leads to a file or folder"
    assert reasons == {
        str(given): f"cannot read file: {fifo}",
        str(given_loop): loop,
        str(sessions / "pipe.jsonl"): f"cannot read file: {fifo}",
        str(sessions / "loop-a.jsonl"): loop,
        str(sessions / "loop-b.jsonl"): loop,
        str(sessions / "gone.jsonl"): (
            f"dangling symlink: its target {tmp_path / 'nowhere.jsonl'} does not exist"
        ),
        str(sessions / "empty.jsonl"): "empty file (0 bytes): no session to read",
    }
