"""Malformed input through the whole pipeline: recorded as issues, never stopping the run.

Every test runs a good session beside the bad input and checks that the good one comes out
exactly as it does when annotated alone.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import pytest

from tracehint import (
    HintChain,
    Limits,
    PipelineConfig,
    RawErrorLayer,
    RunStats,
    TemplateLayer,
    annotate_files,
)
from tracehint._output import MemorySink

if TYPE_CHECKING:
    from pathlib import Path

CHAIN = HintChain((TemplateLayer(), RawErrorLayer()))
DEFAULT_ISSUES_PER_FILE = Limits().issues_per_file


@dataclass
class Run:
    traces: list[dict[str, Any]]
    issues: list[dict[str, Any]]
    stats: RunStats

    def for_path(self, path: Path) -> list[dict[str, Any]]:
        return [t for t in self.traces if t["source"]["path"] == str(path)]

    def issues_for(self, path: Path) -> list[dict[str, Any]]:
        return [i for i in self.issues if i["path"] == str(path)]


async def annotate(paths: list[Path], config: PipelineConfig | None = None) -> Run:
    sink, issue_sink, stats = MemorySink(), MemorySink(), RunStats()
    with anyio.fail_after(10):
        await annotate_files(
            paths, chain=CHAIN, sink=sink, stats=stats, issue_sink=issue_sink, config=config
        )
    return Run(
        [orjson.loads(line) for line in sink.lines],
        [orjson.loads(line) for line in issue_sink.lines],
        stats,
    )


# -- a good session ----------------------------------------------------------------------------


def entry(kind: str, uuid: str, content: object, *, message_id: str | None = None) -> bytes:
    message: dict[str, Any] = {"role": kind, "content": content}
    if kind == "assistant":
        message["id"] = message_id or f"msg-{uuid}"
        message["model"] = "claude-test"
    return orjson.dumps(
        {"type": kind, "uuid": uuid, "sessionId": "good", "message": message},
    )


def good_lines() -> list[bytes]:
    """Six turns: a user ask, a failing Bash call, a site (split over two entries), a fix."""
    return [
        entry("user", "u1", "Run the tests please."),
        entry(
            "assistant",
            "a1",
            [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pytest"}}],
        ),
        entry(
            "user",
            "r1",
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": "Exit code 1\nFAILED test_app.py::test_x",
                    "is_error": True,
                },
            ],
        ),
        entry("assistant", "a2", [{"type": "text", "text": "One test fails."}], message_id="m2"),
        entry(
            "assistant",
            "a3",
            [
                {
                    "type": "tool_use",
                    "id": "t2",
                    "name": "Read",
                    "input": {"file_path": "/src/test_app.py"},
                },
            ],
            message_id="m2",
        ),
        entry(
            "user",
            "r2",
            [{"type": "tool_result", "tool_use_id": "t2", "content": "def test_x(): ..."}],
        ),
        entry("assistant", "a4", [{"type": "text", "text": "Fixed."}]),
    ]


def write_lines(path: Path, lines: list[bytes], *, final_newline: bool = True) -> Path:
    path.write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))
    return path


def write_good(path: Path) -> Path:
    return write_lines(path, good_lines())


def check_good_trace(trace: dict[str, Any]) -> None:
    """The good session's trace, fully annotated."""
    assert [t["role"] for t in trace["turns"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    sites = [t for t in trace["turns"] if "tool_error" in t]
    assert len(sites) == 1
    (site,) = sites
    assert site is trace["turns"][3]
    assert site["tool_error"] == "test_failed"
    assert site["error_meta"]["tool_name"] == "Bash"
    assert site["error_meta"]["tool_use_id"] == "t1"
    assert site["error_meta"]["exit_code"] == 1
    assert site["hint_status"] == "ok"
    assert site["hint"]
    assert "[TOOL_CALL Read]" in site["content"]
    assert "One test fails." in site["content"]


async def assert_good(run: Run, path: Path, config: PipelineConfig | None = None) -> None:
    """``path`` came out of ``run`` exactly as it does alone, with its site and hint."""
    (trace,) = run.for_path(path)
    check_good_trace(trace)
    alone = await annotate([path], config)
    assert alone.issues == []
    assert run.for_path(path) == alone.traces
    assert run.issues_for(path) == []


# -- tests -------------------------------------------------------------------------------------


async def test_good_session_alone(tmp_path: Path) -> None:
    good = write_good(tmp_path / "good.jsonl")
    run = await annotate([good])
    assert run.issues == []
    (trace,) = run.traces
    check_good_trace(trace)
    assert trace["trace_id"] == "good"
    assert run.stats.sites == 1
    assert run.stats.input_issues == 0


@pytest.mark.parametrize("cut", [1, 17, 0.5, -1])
async def test_truncated_last_line(tmp_path: Path, cut: float) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    lines = good_lines()
    extra = entry("user", "u9", "One more thing: also update the changelog, please. Thanks!")
    size = int(len(extra) * cut) if isinstance(cut, float) else cut % len(extra)
    bad = write_lines(tmp_path / "b-bad.jsonl", [*lines, extra[:size]], final_newline=False)
    run = await annotate([tmp_path])
    (found,) = run.issues
    assert found["path"] == str(bad)
    assert found["line"] == len(lines) + 1
    assert "invalid JSON" in found["reason"]
    assert run.stats.input_issues == 1
    # Everything before the cut is there: the same turns as the intact session.
    (trace,) = run.for_path(bad)
    (reference,) = run.for_path(good)
    check_good_trace(trace)
    assert trace["turns"] == reference["turns"]
    await assert_good(run, good)


async def test_truncated_inside_utf8_character(tmp_path: Path) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    lines = good_lines()
    extra = entry("user", "u9", "Ünïcödé ✓")
    cut = extra.index("✓".encode()) + 1  # in the middle of the three bytes of ✓
    bad = write_lines(tmp_path / "b-bad.jsonl", [*lines, extra[:cut]], final_newline=False)
    run = await annotate([tmp_path])
    (found,) = run.issues
    assert (found["path"], found["line"]) == (str(bad), len(lines) + 1)
    assert "UTF-8" in found["reason"]
    check_good_trace(run.for_path(bad)[0])
    await assert_good(run, good)


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"\xff\xfe\x00\x01 not text", "UTF-8"),
        (b'{"type": "user", "message": {"role": "user", "content": "caf\xe9"}}', "UTF-8"),
        (b"\x00\x01\x02 binary-ish but valid UTF-8", "invalid JSON"),
        (b"{not json at all", "invalid JSON"),
    ],
)
async def test_garbage_line(tmp_path: Path, garbage: bytes, reason: str) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    lines = good_lines()
    bad = write_lines(tmp_path / "b-bad.jsonl", [*lines[:3], garbage, *lines[3:]])
    run = await annotate([tmp_path])
    (found,) = run.issues
    assert found["path"] == str(bad)
    assert found["line"] == 4
    assert reason in found["reason"]
    # The file goes on after the bad line: the whole session is there.
    check_good_trace(run.for_path(bad)[0])
    await assert_good(run, good)


