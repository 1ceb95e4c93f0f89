"""The judge client tells the truth: against the strict (vLLM-like) loopback mock judge.

Each case of issue #12's "Done when": a misconfigured judge stops the run early with the
server's words, a cut-off answer is never a hint, a rate-limited proxy costs time and not
hints, and every request option reaches the server.
"""

from __future__ import annotations

import json
import pickle
import socket
import sys
import time
import tracemalloc
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from conftest import EXAMPLES
from test_judge_cli import annotate, judged_sites
from tracehint import ConfigError, ErrorKind, ErrorSite, HintRequest, HintStatus, JudgeAuthError
from tracehint._exceptions import JudgeConfigError, JudgeUnavailableError
from tracehint._hints.judge import JudgeLayer
from tracehint._judge import JudgeClient, JudgeConfig, JudgeFailure, JudgeReply, RetryPolicy
from tracehint._limits import Limits
from tracehint._mockjudge import MockJudge, MockJudgeConfig
from tracehint._ratelimit import AdaptiveLimiter

if TYPE_CHECKING:
    from pathlib import Path

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, rate_limit_delay=0.01)
ASK = [{"role": "user", "content": "what went wrong?"}]


def strict(**options: Any) -> MockJudgeConfig:
    return MockJudgeConfig(**{"latency": 0.0, "strict": True, "model": "judge-7b", **options})


def config(url: str, **options: Any) -> JudgeConfig:
    return JudgeConfig(url=url, **{"model": "judge-7b", "timeout": 10.0, "retry": FAST, **options})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


# -- preflight and the circuit breaker: wrong model, no /v1, nothing listening -------------


async def test_preflight_names_the_model_and_the_models_offered() -> None:
    async with MockJudge(strict(served_models=("qwen3-8b",))) as judge:
        async with JudgeClient(config(judge.url, model="judge-8b")) as client:
            with pytest.raises(JudgeConfigError) as caught:
                await client.preflight()
        assert judge.stats.requests == 0
    message = str(caught.value)
    assert "'judge-8b'" in message
    assert "judge-7b, qwen3-8b" in message
    assert judge.url in message


TRANSPORTS = pytest.mark.parametrize("transport", ["aiohttp", "httpx-aiohttp", "httpx"])


@TRANSPORTS
async def test_preflight_finds_the_api_under_v1(transport: str) -> None:
    async with MockJudge(strict()) as judge:
        root = judge.url.removesuffix("/v1")
        async with JudgeClient(config(root, transport=transport)) as client:
            found = await client.preflight()
            assert isinstance(await client.complete(ASK), JudgeReply)
    assert found.url == judge.url
    assert found.models == ("judge-7b",)
    assert client.base_url == judge.url
    assert any(judge.url in note for note in found.notes)


async def test_preflight_without_models_passes_with_a_note() -> None:
    async with (
        MockJudge(strict(list_models=False)) as judge,
        JudgeClient(config(judge.url, model="anything")) as client,
    ):
        found = await client.preflight()
    assert found.models is None
    assert "not checked" in found.notes[0]
    assert "'anything'" in found.notes[0]


