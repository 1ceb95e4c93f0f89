"""The LLM-judge HTTP client: any OpenAI-compatible chat-completions endpoint.

Knows HTTP and nothing about transcripts. One ``JudgeClient`` owns one HTTP session, created
when the client is entered, so on the event loop that uses it. By default that is an
``aiohttp.ClientSession`` used directly: ``benchmarks/bench_judge.py`` measured it at a third
of the client CPU per request of httpx over the ``httpx-aiohttp`` transport, which matters at
hundreds of requests in flight on one core. ``transport="httpx-aiohttp"`` keeps the httpx
API over aiohttp; ``transport="httpx"`` is stock httpx 0.28 / httpcore 1.0, whose pool
bookkeeping collapses at 64+ concurrent requests (httpx#3215), kept for comparison. An
``httpx.AsyncBaseTransport`` passed to the constructor (the test seam) uses httpx.

Per request: a hard per-attempt timeout, bounded attempts, exponential backoff with full
jitter on 429, 5xx, timeouts, connection errors and malformed bodies, ``Retry-After``
honoured. A request that finally fails is a ``JudgeFailure`` value; only an auth failure
(401/403) raises, because it would fail every site the same way.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self

import aiohttp
import anyio
import httpx
import orjson

from tracehint._exceptions import ConfigError, JudgeAuthError
from tracehint._ratelimit import TokenBucket

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "API_KEY_ENV",
    "JudgeClient",
    "JudgeConfig",
    "JudgeFailure",
    "JudgeReply",
    "JudgeStats",
    "RetryPolicy",
]

API_KEY_ENV = ("TRACEHINT_JUDGE_API_KEY", "OPENAI_API_KEY")
"""Environment variables the API key is read from, in order."""


def api_key_from_env() -> str | None:
    """The first non-empty ``API_KEY_ENV`` variable, or ``None``."""
    return next((os.environ[name] for name in API_KEY_ENV if os.environ.get(name)), None)


_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How failed judge requests are retried."""

    max_attempts: int = 5
    """Attempts per request, the first included."""
    base_delay: float = 0.5
    """Backoff before the second attempt; doubles each time (full jitter)."""
    max_delay: float = 20.0
    """Cap on one backoff sleep."""
    max_retry_after: float = 60.0
    """Cap on a server's ``Retry-After``."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("RetryPolicy.max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ConfigError("RetryPolicy delays must not be negative")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Sleep before retry number ``attempt`` (1-based), with full jitter."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeConfig:
    """Where the judge is and how to talk to it."""

    url: str
    """Base URL of an OpenAI-compatible API, e.g. ``http://localhost:8000/v1``."""
    model: str
    api_key: str | None = field(default=None, repr=False)
    """Sent as a Bearer token; never logged, cached or written anywhere."""
    timeout: float = 60.0
    """Hard limit on one attempt, connection included."""
    connect_timeout: float = 10.0
    max_tokens: int = 160
    temperature: float = 0.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 64
    """Requests in flight at most."""
    requests_per_second: float | None = None
    tokens_per_minute: float | None = None
    transport: Literal["aiohttp", "httpx-aiohttp", "httpx"] = "aiohttp"
    """``aiohttp`` (fastest), ``httpx-aiohttp`` (httpx API over aiohttp), ``httpx`` (stock)."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"judge URL must start with http:// or https://, got {self.url!r}")
        if not self.model:
            raise ConfigError("a judge model name is required (--judge-model)")
        if self.concurrency < 1:
            raise ConfigError("judge concurrency must be at least 1")
        if self.timeout <= 0:
            raise ConfigError("judge timeout must be positive")
        for name, value in (
            ("requests per second (--rps)", self.requests_per_second),
            ("tokens per minute (--tpm)", self.tokens_per_minute),
        ):
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value:g}")

    @classmethod
    def from_env(cls, *, url: str, model: str, **options: Any) -> JudgeConfig:  # noqa: ANN401 -- forwards keyword options
        """Make a config with the API key from ``TRACEHINT_JUDGE_API_KEY``/``OPENAI_API_KEY``."""
        return cls(url=url, model=model, api_key=api_key_from_env(), **options)

    def answer_fingerprint(self) -> str:
        """The options that change the answer, for the cache key (none yet beyond the model)."""
        return ""

    @property
    def endpoint(self) -> str:
        """The chat-completions URL."""
        return self.url.rstrip("/") + "/chat/completions"


@dataclass(frozen=True, slots=True)
class JudgeReply:
    """A usable answer from the judge."""

    text: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int
    finish_reason: str | None = None
    """The server's ``finish_reason`` (``stop``, ``length``, …), when it sent one."""
    structured: bool = False
    """Whether the request carried a ``response_format`` the server accepted."""


