"""Large lines and traces: parsed and serialised off the event loop, with the same output.

Lines and traces from ``PipelineConfig.large_json_bytes`` up go through worker threads; the
output is the same whatever the threshold. Long texts are classified and clamped from their
two ends, without copying all of them.
"""

from __future__ import annotations

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
from tracehint._limits import clamp, clamp_middle, clamp_middle_stripped, clamp_stripped
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