@TRANSPORTS
async def test_preflight_when_nothing_listens_is_quick(transport: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    async with JudgeClient(config(url, transport=transport)) as client:
        with pytest.raises(JudgeUnavailableError, match="nothing answers") as caught:
            await client.preflight()
    assert url in str(caught.value)
    assert time.monotonic() - started < 30


async def test_the_same_permanent_error_on_the_first_requests_stops() -> None:
    async with (
        MockJudge(strict()) as judge,
        JudgeClient(config(judge.url, model="judge-8b", concurrency=64)) as client,
    ):
        results: list[object] = []

        async def ask(index: int) -> None:
            try:
                results.append(await client.complete([{"role": "user", "content": f"q{index}"}]))
            except JudgeConfigError as exc:
                results.append(exc)

        async with anyio.create_task_group() as group:
            for index in range(20):
                group.start_soon(ask, index)
        assert judge.stats.requests == 3  # no fan-out before the first answer
        assert judge.stats.by_status == {404: 3}
    errors = [r for r in results if isinstance(r, JudgeConfigError)]
    assert len(errors) == 18  # the third failure and every request after it
    assert "The model `judge-8b` does not exist." in str(errors[0])
    assert errors[0].server_message == "The model `judge-8b` does not exist."


async def test_a_preflight_that_finds_the_model_lets_every_request_go_at_once() -> None:
    async with (
        MockJudge(strict()) as judge,
        JudgeClient(config(judge.url, concurrency=8)) as probing,
        JudgeClient(config(judge.url, concurrency=8)) as checked,
    ):
        judge.hold()  # no answer yet: only the bound before the first answer applies
        async with anyio.create_task_group() as group:
            for index in range(8):
                group.start_soon(probing.complete, [{"role": "user", "content": f"p{index}"}])
            await judge.wait_in_flight(3)
            await anyio.sleep(0.2)  # room for a fourth request, which must not come
            assert judge.stats.in_flight == 3
            judge.release()
        await checked.preflight()
        judge.hold()
        async with anyio.create_task_group() as group:
            for index in range(8):
                group.start_soon(checked.complete, [{"role": "user", "content": f"c{index}"}])
            with anyio.fail_after(30):
                await judge.wait_in_flight(8)  # all of them before any answer
            judge.release()
    assert judge.stats.requests == 16


async def test_a_judge_gone_for_good_stops_the_run() -> None:
    policy = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02, stop_after_unreachable=3)
    port = free_port()
    async with JudgeClient(config(f"http://127.0.0.1:{port}/v1", retry=policy)) as client:
        async with MockJudge(strict(), port=port):
            await client.preflight()
            assert isinstance(await client.complete(ASK), JudgeReply)
        # The server is gone now.
        outcomes = [await client.complete(ASK) for _ in range(2)]
        assert all(isinstance(o, JudgeFailure) and o.reason == "connection" for o in outcomes)
        with pytest.raises(JudgeUnavailableError, match="3 requests in a row"):
            await client.complete(ASK)
        sent = client.stats.requests
        with pytest.raises(JudgeUnavailableError):  # and every later call, without trying
            await client.complete(ASK)
        assert client.stats.requests == sent == 1 + 3 * 2


async def cli_run(
    tmp_path: Path, url: str, *extra: str, model: str = "judge-7b"
) -> tuple[int, str]:
    return await annotate(
        str(EXAMPLES), "-o", str(tmp_path / "out.jsonl"), "--no-cache", "--layers", "judge",
        "--judge-url", url, "--judge-model", model, *extra,
    )  # fmt: skip


async def test_cli_wrong_model_exits_2_naming_it(tmp_path: Path) -> None:
    async with MockJudge(strict()) as judge:
        started = time.monotonic()
        code, err = await cli_run(tmp_path, judge.url, model="judge-8b")
        assert time.monotonic() - started < 30
        assert judge.stats.requests == 0
    assert code == 2, err
    assert "does not serve model 'judge-8b'" in err
    assert "it offers: judge-7b" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()  # stopped before writing anything


async def test_cli_wrong_model_without_preflight_quotes_the_server(tmp_path: Path) -> None:
    async with MockJudge(strict()) as judge:
        code, err = await cli_run(tmp_path, judge.url, "--no-judge-check", model="judge-8b")
        assert judge.stats.requests <= 3
    assert code == 2, err
    assert "The model `judge-8b` does not exist." in err


async def test_cli_url_without_v1_is_found_and_said(tmp_path: Path) -> None:
    async with MockJudge(strict()) as judge:
        code, err = await cli_run(tmp_path, judge.url.removesuffix("/v1"))
    assert code == 0, err
    assert f"the judge API is at {judge.url}" in err
    assert all(s["hint_status"] == "ok" for s in judged_sites(tmp_path / "out.jsonl"))


async def test_cli_url_without_v1_and_without_models_exits_2(tmp_path: Path) -> None:
    async with MockJudge(strict(list_models=False)) as judge:
        code, err = await cli_run(tmp_path, judge.url.removesuffix("/v1"))
        assert judge.stats.requests == 0  # strict: the paths without /v1 are not chat requests
    assert code == 2, err
    assert "Not Found" in err
    assert f"does the API live at {judge.url}?" in err


async def test_cli_nothing_listening_exits_2_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    code, err = await cli_run(tmp_path, url)
    assert time.monotonic() - started < 30
    assert code == 2, err
    assert url in err
    assert "nothing answers" in err