@dataclass(frozen=True, slots=True)
class JudgeFailure:
    """A request that failed after its retries (a value, not an exception)."""

    reason: str
    """Short and stable, for counting: ``timeout``, ``http_500``, ``malformed``, …"""
    detail: str
    attempts: int


@dataclass(slots=True)
class JudgeStats:
    """Counters of one client."""

    requests: int = 0
    """HTTP attempts sent."""
    retries: int = 0
    replies: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    attempt_errors: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counters."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "replies": self.replies,
            "failures": dict(self.failures.most_common()),
            "attempt_errors": dict(self.attempt_errors.most_common()),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "max_in_flight": self.max_in_flight,
        }


class _AttemptError(Exception):
    """One attempt failed (private; carries whether to retry and how long to wait)."""

    def __init__(self, reason: str, detail: str, *, retry: bool, wait: float | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry = retry
        self.wait = wait


def _retry_after(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), cap)


def _parse_reply(
    body: bytes, fallback_model: str, attempts: int, *, structured: bool = False
) -> JudgeReply:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _AttemptError("malformed", "response body is not JSON", retry=True) from None
    if not isinstance(data, dict):
        raise _AttemptError("malformed", "response is not a JSON object", retry=True)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _AttemptError("malformed", "response has no choices", retry=True)
    message = choices[0].get("message")
    finish = choices[0].get("finish_reason")
    if finish == "length":
        raise _AttemptError("cut_off", "the answer hit max_tokens", retry=False)
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise _AttemptError("empty", "response has no text", retry=True)
    found = data.get("usage")
    usage: dict[str, Any] = found if isinstance(found, dict) else {}
    prompt_tokens = usage.get("prompt_tokens")
    completion_tokens = usage.get("completion_tokens")
    model = data.get("model")
    return JudgeReply(
        text.strip(),
        model if isinstance(model, str) and model else fallback_model,
        prompt_tokens if isinstance(prompt_tokens, int) else None,
        completion_tokens if isinstance(completion_tokens, int) else None,
        attempts,
        finish if isinstance(finish, str) else None,
        structured,
    )


