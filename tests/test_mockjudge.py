"""The loopback mock judge, driven by a real HTTP client (``tracehint mock-judge``)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import orjson
import pytest
from httpx_aiohttp import AiohttpTransport

from tracehint._exceptions import ConfigError
from tracehint._mockjudge import MockJudge, MockJudgeConfig, mock_hint, serve_forever

PROMPT = "Error: No such file or directory: src/x.py"


def chat(prompt: str = PROMPT, **extra: Any) -> dict[str, Any]:
    return {
        "model": "judge-7b",
        "messages": [
            {"role": "system", "content": "You write short hints."},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": 160,
        "temperature": 0.0,
        **extra,
    }


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        yield client


async def eventually(condition: Callable[[], object], seconds: float = 2.0) -> None:
    """Wait until ``condition()`` is true (the server counts on its own schedule)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError(f"not true within {seconds} s")


async def post(client: httpx.AsyncClient, judge: MockJudge, body: Any, **kw: Any) -> httpx.Response:
    return await client.post(f"{judge.url}/chat/completions", json=body, **kw)


async def test_success_is_an_openai_chat_completion(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", judge.url)
        response = await post(client, judge, chat())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    hint = mock_hint(PROMPT)
    assert data["id"] == "mock-1"
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "judge-7b"
    assert data["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": hint}, "finish_reason": "stop"},
    ]
    prompt_words = 4 + len(PROMPT.split())  # the system and the user message
    assert data["usage"] == {
        "prompt_tokens": prompt_words,
        "completion_tokens": len(hint.split()),
        "total_tokens": prompt_words + len(hint.split()),
    }
    assert judge.stats.requests == 1
    assert judge.stats.by_status == {200: 1}
    assert judge.stats.prompts == {PROMPT: 1}
    assert judge.stats.in_flight == 0


async def test_the_hint_is_deterministic_in_the_last_user_message(
    client: httpx.AsyncClient,
) -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0)) as first,
        MockJudge(MockJudgeConfig(latency=0.0)) as second,
    ):
        a = (await post(client, first, chat())).json()["choices"][0]["message"]["content"]
        b = (await post(client, second, chat())).json()["choices"][0]["message"]["content"]
        other = (await post(client, first, chat("another error"))).json()
        parts = chat()
        parts["messages"].append({"role": "assistant", "content": "ok"})
        parts["messages"].append(
            {"role": "user", "content": [{"type": "text", "text": "part one"}]}
        )
        multipart = (await post(client, first, parts)).json()
    assert a == b == mock_hint(PROMPT)
    assert a.startswith("Mock hint ")
    assert re.fullmatch(r"Mock hint [0-9a-f]{12}: re-read the error and fix the call\.", a)
    assert other["choices"][0]["message"]["content"] != a
    assert multipart["choices"][0]["message"]["content"] == mock_hint("part one")
    assert first.stats.prompts == {PROMPT: 1, "another error": 1, "part one": 1}


