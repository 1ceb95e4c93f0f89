"""The judge stage against a real loopback HTTP server (``tracehint mock-judge``)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from tracehint import (
    ConfigError,
    ErrorKind,
    ErrorSite,
    HintRequest,
    HintStatus,
    JudgeAuthError,
)
from tracehint._cache import CachedHint, HintCache
from tracehint._hints.judge import JudgeLayer
from tracehint._judge import JudgeClient, JudgeConfig, JudgeFailure, JudgeReply, RetryPolicy
from tracehint._mockjudge import MockJudge, MockJudgeConfig
from tracehint._prompt import JudgePrompt, build_prompt, cache_key, normalise
from tracehint._ratelimit import TokenBucket

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tracehint import Hint
    from tracehint._redact_records import TextRedactor


def request(message: str = "boom", kind: ErrorKind = ErrorKind.COMMAND_FAILED) -> HintRequest:
    site = ErrorSite(
        kind=kind,
        error_message=message,
        tool_use_id="toolu_1",
        tool_name="Bash",
        tool_input='{"command":"make test"}',
        tool_target="make test",
        source_content_excerpt=message[:200],
    )
    return HintRequest(site, "Let me try again.", ("Bash",))


def config(url: str, **kw: object) -> JudgeConfig:
    options: dict[str, object] = {
        "model": "mock-judge",
        "timeout": 5.0,
        "retry": RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
    }
    options.update(kw)
    return JudgeConfig(url=url, **options)  # type: ignore[arg-type]


async def test_reply_and_usage() -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        reply = await client.complete([{"role": "user", "content": "hi"}])
    assert isinstance(reply, JudgeReply)
    assert reply.text.startswith("Mock hint")
    assert reply.prompt_tokens is not None
    assert client.stats.prompt_tokens == reply.prompt_tokens


@pytest.mark.parametrize("transport", ["aiohttp", "httpx-aiohttp", "httpx"])
async def test_concurrency_never_exceeds_the_limit(transport: str) -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.05)) as judge,
        JudgeClient(config(judge.url, concurrency=8, transport=transport)) as client,
    ):
        async with anyio.create_task_group() as group:
            for i in range(40):
                group.start_soon(client.complete, [{"role": "user", "content": f"p{i}"}])
        assert judge.stats.requests == 40
        assert judge.stats.max_in_flight <= 8
        assert judge.stats.max_in_flight >= 4  # the fan-out is real
        assert client.stats.max_in_flight <= 8


async def test_single_flight_sends_identical_prompts_once() -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.1)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        layer = JudgeLayer(client)
        hints: list[str | None] = []

        async def ask() -> None:
            hint = await layer.propose(request())
            assert hint is not None
            hints.append(hint.text)

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(ask)
        assert judge.stats.requests == 1
        assert layer.stats.shared == 9
        assert len(set(hints)) == 1
        assert hints[0]


async def test_cache_hit_sends_no_request(tmp_path: Path) -> None:
    db = tmp_path / "hints.sqlite3"
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        async with JudgeClient(config(judge.url)) as client, HintCache(db) as cache:
            first = await JudgeLayer(client, cache=cache).propose(request())
        assert judge.stats.requests == 1
        async with JudgeClient(config(judge.url)) as client, HintCache(db) as cache:
            layer = JudgeLayer(client, cache=cache)
            second = await layer.propose(request())
        assert judge.stats.requests == 1
    assert first is not None
    assert second is not None
    assert second.cached
    assert second.text == first.text
    assert layer.stats.cache_hits == 1


class CountingCache(HintCache):
    reads = 0

    async def get_many(self, keys: Sequence[str]) -> dict[str, CachedHint]:
        self.reads += 1
        return await super().get_many(keys)


async def test_warm_sites_asked_together_are_read_in_one_query(tmp_path: Path) -> None:
    db = tmp_path / "hints.sqlite3"
    requests = [request(f"boom {i}") for i in range(20)]
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        async with JudgeClient(config(judge.url)) as client, HintCache(db) as cache:
            layer = JudgeLayer(client, cache=cache)
            first = [await layer.propose(r) for r in requests[:15]]
        async with JudgeClient(config(judge.url)) as client, CountingCache(db) as cache:
            layer = JudgeLayer(client, cache=cache)
            hints: dict[int, Hint | None] = {}

            async def one(index: int) -> None:
                hints[index] = await layer.propose(requests[index])

            async with anyio.create_task_group() as group:
                for index in range(len(requests)):
                    group.start_soon(one, index)
        assert judge.stats.requests == 15 + 5  # only the 5 never asked before
    assert cache.reads == 1
    assert layer.stats.cache_hits == 15
    for index, hint in enumerate(first):
        assert hint is not None
        found = hints[index]
        assert found is not None
        assert found.cached
        assert found.text == hint.text
    assert all(h is not None and not h.cached for i, h in hints.items() if i >= 15)


async def test_retries_honour_retry_after() -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0, rate_429=1.0, retry_after=0.2)) as judge,
        JudgeClient(
            config(
                judge.url,
                retry=RetryPolicy(
                    max_attempts=3, base_delay=0.01, max_delay=0.05, rate_limit_attempts=3
                ),
            )
        ) as client,
    ):
        started = time.monotonic()
        outcome = await client.complete([{"role": "user", "content": "x"}])
        elapsed = time.monotonic() - started
        assert isinstance(outcome, JudgeFailure)
        assert outcome.reason == "http_429"
        assert outcome.attempts == 3
        assert judge.stats.requests == 3  # never more than the policy allows
        assert elapsed >= 0.4  # two waits of Retry-After
        judge.set_config(MockJudgeConfig(latency=0.0))
        assert isinstance(await client.complete([{"role": "user", "content": "x"}]), JudgeReply)
        assert client.stats.retries == 2


async def test_server_errors_are_retried_then_recorded() -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0, rate_500=1.0)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        outcome = await client.complete([{"role": "user", "content": "x"}])
        assert isinstance(outcome, JudgeFailure)
        assert outcome.reason == "http_500"
        assert judge.stats.requests == 3
        assert client.stats.failures["http_500"] == 1


async def test_hung_requests_time_out() -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0, rate_hang=1.0)) as judge,
        JudgeClient(
            config(judge.url, timeout=0.3, retry=RetryPolicy(max_attempts=2, base_delay=0.01))
        ) as client,
    ):
        started = time.monotonic()
        outcome = await client.complete([{"role": "user", "content": "x"}])
        assert isinstance(outcome, JudgeFailure)
        assert outcome.reason == "timeout"
        assert time.monotonic() - started < 3.0
        assert judge.stats.requests == 2


@pytest.mark.parametrize(
    ("fault", "reason"), [("rate_garbage", "malformed"), ("rate_empty", "empty")]
)
async def test_malformed_responses_are_failures_not_hints(fault: str, reason: str) -> None:
    mock = MockJudgeConfig(latency=0.0, **{fault: 1.0})  # type: ignore[arg-type]
    async with MockJudge(mock) as judge, JudgeClient(config(judge.url)) as client:
        layer = JudgeLayer(client)
        hint = await layer.propose(request())
    assert hint is not None
    assert hint.status is HintStatus.FAILED
    assert hint.text is None
    assert hint.source is None
    assert hint.reason is not None
    assert reason in hint.reason


async def test_connection_resets_are_retried() -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0, rate_reset=1.0)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        outcome = await client.complete([{"role": "user", "content": "x"}])
        assert isinstance(outcome, JudgeFailure)
        assert outcome.reason == "connection"
        assert judge.stats.requests == 3


async def test_auth_failure_raises_once() -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0, require_key="right-key")) as judge,
        JudgeClient(config(judge.url, api_key="wrong-key")) as client,
    ):
        with pytest.raises(JudgeAuthError, match="HTTP 401") as caught:
            await client.complete([{"role": "user", "content": "x"}])
        assert "wrong-key" not in str(caught.value)
        with pytest.raises(JudgeAuthError):
            await client.complete([{"role": "user", "content": "y"}])
        assert judge.stats.requests == 1  # the second call does not even try


async def test_bearer_key_is_sent() -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0, require_key="right-key")) as judge,
        JudgeClient(config(judge.url, api_key="right-key")) as client,
    ):
        assert isinstance(await client.complete([{"role": "user", "content": "x"}]), JudgeReply)
        assert judge.stats.authorization_headers == ["Bearer right-key"]


def test_api_key_is_not_in_the_config_repr() -> None:
    assert "sekrit" not in repr(JudgeConfig(url="http://x/v1", model="m", api_key="sekrit"))


async def test_secrets_are_redacted_before_they_leave() -> None:
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
    message = f"curl failed: Authorization: Bearer {secret}\nOPENAI_API_KEY={secret}"
    async with (
        MockJudge(MockJudgeConfig(latency=0.0)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        await JudgeLayer(client).propose(request(message))
        prompts = list(judge.stats.prompts)
    assert prompts
    assert all(secret not in p for p in prompts)
    assert "curl failed" in prompts[0]


def test_prompt_carries_the_site_context() -> None:
    prompt = build_prompt(request("Exit code 2\nmake: *** [test] Error 2"))
    assert "command_failed" in prompt.user
    assert "make: *** [test] Error 2" in prompt.user
    assert "Bash" in prompt.user
    assert "command: make test" in prompt.user
    assert "Let me try again." not in prompt.user  # the next message is not shown by default
    assert "two sentences" in prompt.system
    shown = build_prompt(request("boom"), show_next_action=True)
    assert "Let me try again." in shown.user


def test_cache_key_ignores_volatile_parts() -> None:
    a = request("object at 0x7f3a2b at 2025-06-15T00:46:15+01:00 in /tmp/pytest-12/x.py")
    b = request("object at 0x1234ff at 2026-01-01T10:00:00Z in /tmp/pytest-99/x.py")
    c = request("a different error")
    assert cache_key("m", a) == cache_key("m", b)
    assert cache_key("m", a) != cache_key("m", c)
    assert cache_key("m", a) != cache_key("other-model", a)
    assert "0xADDR" in normalise("at 0xdeadbeef")


# The volatile-part patterns as first written (plain, no prefilters): the fast ones must agree.
REFERENCE_VOLATILE = (
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "0xADDR"),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\b",
        ),
        "<TIME>",
    ),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<TIME>"),
    (
        re.compile(
            r"(?:/private)?/var/folders/[^\s'\"]+|/tmp/[^\s'\"]+|"
            r"[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp\\[^\s'\"]+",
        ),
        "<TMP>",
    ),
    (re.compile(r"\b(?:in|after|took) \d+(?:\.\d+)?\s?(?:ms|s|sec|seconds)\b"), "<DURATION>"),
)


def test_fast_normalise_matches_the_plain_patterns(claude_corpus: Path) -> None:
    texts = [
        "at 0x7ffd1234 and x0x12 and 0xZZ, 2024-05-01T12:30:45.123Z, a12:30:45, 12:30:45.5",
        "ran in 12.5 ms, took 3s, after 2 seconds; /tmp/pytest-of-me/x.py /private/var/folders/ab",
        "C:\\Users\\dev\\AppData\\Local\\Temp\\tmp123 and 2024-05-01 12:30:45+02:00",
    ]
    for path in sorted(claude_corpus.rglob("*.jsonl"))[:6]:
        texts += [line.decode("utf-8", "replace") for line in path.read_bytes().split(b"\n")]
    for text in texts:
        expected = text
        for pattern, replacement in REFERENCE_VOLATILE:
            expected = pattern.sub(replacement, expected)
        assert normalise(text) == expected, text[:300]


@pytest.mark.parametrize("option", ["requests_per_second", "tokens_per_minute"])
def test_rate_limits_must_be_positive(option: str) -> None:
    with pytest.raises(ConfigError, match="must be positive"):
        config("http://localhost:1/v1", **{option: 0.0})


async def test_token_bucket_spaces_out_what_exceeds_the_burst() -> None:
    bucket = TokenBucket(rate=100.0, capacity=10.0)
    started = anyio.current_time()
    await bucket.acquire(10)  # the whole burst, at once
    assert anyio.current_time() - started < 0.05
    for _ in range(5):
        await bucket.acquire(10)  # 10 tokens at 100/s: 0.1 s each
    # A lower bound only: a slow machine may take longer, never shorter.
    assert anyio.current_time() - started >= 0.45


async def test_requests_per_second_limit_holds_back_the_client() -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0)) as judge,
        JudgeClient(config(judge.url, requests_per_second=20.0)) as client,
    ):
        started = anyio.current_time()
        async with anyio.create_task_group() as group:
            for i in range(30):
                group.start_soon(client.complete, [{"role": "user", "content": f"q{i}"}])
        elapsed = anyio.current_time() - started
        assert judge.stats.requests == 30
    # 20 at once (the burst), then 10 more at 20/s.
    assert elapsed >= 0.45


class CountingLayer(JudgeLayer):
    built = 0

    def prompt(self, request: HintRequest, texts: TextRedactor | None = None) -> JudgePrompt:
        self.built += 1
        return super().prompt(request, texts)


async def test_a_trace_reads_the_cache_once_and_builds_prompts_only_for_misses(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hints.sqlite3"
    requests = [request(f"boom {i}") for i in range(12)]
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        async with JudgeClient(config(judge.url)) as client, HintCache(db) as cache:
            cold = await JudgeLayer(client, cache=cache).propose_all(requests[:8])
        async with JudgeClient(config(judge.url)) as client, CountingCache(db) as cache:
            layer = CountingLayer(client, cache=cache)
            warm = await layer.propose_all([*requests, requests[9]])
        assert judge.stats.requests == 8 + 4  # the repeated site is asked once
    assert cache.reads == 1
    assert layer.built == 4
    assert layer.stats.cache_hits == 8
    assert layer.stats.shared == 1
    for before, after in zip(cold, warm[:8], strict=True):
        assert before is not None
        assert after is not None
        assert after.cached
        assert after.text == before.text
    assert warm[9] == warm[12]
    assert all(h is not None and not h.cached for h in warm[8:])
