"""Large lines and traces: parsed and serialised off the event loop, with the same output.

Lines and traces from ``PipelineConfig.large_json_bytes`` up go through worker threads; the
output is the same whatever the threshold. Long texts are classified and clamped from their
two ends, without copying all of them.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

import anyio
import orjson
import pytest

from tracehint import (
    Classifier,
    ErrorKind,
    HintChain,
    PipelineConfig,
    RawErrorLayer,
    RunStats,
    TemplateLayer,
    annotate_files,
)
from tracehint._ingest import _lines
from tracehint._ingest._lines import Line, LineSplitter, OverlongLine
from tracehint._jsonparts import contains, dump_parts, loads
from tracehint._limits import Limits, clamp, clamp_middle, clamp_middle_stripped, clamp_stripped
from tracehint._output import JsonlSink, MemorySink, SinkState

if TYPE_CHECKING:
    from pathlib import Path

CHAIN = HintChain((TemplateLayer(), RawErrorLayer()))


async def _annotate(root: Path, config: PipelineConfig) -> tuple[list[bytes], RunStats]:
    sink, stats = MemorySink(), RunStats()
    with anyio.fail_after(60):
        await annotate_files([root], chain=CHAIN, sink=sink, stats=stats, config=config)
    return sink.lines, stats


async def test_threaded_parsing_and_serialising_give_the_same_output(corpus: Path) -> None:
    inline, inline_stats = await _annotate(corpus, PipelineConfig(large_json_bytes=1 << 40))
    threaded, threaded_stats = await _annotate(corpus, PipelineConfig(large_json_bytes=1))
    assert threaded == inline
    assert threaded_stats.to_dict()["sites"] == inline_stats.to_dict()["sites"]
    assert threaded_stats.traces == inline_stats.traces > 0


def _session(output: str) -> bytes:
    entries = [
        {"type": "user", "uuid": "u1", "message": {"role": "user", "content": "Run it."}},
        {
            "type": "assistant",
            "uuid": "a1",
            "message": {
                "id": "m1",
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "c1", "name": "Bash", "input": {"command": "make"}}
                ],
            },
        },
        {
            "type": "user",
            "uuid": "u2",
            "message": {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "c1",
                        "content": output,
                        "is_error": True,
                    }
                ],
            },
        },
        {
            "type": "assistant",
            "uuid": "a2",
            "message": {"id": "m2", "role": "assistant", "content": "Let me look."},
        },
    ]
    return b"\n".join(orjson.dumps(entry) for entry in entries) + b"\n"


async def test_a_long_line_is_read_whole(tmp_path: Path) -> None:
    output = "Exit code 2\n" + "building step ok\n" * 200_000 + "fatal: the build broke\n"
    path = tmp_path / "long.jsonl"
    path.write_bytes(_session(output))
    async with JsonlSink(str(tmp_path / "out.jsonl")) as sink:
        stats = RunStats()
        await annotate_files([path], chain=CHAIN, sink=sink, stats=stats)
    (trace,) = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert trace["messages"][2]["content"] == output
    (site,) = [turn for turn in trace["turns"] if "tool_error" in turn]
    assert site["error_meta"]["error_message"].endswith("fatal: the build broke")
    assert stats.sites == 1


def test_a_long_output_is_classified_from_its_two_ends() -> None:
    classifier = Classifier()
    filler = "step ok\n" * 200_000  # 1.6 MB
    at_end = classifier.classify(f"Exit code 1\n{filler}npm ERR! missing script: lint", "Bash")
    in_middle = classifier.classify(
        f"Exit code 1\n{filler}bash: foo: command not found\n{filler}", "Bash", command="x"
    )
    assert at_end.kind is ErrorKind.COMMAND_FAILED
    assert at_end.facts.key_line == "npm ERR! missing script: lint"
    assert in_middle.kind is ErrorKind.COMMAND_FAILED  # the middle of megabytes is not read


def test_clamping_a_long_text_without_copying_it_keeps_the_result() -> None:
    rng = random.Random(5)  # noqa: S311 -- reproducible test inputs, not secrets
    body = "".join(rng.choice("ab \n") for _ in range(3000))
    for text in (
        f"  \n{body * 500}\n \t",
        body * 500,
        f"\u00a0{body * 500}x",
        "\n" * 2_000_000,
        "x" * 2_000_000 + " ",
    ):
        for limit in (1, 7, 60, 300, 2000, 10**7):
            assert clamp_stripped(text, limit) == clamp(text.strip(), limit)
            assert clamp_middle_stripped(text, limit) == clamp_middle(text.strip(), limit)


async def test_a_sink_takes_lines_only_while_open(tmp_path: Path) -> None:
    """Lines written before the sink is entered, or after it closed, are an error, not lost."""
    sink = JsonlSink(str(tmp_path / "out.jsonl"))

    def state() -> SinkState:  # read afresh each time (no narrowing across awaits)
        return sink.state

    assert state() is SinkState.NEW
    with pytest.raises(RuntimeError, match="is new"):
        await sink.write(b"{}\n")
    async with sink:
        assert state() is SinkState.OPEN
        await sink.write(b"{}\n")
    assert state() is SinkState.CLOSED
    assert (tmp_path / "out.jsonl").read_bytes() == b"{}\n"
    with pytest.raises(RuntimeError, match="is closed"):
        await sink.write(b"{}\n")
    with pytest.raises(RuntimeError, match="entered once"):
        await sink.__aenter__()


def test_dump_parts_gives_the_bytes_of_one_dumps() -> None:
    rng = random.Random(11)  # noqa: S311 -- reproducible test inputs, not secrets
    alphabet = ["a", '"', "\\", "\n", "\x01", "é", "漢", "😀", "\u2028", " ", "\x7f", "\t"]
    for _ in range(50):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 2000)))
        value = {"a": [text, {"b": text[:5], "c": text}], "d": 1.5, "e": None, "t": (text, "x")}
        expected = orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
        for slice_chars in (1, 7, 100, 5000):
            parts = dump_parts(
                value,
                option=orjson.OPT_APPEND_NEWLINE,
                min_chars=rng.randrange(1, 50),
                slice_chars=slice_chars,
            )
            assert b"".join(parts) == expected
    assert dump_parts({"a": "short"}) == [orjson.dumps({"a": "short"})]


async def test_a_huge_string_is_written_in_parts_with_the_same_bytes(tmp_path: Path) -> None:
    """Whatever the thresholds and the sink, a trace with a huge string comes out the same."""
    output = "Exit code 2\n" + 'a "quoted" \\ line é 漢 😀\n' * 40_000 + "fatal: it broke\n"
    root = tmp_path / "in"
    root.mkdir()
    (root / "long.jsonl").write_bytes(_session(output))
    expected, _ = await _annotate(root, PipelineConfig(large_json_bytes=1 << 40))
    for config in (
        PipelineConfig(large_json_bytes=1, huge_string_chars=1000),
        PipelineConfig(large_json_bytes=1, huge_string_chars=1),
    ):
        in_memory, _ = await _annotate(root, config)
        assert in_memory == expected
        out = tmp_path / "out.jsonl"
        async with JsonlSink(str(out), overwrite=True) as sink:
            await annotate_files([root], chain=CHAIN, sink=sink, stats=RunStats(), config=config)
        assert out.read_bytes() == b"".join(expected)


def _counts(stats: RunStats) -> dict[str, object]:
    found = stats.to_dict()
    return {key: value for key, value in found.items() if "second" not in key}


def _split(data: bytes, chunk: int, **options: object) -> list[Line | OverlongLine]:
    splitter = LineSplitter(100, **options)  # type: ignore[arg-type]
    out: list[Line | OverlongLine] = []
    for start in range(0, len(data), chunk):
        out += splitter.feed(data[start : start + chunk])
    return out + splitter.finish()


@pytest.mark.parametrize("slice_bytes", [1, 7, _lines.READ_AGAIN_BYTES])
def test_a_long_line_read_again_whole_gives_the_same_lines(
    monkeypatch: pytest.MonkeyPatch, slice_bytes: int
) -> None:
    """Deferred lines (read again with ``read_at``, a slice per call) come out as joined ones do."""
    monkeypatch.setattr(_lines, "READ_AGAIN_BYTES", slice_bytes)
    rng = random.Random(7)  # noqa: S311 -- reproducible test inputs, not secrets
    calls: list[tuple[int, int]] = []
    for _ in range(300):
        lines = [
            rng.choice([b"", b"  ", b"\t \r", b"x" * rng.randrange(1, 130), b" " * 60])
            for _ in range(rng.randrange(1, 12))
        ]
        data = b"\n".join(lines) + rng.choice([b"", b"\n", b"\n\n"])

        def read_at(size: int, offset: int, data: bytes = data) -> bytes:
            assert size <= slice_bytes
            calls.append((size, offset))
            return data[offset : offset + size]

        for chunk in (1, 3, 16, 64, 1000):
            expected = _split(data, chunk)
            for defer in (1, 10, 50):
                assert _split(data, chunk, defer_bytes=defer, read_at=read_at) == expected
    assert calls  # lines were deferred and read again


def test_a_file_that_changes_under_a_long_line_is_an_error() -> None:
    splitter = LineSplitter(100, defer_bytes=4, read_at=lambda size, _: b"x" * (size - 1))
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"cdef") == []
    with pytest.raises(OSError, match="changed while it was read"):
        splitter.feed(b"g\n")


async def test_long_lines_of_a_file_give_the_same_output_read_again_or_joined(
    tmp_path: Path,
) -> None:
    output = "Exit code 2\n" + "é log line 漢\n" * 30_000 + "fatal: it broke\n"
    root = tmp_path / "in"
    root.mkdir()
    (root / "long.jsonl").write_bytes(b"  \n" + _session(output) + b" " * 5000 + b"\n{")
    joined, joined_stats = await _annotate(
        root, PipelineConfig(large_json_bytes=1 << 40, limits=Limits(chunk_bytes=1000))
    )
    for large in (1, 1000, 100_000):
        config = PipelineConfig(large_json_bytes=large, limits=Limits(chunk_bytes=1000))
        again, stats = await _annotate(root, config)
        assert again == joined
        assert _counts(stats) == _counts(joined_stats)
        assert stats.input_issues == 1  # the last line, "{"


def _json_texts(rng: random.Random) -> list[bytes]:
    alphabet = ["a", "b", '"', "\\", "\n", "\x01", "é", "漢", "😀", "\u2028", " ", "/", "u", "d83d"]

    def text(most: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, most)))

    value: object = {
        "k": text(30),
        "big": text(3000),
        "l": [text(2000), 1, None, {"x": text(900)}, ""],
        "n": 1.5,
    }
    values = [value, text(2000), [text(1500), text(1500)]]
    return [orjson.dumps(v) for v in values] + [
        json.dumps(v, separators=(",", ":")).encode()
        for v in values  # \\u escapes everywhere
    ]


def test_loads_in_slices_gives_what_orjson_gives() -> None:
    """The same value, or the same error, whatever the thresholds."""
    rng = random.Random(13)  # noqa: S311 -- reproducible test inputs, not secrets
    for _ in range(40):
        for data in _json_texts(rng):
            expected = orjson.loads(data)
            for min_bytes in (1, 10, 500):
                for slice_bytes in (1, 6, 13, 300):
                    assert loads(data, min_bytes=min_bytes, slice_bytes=slice_bytes) == expected
            for broken in (data[: len(data) // 2], data[:-1], data + b"x", data[:-1] + b"\\"):
                with pytest.raises(orjson.JSONDecodeError) as plain:
                    orjson.loads(broken)
                with pytest.raises(orjson.JSONDecodeError) as sliced:
                    loads(broken, min_bytes=5, slice_bytes=7)
                assert str(sliced.value) == str(plain.value)
    pairs = "😀" * 3000 + '\\"' * 1000
    for data in (orjson.dumps({"a": pairs}), json.dumps({"a": pairs}).encode()):
        for slice_bytes in (1, 6, 7, 12, 13, 100):
            assert loads(data, min_bytes=10, slice_bytes=slice_bytes) == {"a": pairs}
    long_a, long_b = b"x" * 100, b"y" * 100
    assert loads(b'{"a":"' + long_a + b'","a":"' + long_b + b'"}', min_bytes=10) == {"a": "y" * 100}
    assert loads(b'{"' + long_a + b'":1}', min_bytes=10) == {"x" * 100: 1}


def test_contains_finds_a_needle_across_windows() -> None:
    rng = random.Random(17)  # noqa: S311 -- reproducible test inputs, not secrets
    for _ in range(2000):
        data = bytes(rng.choice(b"ab") for _ in range(rng.randrange(0, 60)))
        needle = bytes(rng.choice(b"ab") for _ in range(rng.randrange(1, 5)))
        for window in (1, 2, 3, 7, 100):
            assert contains(data, needle, window=window) == (needle in data)
