"""Sessions already in memory (``SessionBlob``) read exactly like the same files on disk."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import anyio
import orjson
import pytest

from tracehint import (
    HintChain,
    RawErrorLayer,
    RunStats,
    SessionBlob,
    TemplateLayer,
    annotate_files,
    read_agent_meta,
)
from tracehint._ingest._lines import Line, LineSplitter, OverlongLine, split_lines
from tracehint._output import MemorySink

if TYPE_CHECKING:
    from pathlib import Path

CHAIN = HintChain((TemplateLayer(), RawErrorLayer()))


async def run(inputs: list[Path] | list[SessionBlob]) -> tuple[set[bytes], set[bytes], RunStats]:
    sink, issues, stats = MemorySink(), MemorySink(), RunStats()
    await annotate_files(inputs, chain=CHAIN, sink=sink, stats=stats, issue_sink=issues)
    return set(sink.lines), set(issues.lines), stats


def session_files(corpus: Path) -> list[Path]:
    (corpus / "broken.jsonl").write_bytes(b'{"type": "user", "message"\n\xff\xfe\n')
    return sorted(corpus.rglob("*.jsonl"))


async def test_blobs_give_the_same_traces_as_files(sessions_copy: Path) -> None:
    files = session_files(sessions_copy)
    blobs = [
        SessionBlob(str(path), await anyio.Path(path).read_bytes(), read_agent_meta(str(path)))
        for path in files
    ]
    from_files, file_issues, file_stats = await run(files)
    from_blobs, blob_issues, blob_stats = await run(blobs)
    assert len(from_files) > 5
    assert from_blobs == from_files
    assert blob_issues == file_issues
    assert len(file_issues) == 2
    assert blob_stats.sites == file_stats.sites
    assert blob_stats.lines == file_stats.lines
    # The sub-agent meta read beside the file made it into the traces.
    agents = [orjson.loads(line)["source"] for line in from_blobs]
    assert any(source.get("agent_type") for source in agents)


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_splitter_gives_the_same_lines_whatever_the_chunks(chunk: int) -> None:
    data = b'{"a": 1}\n\n  \n{"b": "' + b"x" * 50 + b'"}\r\n{"c": 3}\n' + b"y" * 40 + b"\n{tail"
    whole = [line for batch in split_lines(data, max_line_bytes=30) for line in batch]
    splitter = LineSplitter(30)
    pieces = []
    for start in range(0, len(data), chunk):
        pieces += splitter.feed(data[start : start + chunk])
    pieces += splitter.finish()
    assert pieces == whole
    assert [(type(x).__name__, x.number) for x in whole] == [
        ("Line", 1),
        ("OverlongLine", 4),
        ("Line", 5),
        ("OverlongLine", 6),
        ("Line", 7),
    ]


def reference_lines(data: bytes, limit: int) -> list[Line | OverlongLine]:
    """What the splitter must give: every newline-separated line, numbered from 1."""
    pieces = data.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    out: list[Line | OverlongLine] = []
    for number, piece in enumerate(pieces, 1):
        if len(piece) > limit:
            out.append(OverlongLine(number, len(piece)))
        elif piece.strip():
            out.append(Line(number, piece))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_splitter_matches_a_plain_split_for_random_input_and_chunks(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 -- test data, not cryptography
    alphabet = [b"a", b"{", b" ", b"\t", b"\n", b"\n", b"\r", "é".encode()]
    data = b"".join(rng.choice(alphabet) * rng.randint(1, 12) for _ in range(rng.randint(0, 400)))
    limit = rng.randint(1, 40)
    splitter = LineSplitter(limit)
    got: list[Line | OverlongLine] = []
    position = 0
    while position < len(data):
        size = rng.randint(1, 50)
        got += splitter.feed(data[position : position + size])
        position += size
    got += splitter.finish()
    assert got == reference_lines(data, limit)
