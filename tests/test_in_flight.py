"""How many traces the hint stage holds: a bound of its own, not the judge's concurrency."""

from __future__ import annotations

from collections import Counter

import anyio
import orjson
import pytest

from tracehint import (
    ConfigError,
    Hint,
    HintChain,
    HintRequest,
    HintSource,
    HintStatus,
    JudgeAuthError,
    PipelineConfig,
    RunStats,
    SessionBlob,
    annotate_files,
)
from tracehint._annotator import AnnotatorConfig
from tracehint._output import MemorySink


def session(number: int, sites: int, padding: int = 0) -> SessionBlob:
    """A Claude Code session of ``sites`` failed commands; ``padding`` characters of talk."""
    lines: list[dict[str, object]] = [
        {
            "type": "user",
            "uuid": f"u{number}",
            "parentUuid": None,
            "sessionId": f"s{number}",
            "message": {"role": "user", "content": "Fix the build. " + "x" * padding},
        },
    ]
    parent = f"u{number}"
    for step in range(sites):
        call, result, reply = f"a{number}-{step}", f"r{number}-{step}", f"b{number}-{step}"
        use: dict[str, object] = {"type": "tool_use", "id": f"t{number}-{step}", "name": "Bash"}
        use["input"] = {"command": f"make target{step}"}
        block = {
            "type": "tool_result",
            "tool_use_id": f"t{number}-{step}",
            "content": f"Exit code 2\ntrace {number} site {step} failed",
            "is_error": True,
        }
        text = {"type": "text", "text": "Trying something else."}
        for uuid, kind, content in (
            (call, "assistant", [use]),
            (result, "user", [block]),
            (reply, "assistant", [text]),
        ):
            message: dict[str, object] = {"role": kind, "content": content}
            if kind == "assistant":
                message["id"] = f"m-{uuid}"
            entry: dict[str, object] = {"type": kind, "uuid": uuid, "parentUuid": parent}
            entry["sessionId"] = f"s{number}"
            entry["message"] = message
            lines.append(entry)
            parent = uuid
    data = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"
    return SessionBlob(f"session-{number}.jsonl", data)


class Watching:
    """A slow layer that records how many traces and sites it is asked about at once."""

    name = "judge"

    def __init__(self) -> None:
        self.sites = 0
        self.traces: Counter[str] = Counter()
        self.most_sites = 0
        self.most_traces = 0

    async def propose(self, request: HintRequest) -> Hint:
        trace = request.site.error_message.split()[4]
        self.sites += 1
        self.traces[trace] += 1
        self.most_sites = max(self.most_sites, self.sites)
        self.most_traces = max(self.most_traces, len(self.traces))
        await anyio.sleep(0.01)
        self.sites -= 1
        self.traces[trace] -= 1
        if not self.traces[trace]:
            del self.traces[trace]
        return Hint("Run the target that exists instead.", HintSource.JUDGE, HintStatus.OK)


async def run(blobs: list[SessionBlob], config: PipelineConfig) -> tuple[Watching, RunStats]:
    layer = Watching()
    sink, stats = MemorySink(), RunStats()
    with anyio.fail_after(30):
        await annotate_files(
            blobs, chain=HintChain((layer,)), sink=sink, stats=stats, config=config
        )
    assert stats.traces == len(blobs)
    assert stats.hint_status == {"ok": stats.sites}
    return layer, stats


@pytest.mark.parametrize("concurrency", [4, 256])
async def test_big_traces_in_flight_are_bounded_whatever_the_concurrency(concurrency: int) -> None:
    blobs = [session(n, sites=3, padding=50_000) for n in range(12)]
    config = PipelineConfig(
        max_traces_in_flight=2, max_trace_bytes_in_flight=100_000, concurrency=concurrency
    )
    layer, _ = await run(blobs, config)
    assert layer.most_traces == 2


async def test_small_traces_beyond_the_count_keep_the_requests_busy() -> None:
    blobs = [session(n, sites=1) for n in range(40)]
    config = PipelineConfig(max_traces_in_flight=1, concurrency=8)
    layer, _ = await run(blobs, config)
    # More than one trace at once (they are small), up to twice the requests in flight.
    assert 8 <= layer.most_sites <= 16
    alone = PipelineConfig(max_traces_in_flight=1, max_trace_bytes_in_flight=0)
    layer, _ = await run(blobs, alone)
    assert layer.most_sites == 1


def test_the_bounds_come_from_the_annotator_config() -> None:
    config = AnnotatorConfig(max_traces_in_flight=3, max_trace_bytes_in_flight=1000).pipeline()
    assert (config.max_traces_in_flight, config.max_trace_bytes_in_flight) == (3, 1000)
    with pytest.raises(ConfigError):
        AnnotatorConfig(max_traces_in_flight=0)


async def test_never_more_traces_than_requests_in_flight() -> None:
    blobs = [session(n, sites=2) for n in range(10)]
    layer, _ = await run(blobs, PipelineConfig(max_traces_in_flight=8, concurrency=1))
    assert layer.most_traces == 1  # offline, or one request at a time: one trace at a time
    layer, _ = await run(blobs, PipelineConfig(max_traces_in_flight=8, concurrency=3))
    assert 1 < layer.most_traces <= 3


class Refusing:
    """A judge layer whose server refuses the key: the first site stops the run."""

    name = "judge"

    async def propose(self, request: HintRequest) -> Hint:  # noqa: ARG002 -- the layer protocol
        await anyio.lowlevel.checkpoint()
        raise JudgeAuthError("the judge answered HTTP 401: 'Incorrect API key provided.'")


async def test_a_failed_stage_stops_the_run_with_its_own_error_only() -> None:
    # The hint stage fails while the stage before it is sending (buffers of one): that
    # stage then finds the stream closed, which must not be reported beside the real error.
    blobs = [session(n, sites=1) for n in range(40)]
    for _ in range(10):
        with pytest.raises(BaseExceptionGroup) as caught:
            await annotate_files(
                blobs,
                chain=HintChain((Refusing(),)),
                sink=MemorySink(),
                stats=RunStats(),
                config=PipelineConfig(buffer=1, concurrency=1),
            )
        broken, rest = caught.value.split(anyio.BrokenResourceError)
        assert broken is None
        assert rest is not None
        assert rest.subgroup(JudgeAuthError) is not None