@pytest.mark.parametrize("content", [b"", b"\n", b"\n  \n\t\n\r\n"])
async def test_empty_file(tmp_path: Path, content: bytes) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    empty = tmp_path / "b-empty.jsonl"
    empty.write_bytes(content)
    run = await annotate([tmp_path])
    # Skipped, and said so: every input that gives no trace is named with the reason.
    (found,) = run.issues
    assert found["path"] == str(empty)
    assert found["line"] is None
    assert ("empty file (0 bytes)" if not content else "only blank lines") in found["reason"]
    assert run.stats.input_issues == 1
    assert run.for_path(empty) == []
    assert run.stats.empty_files == 1
    assert run.stats.files == 2
    assert run.stats.traces == 1
    await assert_good(run, good)


@pytest.mark.parametrize("pretty", [True, False])
async def test_json_array_file(tmp_path: Path, pretty: bool) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    entries = [orjson.loads(line) for line in good_lines()]
    array = tmp_path / "b-array.jsonl"
    array.write_bytes(orjson.dumps(entries, option=orjson.OPT_INDENT_2 if pretty else 0))
    run = await annotate([tmp_path])
    (found,) = run.issues
    assert found["path"] == str(array)
    assert found["line"] is None
    assert "JSON array" in found["reason"]
    assert run.stats.input_issues == 1
    assert run.for_path(array) == []
    await assert_good(run, good)