async def test_max_tokens_cuts_the_answer(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        data = (await post(client, judge, chat(max_tokens=3))).json()
    assert data["choices"][0]["message"]["content"] == " ".join(mock_hint(PROMPT).split()[:3])
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3


async def test_other_routes(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, model="house-judge")) as judge:
        root = judge.url.removesuffix("/v1")
        without_v1 = await client.post(f"{root}/chat/completions", json=chat())
        models = await client.get(f"{judge.url}/models")
        health = await client.get(f"{root}/health")
        missing = await client.get(f"{root}/nope")
        wrong_method = await client.get(f"{judge.url}/chat/completions")
        no_model = await post(client, judge, {"messages": [{"role": "user", "content": "x"}]})
    assert without_v1.status_code == 200
    assert models.json()["data"][0]["id"] == "house-judge"
    assert models.json()["object"] == "list"
    assert health.json() == {"status": "ok"}
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert no_model.json()["model"] == "house-judge"
    assert judge.stats.requests == 2  # only POSTs to chat completions are counted


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'{"model": "m"}',
        b'{"model": "m", "messages": []}',
        b'{"model": "m", "messages": "hi"}',
    ],
)
async def test_a_bad_body_is_a_400(client: httpx.AsyncClient, body: bytes) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        response = await client.post(f"{judge.url}/chat/completions", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert judge.stats.by_status == {400: 1}


async def test_require_key(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, require_key="k-123")) as judge:
        missing = await post(client, judge, chat())
        wrong = await post(client, judge, chat(), headers={"Authorization": "Bearer nope"})
        right = await post(client, judge, chat(), headers={"Authorization": "Bearer k-123"})
        for i in range(12):
            await post(client, judge, chat(), headers={"Authorization": f"Bearer other-{i}"})
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert right.status_code == 200
    assert judge.stats.by_status == {401: 14, 200: 1}
    assert judge.stats.authorization_headers[:3] == [
        "Bearer nope",
        "Bearer k-123",
        "Bearer other-0",
    ]
    assert len(judge.stats.authorization_headers) == 10
    assert "k-123" not in repr(judge.config)


@pytest.mark.parametrize(("retry_after", "header"), [(0.1, "0.1"), (2, "2"), (0.25, "0.25")])
async def test_429_carries_retry_after(
    client: httpx.AsyncClient,
    retry_after: float,
    header: str,
) -> None:
    async with MockJudge(
        MockJudgeConfig(latency=0.0, rate_429=1.0, retry_after=retry_after)
    ) as judge:
        response = await post(client, judge, chat())
    assert response.status_code == 429
    assert response.headers["retry-after"] == header
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert judge.stats.faults == {"429": 1}
    assert judge.stats.by_status == {429: 1}


async def test_500(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, rate_500=1.0)) as judge:
        response = await post(client, judge, chat())
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert judge.stats.faults == {"500": 1}


async def test_garbage_is_a_200_that_is_not_json(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, rate_garbage=1.0)) as judge:
        response = await post(client, judge, chat())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "<<<not json>>>"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)
    assert judge.stats.faults == {"garbage": 1}


async def test_empty_is_a_well_formed_completion_without_text(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, rate_empty=1.0)) as judge:
        response = await post(client, judge, chat())
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == ""
    assert data["usage"]["completion_tokens"] == 0
    assert judge.stats.faults == {"empty": 1}


async def test_hang_times_the_client_out(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, rate_hang=1.0)) as judge:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await post(client, judge, chat(), timeout=0.2)
        assert time.monotonic() - started < 2.0
        assert judge.stats.faults == {"hang": 1}
        # the client hung up, so the server lets the request go
        await eventually(lambda: judge.stats.in_flight == 0)
    assert not judge.stats.by_status


async def test_exit_cuts_hung_requests(client: httpx.AsyncClient) -> None:
    errors: list[Exception] = []

    async def wait_forever(judge: MockJudge) -> None:
        try:
            await post(client, judge, chat(), timeout=10.0)
        except httpx.TransportError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        async with MockJudge(MockJudgeConfig(latency=0.0, rate_hang=1.0)) as judge:
            for _ in range(3):
                tg.start_soon(wait_forever, judge)
            await eventually(lambda: judge.stats.in_flight == 3)
            started = time.monotonic()
        assert time.monotonic() - started < 0.5
    assert len(errors) == 3
    assert not any(isinstance(error, httpx.TimeoutException) for error in errors)
    assert judge.stats.in_flight == 0


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_reset_is_a_connection_error(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client_transport = AiohttpTransport(trust_env=False) if transport == "aiohttp" else None
    async with (
        MockJudge(MockJudgeConfig(latency=0.0, rate_reset=1.0)) as judge,
        httpx.AsyncClient(transport=client_transport, timeout=5.0, trust_env=False) as client,
    ):
        for _ in range(2):  # and the client's pool copes with the dead connection
            with pytest.raises(httpx.TransportError) as caught:
                await post(client, judge, chat())
            assert isinstance(caught.value, (httpx.NetworkError, httpx.RemoteProtocolError))
        judge.set_config(MockJudgeConfig(latency=0.0))
        assert (await post(client, judge, chat())).status_code == 200
    assert judge.stats.faults == {"reset": 2}
    assert judge.stats.by_status == {200: 1}
    assert not caplog.records  # aiohttp took the dropped connections quietly


async def test_max_in_flight_tracks_concurrency(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.2)) as judge:
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(post, client, judge, chat(f"error {i}"))
        elapsed = time.monotonic() - started
    assert judge.stats.max_in_flight == 20
    assert judge.stats.in_flight == 0
    assert judge.stats.by_status == {200: 20}
    assert len(judge.stats.prompts) == 20
    assert 0.2 <= elapsed < 2.0  # concurrent, not 20 x 0.2 s


