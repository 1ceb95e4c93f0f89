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

from conftest import EXAMPLES, read_only, run_cli

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


# -- outputs checked before any work -----------------------------------------------------------


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


MISSING = "cannot create {option} {path}: {root}/missing does not exist"
NOT_A_FOLDER = "cannot create {option} {path}: {root}/file is not a folder"


@pytest.mark.parametrize(
    ("option", "name", "message"),
    [
        ("--stats-json", "missing/s.json", MISSING),
        ("--errors", "missing/e.jsonl", MISSING),
        ("-o", "missing/t.jsonl", MISSING),
        ("--stats-json", "file/s.json", NOT_A_FOLDER),
        ("--errors", "folder", "{option} {path} is a folder; name a file"),
        ("--stats-json", "folder", "{option} {path} is a folder; name a file"),
        ("--errors", "t.jsonl", "-o and --errors name the same file {path}"),
        ("--stats-json", "t.jsonl.done", "the journal and --stats-json name the same file {path}"),
    ],
)  # fmt: skip
def test_unwritable_output_is_refused_before_any_work(
    tmp_path: Path, sessions: Path, option: str, name: str, message: str
) -> None:
    root = tmp_path / "outputs"
    root.mkdir()
    (root / "file").write_text("a file, not a folder")
    (root / "folder").mkdir()
    before = listing(tmp_path)
    path = root / name
    args = {"-o": str(root / "t.jsonl"), option: str(path)}
    result = run_cli(
        "annotate", str(sessions), *(x for pair in args.items() for x in pair),
        "--errors" if option != "--errors" else "--stats-json",
        str(root / ("e.jsonl" if option != "--errors" else "s.json")),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message.format(option=option, path=path, root=root) in result.stderr
    assert "Traceback" not in result.stderr
    assert listing(tmp_path) == before  # nothing created: no output, journal or errors file


def test_read_only_folder_for_stats_is_refused_before_any_work(
    tmp_path: Path, sessions: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    out = tmp_path / "t.jsonl"
    with read_only(locked):
        result = run_cli(
            "annotate", str(sessions), "-o", str(out), "--stats-json", str(locked / "s.json")
        )
    assert result.returncode == 2, result.stderr
    assert f"the folder {locked} is not writable" in result.stderr
    assert not out.exists()


# -- an output that is one of the inputs -------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink", "hard link"])
@pytest.mark.parametrize("option", ["-o", "--errors", "--stats-json"])
def test_output_that_is_an_input_file_is_refused(
    tmp_path: Path, sessions: Path, spelling: str, option: str
) -> None:
    first, second = sorted(sessions.glob("*.jsonl"))
    kept = first.read_bytes()
    named = {
        "same": str(first),
        "relative": os.path.relpath(first, tmp_path),
        "symlink": str(tmp_path / "link.jsonl"),
        "hard link": str(tmp_path / "hard.jsonl"),
    }[spelling]
    if spelling == "symlink":
        Path(named).symlink_to(first)
    elif spelling == "hard link":
        Path(named).hardlink_to(first)
    args = {"-o": str(tmp_path / "t.jsonl"), option: named}
    result = run_cli(
        "annotate", str(first), str(second), *(x for pair in args.items() for x in pair),
        "--overwrite",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"{option} {named} is one of the inputs ({first})" in result.stderr
    assert first.read_bytes() == kept
    assert not (tmp_path / "t.jsonl").exists() or option == "-o"


def test_output_inside_an_input_folder_is_still_allowed(
    sessions: Path, expected: list[str]
) -> None:
    out = sessions / "t.jsonl"
    for extra in ([], ["--overwrite"]):
        result = run_cli("annotate", str(sessions), "-o", str(out), *extra)
        assert result.returncode == 0, result.stderr
        assert trace_ids(out) == expected