async def test_binary_file_is_skipped_with_few_issues(tmp_path: Path) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    rng = random.Random(20240601)  # noqa: S311 -- deterministic noise, not crypto
    data = b"\x89PNG\r\n\x1a\n" + rng.randbytes(512 * 1024)
    binary = tmp_path / "b-image.jsonl"
    binary.write_bytes(data)
    z_good = write_good(tmp_path / "z-good.jsonl")
    assert data.count(b"\n") > 10 * DEFAULT_ISSUES_PER_FILE  # would be thousands of issues
    run = await annotate([tmp_path])
    issues = run.issues_for(binary)
    assert 0 < len(issues) <= DEFAULT_ISSUES_PER_FILE + 1
    assert len(run.issues) == len(issues)
    assert run.stats.input_issues <= DEFAULT_ISSUES_PER_FILE + 1
    line_issues = [i for i in issues if i["line"] is not None]
    assert [i["line"] for i in line_issues] == sorted({i["line"] for i in line_issues})
    assert line_issues[0]["line"] == 1
    # The file is reported as skipped, once, for the whole file.
    (whole,) = [i for i in issues if i["line"] is None]
    assert "skipped" in whole["reason"]
    assert run.for_path(binary) == []
    await assert_good(run, good)
    await assert_good(run, z_good)


@pytest.mark.parametrize(
    ("line", "type_name"),
    [(b"42", "int"), (b'"a string"', "str"), (b"null", "NoneType"), (b"[1, 2]", "list")],
)
async def test_valid_json_but_not_an_object(tmp_path: Path, line: bytes, type_name: str) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    lines = good_lines()
    bad = write_lines(tmp_path / "b-bad.jsonl", [lines[0], line, *lines[1:]])
    run = await annotate([tmp_path])
    (found,) = run.issues
    assert (found["path"], found["line"]) == (str(bad), 2)
    assert "expected a JSON object" in found["reason"]
    assert type_name in found["reason"]
    check_good_trace(run.for_path(bad)[0])
    await assert_good(run, good)


@pytest.mark.parametrize(
    ("bad_entry", "reason"),
    [
        (
            {"type": "user", "uuid": "x", "message": {"role": "user", "content": 42}},
            "'user' message content is int",
        ),
        (
            {"type": "assistant", "uuid": "x", "message": {"role": "assistant", "content": None}},
            "'assistant' message content is NoneType",
        ),
        ({"type": "user", "uuid": "x", "message": "hello"}, "no 'message' object"),
        ({"uuid": "x", "message": {"content": "hi"}}, "no string 'type'"),
        (
            {
                "type": "user",
                "message": {"content": [{"type": "tool_result", "content": "x"}]},
            },
            "tool_use_id",
        ),
        (
            {
                "type": "assistant",
                "message": {"id": "m9", "content": [{"type": "tool_use", "id": "t9"}]},
            },
            "tool_use block",
        ),
    ],
)
async def test_entry_of_the_wrong_shape(
    tmp_path: Path, bad_entry: dict[str, Any], reason: str
) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    lines = good_lines()
    bad = write_lines(tmp_path / "b-bad.jsonl", [*lines[:5], orjson.dumps(bad_entry), *lines[5:]])
    run = await annotate([tmp_path])
    (found,) = run.issues
    assert (found["path"], found["line"]) == (str(bad), 6)
    assert reason in found["reason"]
    check_good_trace(run.for_path(bad)[0])
    await assert_good(run, good)


async def test_tool_result_without_tool_use(tmp_path: Path) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    orphan = write_lines(
        tmp_path / "b-orphan.jsonl",
        [
            entry("user", "u1", "Continue where you left off."),
            entry(
                "user",
                "r1",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": "gone",
                        "content": "Exit code 2\nmake: *** No rule to make target",
                        "is_error": True,
                    },
                    {"type": "tool_result", "tool_use_id": "gone-too", "content": "ok"},
                ],
            ),
            entry("assistant", "a1", [{"type": "text", "text": "Let me check the Makefile."}]),
        ],
    )
    run = await annotate([tmp_path])
    assert run.issues == []
    assert run.stats.orphan_results == 2
    (trace,) = run.for_path(orphan)
    assert [t["role"] for t in trace["turns"]] == ["user", "user", "assistant"]
    assert "No rule to make target" in trace["turns"][1]["content"]
    site = trace["turns"][2]
    assert site["tool_error"] == "tool_error"
    assert site["error_meta"]["tool_use_id"] == "gone"
    assert site["error_meta"]["tool_name"] is None
    assert site["error_meta"]["tool_input"] is None
    assert site["error_meta"]["exit_code"] == 2
    assert site["hint_status"] == "ok"
    await assert_good(run, good)


def padded_entry(size: int) -> bytes:
    """A valid user entry of exactly ``size`` bytes."""
    bare = entry("user", "pad", "")
    line = entry("user", "pad", "x" * (size - len(bare)))
    assert len(line) == size
    return line


