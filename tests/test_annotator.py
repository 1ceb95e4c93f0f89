"""The embedding API for rollout workers: OpenAI-style messages in, hinted traces out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import tracehint
from tracehint import ConfigError, ErrorKind, HintSource, HintStatus
from tracehint._judge import JudgeConfig, RetryPolicy
from tracehint._mockjudge import MockJudge, MockJudgeConfig


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
        async with tracehint.Annotator(config) as ann:
            traces = [t async for t in ann.annotate_many(rollout(i) for i in range(12))]
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
        async for _ in ann.annotate_many(rollout(i) for i in range(100)):
            seen += 1
            if seen == 3:
                break
    assert seen == 3


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
    trace = tracehint.Trace("t", (), tracehint.TraceSource(path="x", format="y"))
    with pytest.raises(ConfigError):
        tracehint.teacher_messages(trace, 0)