class JudgeClient:
    """An async context manager that sends chat requests to the judge.

    ``complete`` never raises for a per-request failure (it returns ``JudgeFailure``); it
    raises ``JudgeAuthError`` on 401/403. Concurrency is bounded by ``config.concurrency``, or
    by ``limiter`` when several clients share one (a Ray actor's batches). Pass ``transport``
    to replace the HTTP transport (the test seam).
    """

    def __init__(
        self,
        config: JudgeConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int | None = None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.config = config
        self.stats = JudgeStats()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._session: aiohttp.ClientSession | None = None
        # A limiter shared by several clients bounds their requests in flight together.
        self._limiter = limiter or anyio.CapacityLimiter(config.concurrency)
        self._rng = random.Random(seed)  # noqa: S311 -- jitter, not cryptography
        self._rps = (
            TokenBucket(config.requests_per_second, max(config.requests_per_second, 1.0))
            if config.requests_per_second
            else None
        )
        self._tpm = (
            TokenBucket(config.tokens_per_minute / 60.0, config.tokens_per_minute)
            if config.tokens_per_minute
            else None
        )
        self._auth_failed: str | None = None

    async def __aenter__(self) -> Self:
        config = self.config
        headers = {"Content-Type": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        transport = self._transport
        if transport is None and config.transport == "aiohttp":
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=config.concurrency),
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=config.timeout, sock_connect=config.connect_timeout
                ),
                trust_env=False,
            )
            return self
        limits = httpx.Limits(
            max_connections=config.concurrency,
            max_keepalive_connections=config.concurrency,
        )
        if transport is None and config.transport == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 -- only when used

            transport = AiohttpTransport(limits=limits, trust_env=False)
        self._client = httpx.AsyncClient(
            transport=transport,
            limits=limits,
            headers=headers,
            timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
            trust_env=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        session, self._session = self._session, None
        with anyio.CancelScope(shield=True):
            if client is not None:
                await client.aclose()
            if session is not None:
                await session.close()

    def _payload(
        self, messages: list[dict[str, str]], response_format: dict[str, Any] | None
    ) -> bytes:
        payload: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
        }
        if response_format is not None:
            payload["response_format"] = response_format
        return orjson.dumps(payload)

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        response_format: dict[str, Any] | None = None,
    ) -> JudgeReply | JudgeFailure:
        """Ask the judge; retry per the policy; return the reply or the final failure.

        ``response_format`` is sent as given (e.g. a ``json_schema``); an answer cut off by
        ``max_tokens`` is a ``cut_off`` failure, never a reply.
        """
        if self._client is None and self._session is None:
            raise RuntimeError("JudgeClient is not open: use `async with JudgeClient(...)`")
        if self._auth_failed is not None:
            raise JudgeAuthError(self._auth_failed)
        body = self._payload(messages, response_format)
        structured = response_format is not None
        policy = self.config.retry
        last: _AttemptError | None = None
        for attempt in range(1, policy.max_attempts + 1):
            if attempt > 1:
                self.stats.retries += 1
                wait = policy.backoff(attempt - 1, self._rng)
                if last is not None and last.wait is not None:
                    wait = max(wait, last.wait)
                await anyio.sleep(wait)
            try:
                reply = await self._attempt(body, attempt, structured=structured)
            except _AttemptError as error:
                self.stats.attempt_errors[error.reason] += 1
                last = error
                if not error.retry:
                    break
                continue
            self.stats.replies += 1
            self.stats.prompt_tokens += reply.prompt_tokens or 0
            self.stats.completion_tokens += reply.completion_tokens or 0
            return reply
        assert last is not None  # noqa: S101 -- the loop ran at least once and did not return
        self.stats.failures[last.reason] += 1
        return JudgeFailure(last.reason, last.detail, attempt)

    async def _post(self, body: bytes) -> tuple[int, str | None, bytes]:
        """POST one request; return the status, the ``Retry-After`` header and the body."""
        if self._session is not None:
            try:
                async with self._session.post(self.config.endpoint, data=body) as response:
                    return (
                        response.status,
                        response.headers.get("Retry-After"),
                        await response.read(),
                    )
            except TimeoutError:
                raise
            except aiohttp.ClientError as exc:
                raise _AttemptError(
                    "connection", f"connection error: {type(exc).__name__}", retry=True
                ) from None
        assert self._client is not None  # noqa: S101 -- one of the two is open
        try:
            answer = await self._client.post(self.config.endpoint, content=body)
        except httpx.TimeoutException:
            raise _AttemptError("timeout", "the request timed out", retry=True) from None
        except httpx.TransportError as exc:
            raise _AttemptError(
                "connection", f"connection error: {type(exc).__name__}", retry=True
            ) from None
        return answer.status_code, answer.headers.get("retry-after"), answer.content

    async def _attempt(self, body: bytes, attempt: int, *, structured: bool) -> JudgeReply:
        if self._rps is not None:
            await self._rps.acquire()
        if self._tpm is not None:
            await self._tpm.acquire(len(body) / 4 + self.config.max_tokens)
        # A free slot is taken without a scheduling round trip; only a full limiter waits.
        limiter = self._limiter
        try:
            limiter.acquire_nowait()
        except anyio.WouldBlock:
            await limiter.acquire()
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if self._session is not None:
                # aiohttp's own total timeout bounds the attempt (connection and body
                # included); a cancel scope per request costs as much CPU as aiohttp itself.
                status, retry_after, content = await self._post(body)
            else:
                with anyio.fail_after(self.config.timeout):
                    status, retry_after, content = await self._post(body)
        except TimeoutError:
            raise _AttemptError(
                "timeout", f"no answer within {self.config.timeout:g} s", retry=True
            ) from None
        finally:
            stats.in_flight -= 1
            limiter.release()
        if status in {401, 403}:
            self._auth_failed = (
                f"the judge at {self.config.url} answered HTTP {status}: check the API key "
                f"(set {API_KEY_ENV[0]} or {API_KEY_ENV[1]}) and that it may use model "
                f"{self.config.model!r}"
            )
            raise JudgeAuthError(self._auth_failed)
        if status != 200:
            wait = _retry_after(retry_after, self.config.retry.max_retry_after)
            raise _AttemptError(
                f"http_{status}",
                f"HTTP {status}: {content[:200].decode('utf-8', 'replace')}",
                retry=status in _RETRY_STATUS,
                wait=wait,
            )
        return _parse_reply(content, self.config.model, attempt, structured=structured)