@pytest.mark.parametrize("chunk_bytes", [100, 1000, 1024 * 1024])
async def test_overlong_line(tmp_path: Path, chunk_bytes: int) -> None:
    limit = 2000
    config = PipelineConfig(limits=Limits(max_line_bytes=limit, chunk_bytes=chunk_bytes))
    good = write_good(tmp_path / "a-good.jsonl")
    lines = good_lines()
    assert max(len(line) for line in lines) < limit
    at_limit = padded_entry(limit)  # exactly at the limit: still read
    over = padded_entry(limit + 1)
    huge = padded_entry(50 * limit)
    bad = write_lines(
        tmp_path / "b-bad.jsonl",
        [lines[0], over, *lines[1:4], huge, *lines[4:], at_limit, over],
        final_newline=False,
    )
    run = await annotate([tmp_path], config)
    issues = run.issues_for(bad)
    assert [i["line"] for i in issues] == [2, 6, len(lines) + 4]
    for found in issues:
        assert f"{limit}-byte limit" in found["reason"]
    assert str(limit + 1) in issues[0]["reason"]
    assert str(50 * limit) in issues[1]["reason"]
    assert run.issues == issues
    (trace,) = run.for_path(bad)
    turns = trace["turns"]
    # The rest of the file is read, including the line exactly at the limit.
    assert turns[-1]["role"] == "user"
    assert turns[-1]["content"] == "x" * (limit - len(entry("user", "pad", "")))
    check_good_trace({**trace, "turns": turns[:-1]})
    await assert_good(run, good, config)


@dataclass
class Unreadable:
    path: Path
    sock: socket.socket | None = None


def make_unreadable(tmp_path: Path, how: str) -> Unreadable:
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root reads files whatever their mode")
        path = write_good(tmp_path / "b-locked.jsonl")
        path.chmod(0)
        return Unreadable(path)
    # A Unix socket exists and is not a folder, but open() fails on it even for root.
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no Unix sockets here")
    path = tmp_path / "b-socket.jsonl"
    sock = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()  # noqa: PTH109 -- bind a short relative name (108-byte limit)
    os.chdir(tmp_path)
    try:
        sock.bind(path.name)
    finally:
        os.chdir(cwd)
    return Unreadable(path, sock)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes and sockets")
@pytest.mark.parametrize("how", ["chmod", "socket"])
async def test_unreadable_file(tmp_path: Path, how: str) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    unreadable = make_unreadable(tmp_path, how)
    try:
        run = await annotate([good, unreadable.path])
    finally:
        if unreadable.sock is not None:
            unreadable.sock.close()
        unreadable.path.chmod(0o600)
    (found,) = run.issues
    assert found["path"] == str(unreadable.path)
    assert found["line"] is None
    assert "cannot read file" in found["reason"]
    assert run.stats.files_unreadable == 1
    assert run.for_path(unreadable.path) == []
    await assert_good(run, good)


async def test_nonexistent_path(tmp_path: Path) -> None:
    good = write_good(tmp_path / "a-good.jsonl")
    missing = tmp_path / "nowhere" / "missing.jsonl"
    run = await annotate([missing, good])
    (found,) = run.issues
    assert found["path"] == str(missing)
    assert found["line"] is None
    assert "no such file" in found["reason"]
    assert run.stats.files == 1
    await assert_good(run, good)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
async def test_symlink_loop_in_input_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    inner = root / "project"
    inner.mkdir(parents=True)
    good = write_good(root / "a-good.jsonl")
    inner_good = write_good(inner / "b-good.jsonl")
    (inner / "loop").symlink_to(root, target_is_directory=True)
    (inner / "self").symlink_to(".", target_is_directory=True)
    (root / "z-again").symlink_to(inner, target_is_directory=True)
    dangling = root / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "gone.jsonl")
    run = await annotate([root])
    # Folder links that come back around are followed once, silently; a link that leads
    # nowhere is an input that was skipped, and is named.
    (found,) = run.issues
    assert found == {
        "path": str(dangling),
        "line": None,
        "reason": f"dangling symlink: its target {tmp_path / 'gone.jsonl'} does not exist",
    }
    assert run.stats.files == 2
    assert sorted(t["source"]["path"] for t in run.traces) == sorted([str(good), str(inner_good)])
    await assert_good(run, good)
    await assert_good(run, inner_good)