async def test_latency_and_jitter(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.15, jitter=0.05, seed=1)) as judge:
        for _ in range(3):
            started = time.monotonic()
            await post(client, judge, chat())
            assert 0.1 <= time.monotonic() - started < 1.0


async def statuses(client: httpx.AsyncClient, judge: MockJudge, n: int = 24) -> list[int]:
    return [(await post(client, judge, chat())).status_code for _ in range(n)]


async def test_a_seed_makes_faults_reproducible(client: httpx.AsyncClient) -> None:
    config = MockJudgeConfig(latency=0.0, rate_500=0.3, rate_429=0.3, seed=7)
    async with MockJudge(config) as first, MockJudge(config) as second:
        a = await statuses(client, first)
        b = await statuses(client, second)
        first.set_config(config)  # the draws restart from the seed
        again = await statuses(client, first)
        first.set_config(MockJudgeConfig(latency=0.0, rate_500=0.3, rate_429=0.3, seed=8))
        other = await statuses(client, first)
    assert a == b == again
    assert {200, 429, 500} <= set(a)
    assert other != a


async def test_set_config_changes_faults_between_phases(client: httpx.AsyncClient) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, rate_500=1.0)) as judge:
        assert (await post(client, judge, chat())).status_code == 500
        judge.set_config(MockJudgeConfig(latency=0.0))
        assert (await post(client, judge, chat())).status_code == 200
    assert judge.stats.by_status == {500: 1, 200: 1}
    assert judge.stats.requests == 2


@pytest.mark.parametrize(
    "options",
    [
        {"rate_500": 1.5},
        {"rate_429": -0.1},
        {"rate_500": 0.6, "rate_hang": 0.6},
        {"latency": -1.0},
        {"jitter": -0.1},
        {"retry_after": -1.0},
        {"model": ""},
    ],
)
def test_bad_config_is_a_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        MockJudgeConfig(**options)


async def test_lifecycle_errors() -> None:
    judge = MockJudge()
    with pytest.raises(RuntimeError, match="not running"):
        _ = judge.url
    async with judge:
        taken = MockJudge(port=int(judge.url.rsplit(":", 1)[1].removesuffix("/v1")))
        with pytest.raises(ConfigError, match="cannot listen"):
            await taken.__aenter__()
    with pytest.raises(RuntimeError, match="once"):
        async with judge:
            pass


async def test_serve_forever_announces_itself(
    client: httpx.AsyncClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve_forever(MockJudgeConfig(latency=0.0), host="127.0.0.1", port=0))
        err = ""

        def announced() -> bool:
            nonlocal err
            err += capsys.readouterr().err
            return err.endswith("\n")

        await eventually(announced, seconds=5.0)
        match = re.fullmatch(r"mock judge listening on (http://127\.0\.0\.1:\d+/v1)\n", err)
        assert match is not None
        response = await client.post(f"{match[1]}/chat/completions", json=chat())
        assert response.status_code == 200
        tg.cancel_scope.cancel()