async def test_401_quotes_the_server(tmp_path: Path) -> None:
    async with MockJudge(strict(require_key="right")) as judge:
        async with JudgeClient(config(judge.url, api_key="wrong")) as client:
            with pytest.raises(JudgeAuthError) as caught:
                await client.complete(ASK)
        code, err = await annotate(
            str(EXAMPLES), "-o", str(tmp_path / "o.jsonl"), "--no-cache", "--layers", "judge",
            "--judge-url", judge.url, "--judge-model", "judge-7b", key="wrong",
        )  # fmt: skip
    assert "Incorrect API key provided." in str(caught.value)
    assert caught.value.server_message == "Incorrect API key provided."
    assert code == 2
    assert "HTTP 401" in err
    assert "Incorrect API key provided." in err
    assert "TRACEHINT_JUDGE_API_KEY" in err


# -- answers: cut off, structured output, the request options ------------------------------


async def test_a_cut_off_answer_is_asked_again_with_twice_the_tokens() -> None:
    async with (
        MockJudge(strict(cut_off_below=300)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        reply = await client.complete(ASK)
        budgets = [body["max_tokens"] for body in judge.stats.bodies]
    assert isinstance(reply, JudgeReply)
    assert reply.finish_reason == "stop"
    assert budgets == [160, 320]


async def test_a_cut_off_answer_is_never_a_hint() -> None:
    async with (
        MockJudge(strict(cut_off_below=10_000)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        outcome = await client.complete(ASK)
        hint = await JudgeLayer(client).propose(site_request())
        # twice per request (the budget, then twice the budget); the layer asks once more
        assert judge.stats.requests == 6
    assert isinstance(outcome, JudgeFailure)
    assert outcome.reason == "cut_off"
    assert hint is not None
    assert hint.status is HintStatus.FAILED
    assert hint.text is None
    assert "cut_off" in (hint.reason or "")


@pytest.mark.parametrize(
    "message",
    ["response_format is not supported by this server.", "Invalid request."],
)
async def test_response_format_rejected_is_remembered(message: str) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "hint", "schema": {}}}
    async with (
        MockJudge(strict(reject_response_format=message)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        first = await client.complete(ASK, response_format=schema)
        second = await client.complete(ASK, response_format=schema)
        sent = ["response_format" in body for body in judge.stats.bodies]
    assert isinstance(first, JudgeReply)
    assert isinstance(second, JudgeReply)
    assert not first.structured
    assert not second.structured
    assert sent == [True, False, False]  # asked once with it; without it from then on
    assert client.supports_response_format is False
    assert any("response_format" in note for note in client.stats.notes)


async def test_response_format_accepted_is_structured() -> None:
    async with MockJudge(strict()) as judge, JudgeClient(config(judge.url)) as client:
        reply = await client.complete(ASK, response_format={"type": "json_object"})
        assert judge.stats.bodies[0]["response_format"] == {"type": "json_object"}
    assert isinstance(reply, JudgeReply)
    assert reply.structured
    assert client.supports_response_format is True


async def test_options_and_extra_body_reach_the_server() -> None:
    extra = {"chat_template_kwargs": {"enable_thinking": False}, "top_p": 0.9}
    async with (
        MockJudge(strict()) as judge,
        JudgeClient(config(judge.url, temperature=None, max_tokens=77, extra_body=extra)) as client,
    ):
        assert isinstance(await client.complete(ASK), JudgeReply)
        (body,) = judge.stats.bodies
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 77
    assert "temperature" not in body


async def test_cli_request_options_reach_the_server(tmp_path: Path) -> None:
    async with MockJudge(strict()) as judge:
        code, err = await cli_run(
            tmp_path, judge.url,
            "--judge-temperature", "none", "--judge-max-tokens", "64",
            "--judge-extra-body", '{"chat_template_kwargs": {"enable_thinking": false}}',
        )  # fmt: skip
        bodies = judge.stats.bodies
    assert code == 0, err
    assert bodies
    for body in bodies:
        assert "temperature" not in body
        assert body["max_tokens"] == 64
        assert body["chat_template_kwargs"] == {"enable_thinking": False}


async def test_max_completion_tokens_when_the_server_asks_for_it() -> None:
    async with (
        MockJudge(strict(require_max_completion_tokens=True)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        first = await client.complete(ASK)
        second = await client.complete(ASK)
        fields = [sorted(k for k in body if k.startswith("max_")) for body in judge.stats.bodies]
    assert isinstance(first, JudgeReply)
    assert isinstance(second, JudgeReply)
    assert fields == [["max_tokens"], ["max_completion_tokens"], ["max_completion_tokens"]]
    assert judge.stats.bodies[1]["max_completion_tokens"] == 160


def site_request(message: str = "boom") -> HintRequest:
    site = ErrorSite(
        kind=ErrorKind.COMMAND_FAILED,
        error_message=message,
        tool_use_id="toolu_1",
        tool_name="Bash",
        tool_input='{"command":"make test"}',
        tool_target="make test",
        source_content_excerpt=message[:200],
    )
    return HintRequest(site, "Let me try again.", ("Bash",))


async def test_context_length_is_a_signal_and_the_site_is_asked_shorter() -> None:
    async with (
        MockJudge(strict(context_chars=2500)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        long = [{"role": "user", "content": "x" * 3000}]
        outcome = await client.complete(long)
        layer = JudgeLayer(client, limits=Limits(judge_prompt_chars=4000))
        hint = await layer.propose(site_request("Traceback: " + "frame\n" * 800))
        assert judge.stats.by_status == {400: 2, 200: 1}
    assert isinstance(outcome, JudgeFailure)
    assert outcome.reason == "context_length"
    assert outcome.attempts == 1  # not retried as is
    assert "maximum context length" in (outcome.server_message or "")
    assert hint is not None
    assert hint.status is HintStatus.OK
    assert layer.stats.shortened == 1


async def test_context_length_does_not_stop_the_run() -> None:
    async with (
        MockJudge(strict(context_chars=10)) as judge,
        JudgeClient(config(judge.url)) as client,
    ):
        for _ in range(5):
            outcome = await client.complete(ASK)
            assert isinstance(outcome, JudgeFailure)
        assert judge.stats.requests == 5


# -- overload: 429 without Retry-After, adaptive in-flight limit ---------------------------


async def test_cli_rate_limited_proxy_costs_time_not_hints(sessions: Path, tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    async with MockJudge(strict(latency=0.05, max_in_flight=4)) as judge:
        code, err = await annotate(
            str(sessions), "-o", str(tmp_path / "out.jsonl"), "--no-cache",
            "--layers", "judge", "--judge-url", judge.url, "--judge-model", "judge-7b",
            "--stats-json", str(stats), "--concurrency", "16",
        )  # fmt: skip
        limited = judge.stats.faults["429"]
        assert judge.stats.max_in_flight <= 5  # the 5th is counted before it is refused
    assert code == 0, err
    sites = judged_sites(tmp_path / "out.jsonl")
    assert sites
    assert all(s["hint_status"] == "ok" and s["hint_source"] == "judge" for s in sites)
    summary = json.loads(stats.read_text())["judge"]
    assert summary["rate_limited"] == limited > 0
    assert summary["min_in_flight_limit"] <= 8
    assert f"judge rate-limited: {limited} × 429, in flight lowered to" in err  # noqa: RUF001 -- the summary's times sign
    assert "--concurrency" in err


async def test_adaptive_limiter_halves_once_per_burst_and_creeps_back() -> None:
    limiter = AdaptiveLimiter(8)
    epochs = [await limiter.acquire() for _ in range(8)]
    for epoch in epochs:
        limiter.release()
        limiter.rate_limited(epoch)  # a whole burst rejected: halved once
    assert limiter.limit == 4
    for _ in range(4):
        limiter.succeeded()
    assert limiter.limit == 5
    for _ in range(10):
        limiter.rate_limited(await limiter.acquire())
        limiter.release()
    assert limiter.limit == 1  # never below one
    assert limiter.lowest == 1


async def test_adaptive_limiter_bounds_requests_in_flight() -> None:
    limiter = AdaptiveLimiter(3)
    inside = most = 0

    async def one() -> None:
        nonlocal inside, most
        await limiter.acquire()
        inside += 1
        most = max(most, inside)
        await anyio.sleep(0.01)
        inside -= 1
        limiter.release()

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(one)
    assert most == 3
    assert limiter.in_flight == 0


async def test_retry_after_is_honoured_and_429_has_its_own_budget() -> None:
    policy = RetryPolicy(max_attempts=2, rate_limit_attempts=4, rate_limit_delay=0.01)
    async with (
        MockJudge(strict(rate_429=1.0, retry_after=0.1)) as judge,
        JudgeClient(config(judge.url, retry=policy)) as client,
    ):
        started = time.monotonic()
        outcome = await client.complete(ASK)
        assert time.monotonic() - started >= 0.3  # three waits of Retry-After
        assert judge.stats.requests == 4  # 429s do not use up the 2 attempts for errors
    assert isinstance(outcome, JudgeFailure)
    assert outcome.reason == "http_429"
    assert outcome.server_message == "Rate limit reached (mock judge)."


# -- what the summary says -------------------------------------------------------------------


async def test_summary_shows_one_server_message_per_failure_reason(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    async with MockJudge(strict(rate_500=1.0)) as judge:
        code, err = await cli_run(
            tmp_path, judge.url, "--max-attempts", "1", "--stats-json", str(stats)
        )
    assert code == 1, err
    samples = json.loads(stats.read_text())["judge"]["failure_samples"]
    assert list(samples) == ["http_500"]
    assert "The server had an error (mock judge)." in samples["http_500"]
    assert f"http_500: {samples['http_500']}" in err
    assert "site(s) failed" in err


# -- body size, token budget, config -----------------------------------------------------------


@TRANSPORTS
async def test_a_huge_answer_body_is_malformed_not_read(transport: str) -> None:
    async with (
        MockJudge(strict(rate_garbage=1.0, garbage_bytes=3_000_000)) as judge,
        JudgeClient(
            config(judge.url, retry=RetryPolicy(max_attempts=1), transport=transport)
        ) as client,
    ):
        outcome = await client.complete(ASK)
    assert isinstance(outcome, JudgeFailure)
    assert outcome.reason == "malformed"
    assert "over 1000000 bytes" in outcome.detail


async def test_tokens_per_minute_are_settled_with_the_reported_usage() -> None:
    # Each request reserves ~190 tokens (prompt estimate + max_tokens) and uses ~15; without
    # settling, 3000/min allows ~16 requests and then one every ~4 s.
    async with (
        MockJudge(strict()) as judge,
        JudgeClient(config(judge.url, tokens_per_minute=3000)) as client,
    ):
        started = time.monotonic()
        for index in range(40):
            reply = await client.complete([{"role": "user", "content": f"q{index}"}])
            assert isinstance(reply, JudgeReply)
        assert time.monotonic() - started < 30


def test_answer_fingerprint_covers_what_changes_the_answer() -> None:
    base = JudgeConfig(url="http://x/v1", model="m")
    same = JudgeConfig(
        url="http://y/v1", model="m", api_key="k", timeout=5.0, concurrency=3,
        extra_body={},
    )  # fmt: skip
    assert base.answer_fingerprint() == same.answer_fingerprint()
    others = [
        JudgeConfig(url="http://x/v1", model="m", temperature=None),
        JudgeConfig(url="http://x/v1", model="m", temperature=0.7),
        JudgeConfig(url="http://x/v1", model="m", max_tokens=200),
        JudgeConfig(url="http://x/v1", model="m", extra_body={"top_p": 0.5}),
    ]
    prints = {base.answer_fingerprint(), *(c.answer_fingerprint() for c in others)}
    assert len(prints) == 5
    a = JudgeConfig(url="http://x/v1", model="m", extra_body={"a": 1, "b": {"c": 2, "d": 3}})
    b = JudgeConfig(url="http://x/v1", model="m", extra_body={"b": {"d": 3, "c": 2}, "a": 1})
    assert a.answer_fingerprint() == b.answer_fingerprint()


@pytest.mark.parametrize(
    "options",
    [
        {"extra_body": {"model": "other"}},
        {"extra_body": {"stream": True}},
        {"extra_body": {"x": object()}},
        {"temperature": -1.0},
        {"max_tokens": 0},
    ],
)
def test_bad_request_options_are_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        JudgeConfig(url="http://x/v1", model="m", **options)


def test_extra_body_is_a_read_only_copy_that_pickles() -> None:
    extra: dict[str, Any] = {"a": 1, "b": {"c": [1, 2]}}
    judge = JudgeConfig(url="http://x/v1", model="m", extra_body=extra)
    extra["a"] = 2
    assert judge.extra_body == {"a": 1, "b": {"c": [1, 2]}}
    with pytest.raises(TypeError):
        judge.extra_body["a"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        judge.extra_body.update(a=3)  # type: ignore[attr-defined]
    # Ray ships configs to its workers by pickling them.
    again = pickle.loads(pickle.dumps(judge))  # noqa: S301 -- our own bytes
    assert again == judge
    assert again.answer_fingerprint() == judge.answer_fingerprint()
    assert replace(judge, api_key="k").extra_body == judge.extra_body


async def test_big_answer_bodies_do_not_pile_up_in_memory() -> None:
    # The server runs in its own process, so only the client's memory is measured here.
    command = [
        sys.executable, "-m", "tracehint._main", "mock-judge", "--port", "0",
        "--strict", "--model", "judge-7b", "--latency", "0", "--rate-garbage", "1",
        "--garbage-bytes", "10000000",
    ]  # fmt: skip
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    outcomes: list[JudgeReply | JudgeFailure] = []
    async with await anyio.open_process(command) as server, anyio.create_task_group() as group:
        assert server.stderr is not None
        said = b""
        with anyio.fail_after(60):  # wait for the server's readiness line
            while b"\n" not in said:
                said += await server.stderr.receive()
        url = said.decode().split("listening on ", 1)[1].split()[0]

        async def drain() -> None:  # the server's stderr must never fill up and block it
            assert server.stderr is not None
            async for _ in server.stderr:
                pass

        group.start_soon(drain)
        tracemalloc.start()
        try:
            async with JudgeClient(config(url, concurrency=16, retry=policy)) as client:
                await client.preflight()

                async def ask(index: int) -> None:
                    outcomes.append(
                        await client.complete([{"role": "user", "content": f"{index}"}])
                    )

                async with anyio.create_task_group() as asks:
                    for index in range(32):
                        asks.start_soon(ask, index)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            server.terminate()
    assert len(outcomes) == 32
    assert all(isinstance(o, JudgeFailure) and o.reason == "malformed" for o in outcomes)
    assert peak < 50_000_000, peak  # 32 x 3 answers of 10 MB were never held


async def test_exit_1_when_a_later_layer_answered_for_the_judge(tmp_path: Path) -> None:
    async with MockJudge(strict(rate_500=1.0)) as judge:
        code, err = await annotate(
            str(EXAMPLES), "-o", str(tmp_path / "out.jsonl"), "--no-cache",
            "--layers", "judge,raw", "--judge-url", judge.url, "--judge-model", "judge-7b",
            "--max-attempts", "1",
        )  # fmt: skip
    assert code == 1, err
    assert "which a later layer answered instead" in err
    sites = judged_sites(tmp_path / "out.jsonl")
    assert sites
    assert all(s["hint_status"] == "ok" and s["hint_source"] == "raw" for s in sites)


async def test_a_failing_server_still_gets_the_whole_fan_out() -> None:
    # The first requests go out a few at a time (to catch a misconfiguration cheaply), but a
    # server that answers at all, even with 500s, gets the configured concurrency.
    async with (
        MockJudge(strict(rate_500=1.0, latency=0.05)) as judge,
        JudgeClient(config(judge.url, concurrency=16, retry=RetryPolicy(max_attempts=2))) as client,
    ):
        async with anyio.create_task_group() as group:
            for index in range(32):
                group.start_soon(client.complete, [{"role": "user", "content": f"q{index}"}])
        assert judge.stats.max_in_flight > 3
        assert judge.stats.requests == 64


async def test_429_without_retry_after_costs_time_not_answers() -> None:
    # Default retry policy: a proxy with 4 slots answers 429 (no Retry-After) to the rest.
    async with (
        MockJudge(strict(latency=0.05, max_in_flight=4)) as judge,
        JudgeClient(config(judge.url, retry=RetryPolicy())) as client,
    ):
        outcomes: list[JudgeReply | JudgeFailure] = []

        async def ask(index: int) -> None:
            outcomes.append(await client.complete([{"role": "user", "content": f"q{index}"}]))

        async with anyio.create_task_group() as group:
            for index in range(60):
                group.start_soon(ask, index)
        limited = judge.stats.faults["429"]
    assert all(isinstance(o, JudgeReply) for o in outcomes)
    assert len(outcomes) == 60
    assert client.stats.rate_limited == limited > 0
    assert client.stats.lowest_in_flight_limit <= 4
    assert client.stats.suggested_concurrency <= 8