async def test_duplicate_entries_are_read_once(tmp_path: Path) -> None:
    # A session written twice over itself (as a resumed or copied session can be): every
    # entry, the failing result included, appears twice with the same uuid.
    lines = good_lines()
    doubled = write_lines(tmp_path / "b-doubled.jsonl", [*lines[:3], *lines, *lines[3:]])
    good = write_good(tmp_path / "a-good.jsonl")
    run = await annotate([good, doubled])
    assert run.issues == []
    assert run.stats.duplicate_entries == len(lines)
    (trace,) = run.for_path(doubled)
    (alone,) = run.for_path(good)
    assert trace["turns"] == alone["turns"]
    check_good_trace(trace)
    assert "duplicate entries skipped" in run.stats.summary()
    await assert_good(run, good)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"k": value}
    return value


async def test_deeply_nested_json(tmp_path: Path) -> None:
    lines = good_lines()
    # Deeper than any JSON parser should follow: recorded as invalid JSON, the line skipped.
    too_deep = b"[" * 5000 + b"]" * 5000
    # Deep, but parseable: a tool input nested 600 levels (beyond orjson's 254-level limit on
    # output) is kept, bounded, as text.
    deep_call = json.dumps(
        {
            "type": "assistant",
            "uuid": "deep",
            "message": {
                "role": "assistant",
                "id": "msg-deep",
                "content": [{"type": "tool_use", "id": "t9", "name": "Bash", "input": nested(600)}],
            },
        },
    ).encode()
    deep_result = entry(
        "user",
        "deep-r",
        [{"type": "tool_result", "tool_use_id": "t9", "content": "Exit code 3", "is_error": True}],
    )
    after = entry("assistant", "deep-a", [{"type": "text", "text": "Retrying."}])
    bad = write_lines(tmp_path / "b-deep.jsonl", [*lines, too_deep, deep_call, deep_result, after])
    good = write_good(tmp_path / "a-good.jsonl")
    run = await annotate([good, bad])
    (found,) = run.issues
    assert found["path"] == str(bad)
    assert found["line"] == len(lines) + 1
    assert "invalid JSON" in found["reason"]
    assert "depth" in found["reason"]
    (trace,) = run.for_path(bad)
    site = [t for t in trace["turns"] if "tool_error" in t][-1]
    assert site["error_meta"]["tool_name"] == "Bash"
    assert site["error_meta"]["tool_input"].startswith("{'k': {'k':")
    assert len(site["error_meta"]["tool_input"]) <= Limits().tool_input_chars
    await assert_good(run, good)


async def test_line_of_50_mb_with_default_limits(tmp_path: Path) -> None:
    lines = good_lines()
    size = 50 * 1024 * 1024
    big = padded_entry(size)
    path = write_lines(tmp_path / "b-big.jsonl", [lines[0], big, *lines[1:]])
    good = write_good(tmp_path / "a-good.jsonl")
    run = await annotate([good, path])
    assert run.issues == []
    (trace,) = run.for_path(path)
    turns = trace["turns"]
    # The 50 MB user message is read whole (transcript content is training data).
    assert [t["role"] for t in turns[:2]] == ["user", "user"]
    assert len(turns[1]["content"]) == size - len(entry("user", "pad", ""))
    check_good_trace({**trace, "turns": [turns[0], *turns[2:]]})
    await assert_good(run, good)


class DeletingSink(MemorySink):
    """A sink that deletes a not-yet-read input file when the first trace is written."""

    def __init__(self, victim: Path) -> None:
        super().__init__()
        self.victim = victim

    async def write(self, data: bytes) -> None:
        if self.victim.exists():
            self.victim.unlink()
        await super().write(data)


async def test_file_that_disappears_during_the_run(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir()
    goods = [write_good(folder / f"a-{i:02}.jsonl") for i in range(30)]
    victim = write_good(folder / "z-victim.jsonl")
    sink, issue_sink, stats = DeletingSink(victim), MemorySink(), RunStats()
    with anyio.fail_after(20):
        await annotate_files(
            [folder],
            chain=CHAIN,
            sink=sink,
            stats=stats,
            issue_sink=issue_sink,
            config=PipelineConfig(buffer=1),
        )
    assert not victim.exists()
    traces = [orjson.loads(line) for line in sink.lines]
    issues = [orjson.loads(line) for line in issue_sink.lines]
    assert sorted(t["source"]["path"] for t in traces) == [str(g) for g in goods]
    for trace in traces:
        check_good_trace(trace)
    (found,) = issues
    assert found["path"] == str(victim)
    assert found["line"] is None
    assert "cannot read file" in found["reason"]
    assert stats.files_unreadable == 1
