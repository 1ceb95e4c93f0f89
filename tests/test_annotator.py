"""The embedding API for rollout workers: OpenAI-style messages in, hinted traces out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import tracehint
from tracehint import ConfigError, ErrorKind, HintSource, HintStatus
from tracehint._judge import JudgeConfig, RetryPolicy
from tracehint._mockjudge import MockJudge, MockJudgeConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


def rollout(i: int = 0) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": f"Fix bug {i}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"c{i}",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "src/x.py"}'},
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": f"c{i}",
            "content": f"Error: No such file or directory: src/x{i}.py",
        },
        {"role": "assistant", "content": "Let me list the folder first."},
    ]


async def test_annotate_offline() -> None:
    async with tracehint.Annotator() as ann:
        trace = await ann.annotate(rollout())
    sites = list(trace.sites())
    assert len(sites) == 1
    index, turn, site = sites[0]
    assert index == 4
    assert site.kind is ErrorKind.FILE_NOT_FOUND
    assert site.tool_name == "read_file"
    assert turn.hint is not None
    assert turn.hint.source is HintSource.TEMPLATE


async def test_annotate_with_judge_and_teacher_messages(tmp_path: Path) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        config = tracehint.AnnotatorConfig(
            layers=("judge", "template"),
            judge=JudgeConfig(url=judge.url, model="mock-judge"),
            cache_path=tmp_path / "c.sqlite3",
        )
        async with tracehint.Annotator(config) as ann:
            trace = await ann.annotate(rollout(), trace_id="r0")
    assert trace.trace_id == "r0"
    index, turn, _ = next(trace.sites())
    assert turn.hint is not None
    assert turn.hint.source is HintSource.JUDGE
    messages = tracehint.teacher_messages(trace, index)
    assert messages[-1] == {"role": "assistant", "content": "Let me list the folder first."}
    assert messages[-2]["content"] == turn.hint.text
    assert len(messages) == index + 2


async def test_judge_failures_are_values_not_exceptions() -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, rate_500=1.0)) as judge:
        config = tracehint.AnnotatorConfig(
            layers=("judge",),
            judge=JudgeConfig(
                url=judge.url, model="m", retry=RetryPolicy(max_attempts=2, base_delay=0.01)
            ),
            use_cache=False,
        )
        async with tracehint.Annotator(config) as ann:
            trace = await ann.annotate(rollout())
    _, turn, _ = next(trace.sites())
    assert turn.hint is not None
    assert turn.hint.status is HintStatus.FAILED
    assert turn.hint.source is None
    assert "http_500" in (turn.hint.reason or "")


async def test_annotate_many_is_bounded_and_complete(tmp_path: Path) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.05)) as judge:
        config = tracehint.AnnotatorConfig(
            layers=("judge",),
            judge=JudgeConfig(url=judge.url, model="m", concurrency=4),
            cache_path=tmp_path / "c.sqlite3",
            concurrency=3,
        )
        async with (
            tracehint.Annotator(config) as ann,
            ann.annotate_many(rollout(i) for i in range(12)) as stream,
        ):
            traces = [t async for t in stream]
        assert judge.stats.max_in_flight <= 3
    assert sorted(t.trace_id for t in traces) == sorted({t.trace_id for t in traces})
    assert len(traces) == 12
    assert all(
        turn.hint is not None and turn.hint.status is HintStatus.OK
        for t in traces
        for _, turn, _ in t.sites()
    )


async def test_annotate_many_can_stop_early() -> None:
    async with tracehint.Annotator() as ann:
        seen = 0
        async with ann.annotate_many(rollout(i) for i in range(100)) as stream:
            async for _ in stream:
                seen += 1
                if seen == 3:
                    break
    assert seen == 3


async def test_annotate_many_break_stops_all_work() -> None:
    """Leaving the stream cancels the requests in flight and pulls no more input."""
    pulled = 0

    def endless() -> Iterator[list[dict[str, Any]]]:
        nonlocal pulled
        while True:
            pulled += 1
            yield rollout(pulled)

    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        config = tracehint.AnnotatorConfig(
            layers=("judge",),
            judge=JudgeConfig(url=judge.url, model="m", concurrency=4, preflight=False),
            use_cache=False,
            concurrency=4,
        )
        async with tracehint.Annotator(config) as ann:
            assert ann.judge is not None
            sent = ann.judge.client.stats
            async with ann.annotate_many(endless()) as stream:
                async for trace in stream:
                    assert trace.site_count == 1
                    if sent.requests >= 5:
                        break
            after_exit = (pulled, sent.requests)
            assert sent.in_flight == 0  # cancelled, not left running
            for _ in range(50):  # any work still running would pull and send more here
                await anyio.sleep(0.01)
            assert (pulled, sent.requests) == after_exit


async def test_annotate_many_raises_the_callers_exception_as_itself() -> None:
    class BrokenFeedError(Exception):
        pass

    def feed() -> Iterator[list[dict[str, Any]]]:
        yield rollout(0)
        yield rollout(1)
        raise BrokenFeedError

    got: list[str] = []

    async def consume(stream: tracehint.TraceStream) -> None:
        async with stream:
            async for trace in stream:
                got.append(trace.trace_id)  # noqa: PERF401 -- kept as they come, before the error

    async with tracehint.Annotator() as ann:
        with pytest.raises(BrokenFeedError):  # not an ExceptionGroup
            await consume(ann.annotate_many(feed()))
    assert sorted(got) == ["rollout-1", "rollout-2"]


async def test_annotate_many_async_input_and_the_consumers_exception() -> None:
    async def feed() -> AsyncIterator[list[dict[str, Any]]]:
        for i in range(10):
            yield rollout(i)

    async def consume(stream: tracehint.TraceStream) -> None:
        async with stream:
            async for _ in stream:
                raise KeyError("mine")

    async with tracehint.Annotator() as ann:
        with pytest.raises(KeyError):  # the consumer's own error passes through unchanged
            await consume(ann.annotate_many(feed()))


async def test_annotate_many_malformed_rollout_is_a_trace_with_an_issue() -> None:
    bad: list[Any] = [{"role": "user", "content": "x"}, {"role": "wizard", "content": "y"}]
    items: list[Any] = [rollout(0), bad, None, rollout(3)]
    async with tracehint.Annotator() as ann, ann.annotate_many(items) as stream:
        traces = {t.trace_id: t for t in [t async for t in stream]}
    assert sorted(traces) == ["rollout-1", "rollout-2", "rollout-3", "rollout-4"]
    assert traces["rollout-1"].site_count == 1
    assert traces["rollout-4"].site_count == 1
    (issue,) = traces["rollout-2"].issues
    assert "message 1 has unknown role 'wizard'" in issue.reason
    assert traces["rollout-2"].turns == ()
    assert traces["rollout-3"].issues[0].reason == "not a list of messages"


async def test_annotate_many_must_be_entered() -> None:
    async with tracehint.Annotator() as ann:
        with pytest.raises(RuntimeError, match="context manager"):
            async for _ in ann.annotate_many([rollout(0)]):
                pass


async def test_runs_inside_a_plain_asyncio_loop() -> None:
    # The caller's loop is asyncio's own (as in an RL rollout worker).
    asyncio.get_running_loop()
    async with tracehint.Annotator() as ann:
        results = await asyncio.gather(*(ann.annotate(rollout(i)) for i in range(5)))
    assert len(results) == 5


def test_judge_layer_without_judge_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--judge-url"):
        tracehint.Annotator(tracehint.AnnotatorConfig(layers=("judge",)))


async def test_bad_messages_name_the_message() -> None:
    async with tracehint.Annotator() as ann:
        with pytest.raises(tracehint.InputError, match="message 1"):
            await ann.annotate(
                [{"role": "user", "content": "x"}, {"role": "wizard", "content": "y"}]
            )


def test_teacher_messages_rejects_non_sites() -> None:
    trace = tracehint.Trace(
        "t", (), tracehint.TraceSource(path="x", format=tracehint.InputFormat.OPENAI)
    )
    with pytest.raises(ConfigError):
        tracehint.teacher_messages(trace, 0)
