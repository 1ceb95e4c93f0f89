"""The LLM-judge HTTP client: any OpenAI-compatible chat-completions endpoint.

Knows HTTP and nothing about transcripts. One ``JudgeClient`` owns one HTTP session, created
when the client is entered, so on the event loop that uses it. By default that is an
``aiohttp.ClientSession`` used directly: ``benchmarks/bench_judge.py`` measured it at a third
of the client CPU per request of httpx over the ``httpx-aiohttp`` transport, which matters at
hundreds of requests in flight on one core. ``transport="httpx-aiohttp"`` keeps the httpx
API over aiohttp; ``transport="httpx"`` is stock httpx 0.28 / httpcore 1.0, whose pool
bookkeeping collapses at 64+ concurrent requests (httpx#3215), kept for comparison. An
``httpx.AsyncBaseTransport`` passed to the constructor (the test seam) uses httpx.

The client tells the truth about the server:

* ``preflight()`` checks, before a run, that something answers at the URL, finds whether the
  API lives at the URL or at ``URL/v1``, and that the model is among the models it lists.
* Per request: a hard per-attempt timeout, bounded attempts, exponential backoff with full
  jitter on 5xx, timeouts, connection errors and malformed bodies; ``Retry-After`` honoured;
  a 429 without it backs off longer and halves the requests in flight (``AdaptiveLimiter``).
* 400/404/422 are not retried. A cut-off answer (``finish_reason: "length"``) is asked again
  once with twice the tokens and is never returned as a reply. A 400 that asks for
  ``max_completion_tokens`` or rejects ``response_format`` is answered by resending without
  the offending field, remembered for the rest of the client's life.
* A request that finally fails is a ``JudgeFailure`` value carrying the server's own words. A
  circuit breaker turns failures that will repeat for every site into one exception: the same
  permanent error on the first requests (``JudgeConfigError``), a judge unreachable for many
  requests in a row (``JudgeUnavailableError``); 401/403 raise ``JudgeAuthError`` at once.
* Answer bodies are read up to ``max_response_bytes``; a bigger one is a malformed answer, and
  no body outlives the attempt that read it (failures keep short strings, not exceptions).
* ``drain()`` (a graceful stop) sends nothing new: requests on the wire finish, and every
  request or retry not yet sent raises ``StoppedError``.
"""

from __future__ import annotations

import email.utils
import enum
import fnmatch
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Self

import aiohttp
import anyio
import httpx
import orjson

from tracehint._exceptions import (
    ConfigError,
    JudgeAuthError,
    JudgeConfigError,
    JudgeError,
    JudgeUnavailableError,
    StoppedError,
)
from tracehint._ratelimit import AdaptiveLimiter, TokenBucket

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

__all__ = [
    "API_KEY_ENV",
    "FailureReason",
    "JudgeClient",
    "JudgeConfig",
    "JudgeFailure",
    "JudgePreflight",
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
_SERVER_MESSAGE_CHARS = 300
"""The server's words kept per failure (enough for any error message, never a whole page)."""
_MODELS_SHOWN = 20
_PREFLIGHT_TIMEOUT = 15.0
_PREFLIGHT_CONNECT_TRIES = 3
_READ_CHUNK = 64 * 1024

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "exceeds the available context",
    "too many tokens",
)
_RESPONSE_FORMAT_MARKERS = ("response_format", "json_schema", "guided", "structured output")


class FailureReason(enum.StrEnum):
    """Why a judge request failed (``JudgeFailure.reason``; ``http_<status>`` besides these)."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    MALFORMED = "malformed"
    """The body is not a chat completion (not JSON, no choices, or over the size cap)."""
    EMPTY = "empty"
    """A well-formed completion without answer text."""
    CUT_OFF = "cut_off"
    """The answer was cut off at the token limit, even with twice the tokens."""
    CONTEXT_LENGTH = "context_length"
    """The prompt does not fit the model's context: retry with a smaller prompt."""
    RATE_LIMITED = "http_429"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How failed judge requests are retried, and when the run stops trying."""

    max_attempts: int = 5
    """Attempts per request, the first included (429 answers have their own budget)."""
    base_delay: float = 0.5
    """Backoff before the second attempt; doubles each time (full jitter)."""
    max_delay: float = 20.0
    """Cap on one backoff sleep."""
    max_retry_after: float = 60.0
    """Cap on a server's ``Retry-After``."""
    rate_limit_delay: float = 1.0
    """Backoff after a 429 without ``Retry-After``; doubles each time (full jitter)."""
    rate_limit_attempts: int = 30
    """429 answers one request may get before it fails (a rate limit costs time, not hints)."""
    stop_after_permanent: int = 3
    """Stop the run when the first this many requests fail with the same 400/404/422
    (``JudgeConfigError``); 0 never stops."""
    stop_after_unreachable: int = 5
    """Stop the run when this many requests in a row could not connect or timed out after all
    their attempts (``JudgeUnavailableError``); 0 never stops."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.rate_limit_attempts < 1:
            raise ConfigError("RetryPolicy attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.max_retry_after, self.rate_limit_delay) < 0:
            raise ConfigError("RetryPolicy delays must not be negative")
        if self.stop_after_permanent < 0 or self.stop_after_unreachable < 0:
            raise ConfigError("RetryPolicy stop_after_* must not be negative (0 never stops)")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Sleep before retry number ``attempt`` (1-based), with full jitter."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def rate_limit_backoff(self, count: int, rng: random.Random) -> float:
        """Sleep after the ``count``-th 429 without ``Retry-After`` (1-based), full jitter."""
        ceiling = min(self.max_delay, self.rate_limit_delay * 2 ** min(count - 1, 30))
        return rng.uniform(ceiling / 2, ceiling)


class _FrozenJson(dict[str, Any]):
    """A read-only JSON object that still pickles (Ray ships configs to its workers)."""

    __slots__ = ()

    def _refuse(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError("a judge config's extra body is read-only; make a new config")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __reduce__(self) -> tuple[type[_FrozenJson], tuple[dict[str, Any]]]:
        return (_FrozenJson, (dict(self),))


def _frozen_json(value: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    if not isinstance(value, dict | MappingProxyType):
        raise ConfigError(f"{name} must be a JSON object, got {type(value).__name__}")
    try:
        copy = orjson.loads(orjson.dumps(dict(value)))
    except TypeError as exc:
        raise ConfigError(f"{name} must be JSON-serialisable: {exc}") from None
    return _FrozenJson(copy)


def _extra_body(value: Mapping[str, Any]) -> Mapping[str, Any]:
    extra = _frozen_json(value, "judge extra body (--judge-extra-body)")
    reserved = {"model", "messages", "stream"} & set(extra)
    if reserved:
        raise ConfigError(
            f"judge extra body may not set {', '.join(sorted(reserved))}: tracehint sets "
            "the model and messages itself and reads whole (not streamed) answers",
        )
    return extra


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeConfig:
    """Where the judge is and how to talk to it."""

    url: str
    """Base URL of an OpenAI-compatible API, e.g. ``http://localhost:8000/v1`` (the preflight
    also finds the API at ``URL/v1`` when given ``http://localhost:8000``)."""
    model: str
    api_key: str | None = field(default=None, repr=False)
    """Sent as a Bearer token; never logged, cached or written anywhere."""
    timeout: float = 60.0
    """Hard limit on one attempt, connection included."""
    connect_timeout: float = 10.0
    max_tokens: int = 160
    """Answer budget per request (doubled once for an answer cut off at the limit)."""
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """The request field the budget is sent in; the client switches to
    ``max_completion_tokens`` by itself when the server asks for it."""
    temperature: float | None = 0.0
    """Sampling temperature; ``None`` sends none (for models that accept only their default)."""
    extra_body: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Fields merged into every request body, e.g.
    ``{"chat_template_kwargs": {"enable_thinking": False}}``; they win over tracehint's own."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 64
    """Requests in flight at most (lowered by the client while the server answers 429)."""
    requests_per_second: float | None = None
    tokens_per_minute: float | None = None
    """Client-side token budget; each request reserves its prompt and answer budget and is
    settled with the ``usage`` the server reports."""
    max_response_bytes: int = 1_000_000
    """A bigger answer body is not read further and counts as malformed."""
    preflight: bool = True
    """Whether ``Annotator`` (and the CLI) check the URL and model before a run."""
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
        if self.max_tokens < 1:
            raise ConfigError(f"judge max tokens must be at least 1, got {self.max_tokens}")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ConfigError(f"judge temperature must be in [0, 2], got {self.temperature:g}")
        if self.max_response_bytes < 1024:
            raise ConfigError("judge max_response_bytes must be at least 1024")
        # A read-only copy, safe to share.
        object.__setattr__(self, "extra_body", _extra_body(self.extra_body))
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

    @property
    def endpoint(self) -> str:
        """The chat-completions URL."""
        return self.url.rstrip("/") + "/chat/completions"

    def answer_fingerprint(self) -> str:
        """A stable string of every request option that changes the answer.

        The temperature, the answer budget and the extra body (keys sorted); not the URL, the
        key, timeouts or limits. Two configs with the same fingerprint (and model) get the
        same answers, so a cache key can include it.
        """
        return orjson.dumps(
            {
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                "extra_body": dict(self.extra_body),
            },
            option=orjson.OPT_SORT_KEYS,
        ).decode()


@dataclass(frozen=True, slots=True)
class JudgeReply:
    """A usable answer from the judge."""

    text: str
    """The answer (``message.content``, stripped; never ``reasoning_content``)."""
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int
    finish_reason: str | None = None
    """As the server said (``stop`` mostly); never ``length``: a cut-off answer is a failure."""
    structured: bool = False
    """Whether the server accepted the ``response_format`` sent with the request."""

    @property
    def content(self) -> str:
        """The answer text (same as ``text``)."""
        return self.text


@dataclass(frozen=True, slots=True)
class JudgeFailure:
    """A request that failed after its retries (a value, not an exception)."""

    reason: str
    """Short and stable, for counting: a ``FailureReason`` value or ``http_<status>``."""
    detail: str
    attempts: int
    status: int | None = None
    """The last HTTP status, when the server answered."""
    server_message: str | None = None
    """The server's own words (its error message, or the start of its body)."""


@dataclass(frozen=True, slots=True)
class JudgePreflight:
    """What ``JudgeClient.preflight`` found."""

    url: str
    """The base URL requests go to (the given one, or it with ``/v1`` appended)."""
    models: tuple[str, ...] | None
    """The models the server lists; ``None`` when it lists none (no ``/models``)."""
    notes: tuple[str, ...] = ()
    """Things the user should know (URL changed, models not checked), one sentence each."""


@dataclass(slots=True)
class JudgeStats:
    """Counters of one client."""

    requests: int = 0
    """HTTP attempts sent."""
    retries: int = 0
    replies: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    attempt_errors: Counter[str] = field(default_factory=Counter)
    failure_samples: dict[str, str] = field(default_factory=dict)
    """One sample message per failure reason (the server's words when it gave any)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    rate_limited: int = 0
    """429 answers received."""
    concurrency: int = 0
    """The configured requests in flight."""
    lowest_in_flight_limit: int = 0
    """The lowest in-flight bound the client lowered itself to after 429s."""
    suggested_concurrency: int = 0
    """One less than the fewest requests in flight the server answered 429 to."""
    notes: list[str] = field(default_factory=list)
    """What the client learnt about the server (e.g. it rejects ``response_format``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counters."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "replies": self.replies,
            "failures": dict(self.failures.most_common()),
            "failure_samples": dict(self.failure_samples),
            "attempt_errors": dict(self.attempt_errors.most_common()),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "max_in_flight": self.max_in_flight,
            "rate_limited": self.rate_limited,
            "max_concurrency": self.concurrency,
            "min_in_flight_limit": self.lowest_in_flight_limit,
            "min_suggested_concurrency": self.suggested_concurrency,
            "notes": list(self.notes),
        }


class _Kind(enum.Enum):
    """How the client reacts to one failed attempt."""

    RETRY = "retry"
    """Transient: back off and try again (5xx, timeouts, connection errors, bad bodies)."""
    RATE_LIMITED = "rate_limited"
    PERMANENT = "permanent"
    """The same request will fail again (400/404/422): not retried."""
    CONTEXT = "context"
    MAX_TOKENS_FIELD = "max_tokens_field"
    RESPONSE_FORMAT = "response_format"
    """A 400 to a request that carried ``response_format``."""
    AUTH = "auth"
    """401/403: the run stops."""


class _Intake(enum.Enum):
    """Whether the client sends new requests."""

    OPEN = "open"
    DRAINING = "draining"
    """After ``drain()``: requests on the wire finish, nothing new is sent."""


class _Support(enum.Enum):
    """Whether the server takes an optional request field, as learnt from its answers."""

    UNKNOWN = "unknown"
    YES = "yes"
    NO = "no"


@dataclass(frozen=True, slots=True)
class _Failed:
    """One failed attempt: short strings only, so no body outlives the attempt."""

    reason: str
    detail: str
    kind: _Kind
    status: int | None = None
    server_message: str | None = None
    wait: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", str(self.reason))  # plain str, for JSON keys


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    retry_after: str | None
    content: bytes | None
    """``None`` when the body was over the size cap (and not read further)."""


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


def _one_line(text: str, limit: int = _SERVER_MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def server_message(content: bytes | None) -> str:
    """The server's own words in an error body: its ``error.message``, else the body's start."""
    if content is None:
        return "(a body over the size limit)"
    if not content.strip():
        return "(an empty body)"
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return _one_line(content[: _SERVER_MESSAGE_CHARS * 4].decode("utf-8", "replace"))
    found: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            found = error.get("message")
        elif isinstance(error, str):
            found = error
        if not isinstance(found, str) or not found:
            found = data.get("message") or data.get("detail")
    if isinstance(found, str) and found:
        return _one_line(found)
    return _one_line(orjson.dumps(data)[: _SERVER_MESSAGE_CHARS * 4].decode("utf-8", "replace"))


def _text_of(content: Any) -> str | None:  # noqa: ANN401 -- a JSON value from the server
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return None


def _parse_reply(
    content: bytes, fallback_model: str, attempts: int, *, structured: bool
) -> JudgeReply | _Failed:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        detail = f"the body is not JSON: {server_message(content)!r}"
        return _Failed(FailureReason.MALFORMED, detail, _Kind.RETRY)
    if not isinstance(data, dict):
        return _Failed(FailureReason.MALFORMED, "the body is not a JSON object", _Kind.RETRY)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        detail = f"the answer has no choices: {server_message(content)!r}"
        return _Failed(FailureReason.MALFORMED, detail, _Kind.RETRY)
    choice = choices[0]
    message = choice.get("message")
    text = _text_of(message.get("content")) if isinstance(message, dict) else None
    finish = choice.get("finish_reason")
    finish_reason = finish if isinstance(finish, str) else None
    if finish_reason == "length":
        return _Failed(
            FailureReason.CUT_OFF, "the answer was cut off at the token limit", _Kind.RETRY
        )
    if not isinstance(text, str) or not text.strip():
        detail = "the answer has no text"
        if isinstance(message, dict) and message.get("reasoning_content"):
            detail += (
                " (only reasoning_content: the model spent its answer thinking; turn thinking "
                "off with --judge-extra-body or raise --judge-max-tokens)"
            )
        return _Failed(FailureReason.EMPTY, detail, _Kind.RETRY)
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
        finish_reason,
        structured,
    )


def _model_ids(content: bytes | None) -> tuple[str, ...] | None:
    """The ids of an OpenAI ``/models`` list, or ``None`` when the body is not one."""
    if content is None:
        return None
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return tuple(
        item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)
    )


def _serves(models: tuple[str, ...], model: str) -> bool:
    # A proxy with wildcard routing lists a pattern (``openai/*``) instead of every model.
    return any(m == model or ("*" in m and fnmatch.fnmatchcase(model, m)) for m in models)


@dataclass(slots=True)
class _Breaker:
    """Counts failures that will repeat for every site; says when to stop the run."""

    policy: RetryPolicy
    succeeded: bool = False
    permanent_reason: str | None = None
    permanent_count: int = 0
    unreachable_count: int = 0
    tripped: JudgeError | None = None

    def success(self) -> None:
        self.succeeded = True
        self.permanent_reason = None
        self.permanent_count = 0
        self.unreachable_count = 0

    def failure(self, failed: _Failed, describe: str) -> JudgeError | None:
        """Record a request's final failure; the error to stop with, when it is time."""
        policy = self.policy
        if failed.kind is _Kind.PERMANENT:
            self.unreachable_count = 0
            if failed.reason != self.permanent_reason:
                self.permanent_reason, self.permanent_count = failed.reason, 0
            self.permanent_count += 1
            if (
                not self.succeeded
                and policy.stop_after_permanent
                and self.permanent_count >= policy.stop_after_permanent
            ):
                self.tripped = JudgeConfigError(
                    f"the first {self.permanent_count} judge requests all failed the same "
                    f"way, so every site would: {describe}",
                    server_message=failed.server_message,
                )
        elif failed.reason in {FailureReason.CONNECTION, FailureReason.TIMEOUT}:
            self.permanent_reason, self.permanent_count = None, 0
            self.unreachable_count += 1
            if policy.stop_after_unreachable and (
                self.unreachable_count >= policy.stop_after_unreachable
            ):
                self.tripped = JudgeUnavailableError(
                    f"the judge stopped answering: {self.unreachable_count} requests in a row "
                    f"failed after all their attempts ({describe}); is the server still up?",
                )
        else:
            self.permanent_reason, self.permanent_count = None, 0
            self.unreachable_count = 0
        return self.tripped


class _Request:
    """What one ``complete`` call sends; its options change as the server answers."""

    __slots__ = ("max_tokens", "messages", "response_format", "sent_field")

    def __init__(
        self,
        messages: list[dict[str, str]],
        response_format: dict[str, Any] | None,
        max_tokens: int,
    ) -> None:
        self.messages = messages
        self.response_format = response_format
        self.max_tokens = max_tokens
        self.sent_field = "max_tokens"
        """The field the budget went out in, last time."""


def _classify_refusal(status: int, said: str, request: _Request) -> tuple[str, _Kind]:
    """The failure reason and reaction for an error status other than 401/403/429."""
    lowered = said.lower()
    if status in {400, 413, 422}:
        if any(marker in lowered for marker in _CONTEXT_MARKERS):
            return FailureReason.CONTEXT_LENGTH, _Kind.CONTEXT
        if "max_completion_tokens" in lowered and request.sent_field == "max_tokens":
            return f"http_{status}", _Kind.MAX_TOKENS_FIELD
        if request.response_format is not None:
            return f"http_{status}", _Kind.RESPONSE_FORMAT
    return f"http_{status}", _Kind.RETRY if status in _RETRY_STATUS else _Kind.PERMANENT


class JudgeClient:
    """An async context manager that sends chat requests to the judge.

    ``complete`` never raises for a per-request failure (it returns ``JudgeFailure``); it
    raises ``JudgeAuthError`` on 401/403 and, once its circuit breaker trips,
    ``JudgeConfigError`` or ``JudgeUnavailableError`` (for every later call too). Requests in
    flight are bounded by ``config.concurrency`` (lowered while the server answers 429), and
    also by ``limiter`` when several clients share one (a Ray actor's batches). Pass
    ``transport`` to replace the HTTP transport (the test seam).
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
        self.stats = JudgeStats(
            concurrency=config.concurrency,
            lowest_in_flight_limit=config.concurrency,
            suggested_concurrency=config.concurrency,
        )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._session: aiohttp.ClientSession | None = None
        # A limiter shared by several clients bounds their requests in flight together.
        self._shared_limiter = limiter
        # Until the first answer, only as many requests as the breaker needs to see are sent
        # (unless a preflight found the model listed: then all of them at once).
        self._limiter = AdaptiveLimiter(
            config.concurrency, start=config.retry.stop_after_permanent or None
        )
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
        self._base_url = config.url.rstrip("/")
        self._endpoint = self._base_url + "/chat/completions"
        self._max_tokens_field: str = config.max_tokens_field
        self._response_format = _Support.UNKNOWN
        self._breaker = _Breaker(config.retry)
        self._auth_failed: JudgeAuthError | None = None
        self._intake = _Intake.OPEN

    @property
    def base_url(self) -> str:
        """The base URL requests go to (after ``preflight``, the one that answered)."""
        return self._base_url

    @property
    def supports_response_format(self) -> bool | None:
        """``False`` once the server rejected ``response_format``; ``None`` until known."""
        return {_Support.YES: True, _Support.NO: False}.get(self._response_format)

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

    def drain(self) -> None:
        """Send no new request from now on (a graceful stop); it cannot be undone.

        Requests already on the wire finish and are returned as usual; a call of ``complete``
        whose request (or retry) is not sent yet raises ``StoppedError`` instead, also when it
        is waiting for a free slot.
        """
        self._intake = _Intake.DRAINING

    def _check_open(self) -> None:
        if self._client is None and self._session is None:
            raise RuntimeError("JudgeClient is not open: use `async with JudgeClient(...)`")

    def _scrub(self, text: str) -> str:
        """``text`` without our API key (a proxy may echo what it was sent)."""
        key = self.config.api_key
        return text.replace(key, "***") if key else text

    # -- preflight ----------------------------------------------------------------------

    async def preflight(self) -> JudgePreflight:
        """Check the judge before a run: something answers, the API's URL, the model.

        ``GET {url}/models``, then ``GET {url}/v1/models`` when the first is 404 and the URL
        does not end in ``/v1``; the one that answers becomes the base URL. Raises
        ``JudgeUnavailableError`` when nothing answers at the URL, ``JudgeConfigError`` when
        the server lists its models and ``config.model`` is not among them, and
        ``JudgeAuthError`` on 401/403. A server without ``/models`` passes, with a note.

        Until the judge first answers a request, the client sends only as many as its circuit
        breaker needs to see (``RetryPolicy.stop_after_permanent``), so a server that refuses
        them all is found out early; a preflight that finds the model listed has seen the
        server answer for it, and lifts that bound at once.
        """
        self._check_open()
        given = self.config.url.rstrip("/")
        candidates = [given] if given.endswith("/v1") else [given, given + "/v1"]
        answers: list[tuple[str, _Answer]] = []
        for base in candidates:
            answer = await self._preflight_get(base + "/models")
            if answer.status in {401, 403}:
                raise self._auth_error(answer.status, server_message(answer.content))
            models = _model_ids(answer.content) if answer.status == 200 else None
            if models is not None:
                return self._use_models(base, models)
            answers.append((base, answer))
        said = "; ".join(
            f"GET {base}/models: HTTP {answer.status} {server_message(answer.content)!r}"
            for base, answer in answers
        )
        note = (
            f"the judge at {given} does not list its models ({said}); the model name "
            f"{self.config.model!r} was not checked"
        )
        self.stats.notes.append(note)
        return JudgePreflight(given, None, (note,))

    def _use_models(self, base: str, models: tuple[str, ...]) -> JudgePreflight:
        notes: list[str] = []
        given = self.config.url.rstrip("/")
        if base != given:
            notes.append(f"the judge API is at {base} (not {given}): using {base}")
            self._base_url = base
            self._endpoint = base + "/chat/completions"
        model = self.config.model
        if not _serves(models, model):
            shown = ", ".join(models[:_MODELS_SHOWN]) or "(none)"
            if len(models) > _MODELS_SHOWN:
                shown += f", … ({len(models)} in all)"
            raise JudgeConfigError(
                f"the judge at {base} does not serve model {model!r}; it offers: {shown} "
                "(pass one of them to --judge-model)",
                server_message=shown,
            )
        self.stats.notes.extend(notes)
        # The server answered for this model: a wrong URL, key or model name is ruled out, so
        # the first requests need not probe it a few at a time (see ``AdaptiveLimiter``).
        self._limiter.answered()
        return JudgePreflight(base, models, tuple(notes))

    async def _preflight_get(self, url: str) -> _Answer:
        timeout = min(self.config.timeout, _PREFLIGHT_TIMEOUT)
        failed: _Failed | None = None
        for attempt in range(_PREFLIGHT_CONNECT_TRIES):
            if attempt:
                await anyio.sleep(0.5 * attempt)  # a server still starting gets a moment
            with anyio.move_on_after(timeout) as scope:
                found = await self._send("GET", url, None, seconds=timeout)
            if scope.cancelled_caught:
                found = _Failed(FailureReason.TIMEOUT, "", _Kind.RETRY)
            if isinstance(found, _Answer):
                return found
            failed = found
            if found.reason != FailureReason.CONNECTION:
                break
        assert failed is not None  # noqa: S101 -- the loop ran and did not return
        if failed.reason == FailureReason.TIMEOUT:
            raise JudgeUnavailableError(
                f"the judge at {self.config.url} did not answer GET {url} within {timeout:g} s"
            )
        raise JudgeUnavailableError(
            f"nothing answers at the judge URL {self.config.url} ({failed.detail}); is the "
            "server running, and are the host and port right?",
        )

    # -- one request --------------------------------------------------------------------

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        response_format: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> JudgeReply | JudgeFailure:
        """Ask the judge; retry per the policy; return the reply or the final failure.

        ``response_format`` (e.g. ``{"type": "json_schema", ...}``) is sent while the server
        accepts it; the reply says whether it was (``structured``). ``max_tokens`` replaces
        ``config.max_tokens`` for this request (the reader's longer answers).
        """
        self._check_open()
        self._raise_if_stopped()
        request = _Request(
            messages,
            response_format if self._response_format is not _Support.NO else None,
            max_tokens if max_tokens is not None else self.config.max_tokens,
        )
        outcome = await self._complete(request)
        if isinstance(outcome, JudgeReply):
            self._breaker.success()
            self.stats.replies += 1
            self.stats.prompt_tokens += outcome.prompt_tokens or 0
            self.stats.completion_tokens += outcome.completion_tokens or 0
            return outcome
        failed, attempts = outcome
        self.stats.failures[failed.reason] += 1
        detail = failed.detail
        if failed.server_message and failed.server_message not in detail:
            detail = f"{detail}: {failed.server_message!r}"
        self.stats.failure_samples.setdefault(failed.reason, detail)
        tripped = self._breaker.failure(failed, self._describe(failed, detail))
        if tripped is not None:
            raise tripped
        return JudgeFailure(failed.reason, detail, attempts, failed.status, failed.server_message)

    def _raise_if_stopped(self) -> None:
        if self._intake is _Intake.DRAINING:
            raise StoppedError("the run is stopping: no new judge request is sent")
        if self._auth_failed is not None:
            raise self._auth_failed
        if self._breaker.tripped is not None:
            raise self._breaker.tripped

    def _describe(self, failed: _Failed, detail: str) -> str:
        """The failure, and what to change when we can tell."""
        text = f"POST {self._endpoint}: {detail}"
        said = (failed.server_message or "").lower()
        if failed.status == 404 and not self._base_url.endswith("/v1"):
            text += f" (does the API live at {self._base_url}/v1? pass that as --judge-url)"
        elif failed.status == 404 or "model" in said:
            text += f" (is {self.config.model!r} the model name the server serves?)"
        if "temperature" in said:
            text += " (this model may not accept a temperature: pass --judge-temperature none)"
        return text

    async def _complete(  # noqa: C901, PLR0912, PLR0915 -- the retry state machine reads best in one place
        self, request: _Request
    ) -> JudgeReply | tuple[_Failed, int]:
        """The attempts of one request; the reply, or the last failure and the attempts."""
        policy = self.config.retry
        attempts = errors = rate_limited = 0
        cut_off = False
        probe: _Failed | None = None
        """A 400 to a request with ``response_format``, being resent without it."""
        while True:
            attempts += 1
            found = await self._attempt(request, attempts)
            if isinstance(found, JudgeReply):
                if probe is not None:  # the same request without response_format worked
                    self._forget_response_format(probe)
                elif found.structured and self._response_format is _Support.UNKNOWN:
                    self._response_format = _Support.YES
                return found
            self.stats.attempt_errors[found.reason] += 1
            kind = found.kind
            if kind is _Kind.AUTH:
                assert found.status is not None  # noqa: S101 -- set for every HTTP answer
                self._auth_failed = self._auth_error(found.status, found.server_message or "")
                raise self._auth_failed
            if kind is _Kind.MAX_TOKENS_FIELD:
                if self._max_tokens_field == "max_tokens":
                    self._max_tokens_field = "max_completion_tokens"
                    self.stats.notes.append(
                        "the judge asked for max_completion_tokens instead of max_tokens: "
                        "sent so from then on"
                    )
                continue
            if kind is _Kind.RESPONSE_FORMAT:
                request.response_format = None
                said = (found.server_message or "").lower()
                if any(marker in said for marker in _RESPONSE_FORMAT_MARKERS):
                    self._forget_response_format(found)
                else:
                    probe = found
                continue
            if found.reason == FailureReason.CUT_OFF:
                if cut_off:
                    return found, attempts
                cut_off = True  # once more with twice the budget, then it is a failure
                request.max_tokens *= 2
                continue
            if kind is _Kind.RATE_LIMITED:
                rate_limited += 1
                if rate_limited >= policy.rate_limit_attempts:
                    return found, attempts
                wait = found.wait
                if wait is None:
                    wait = policy.rate_limit_backoff(rate_limited, self._rng)
            elif kind is _Kind.RETRY:
                errors += 1
                if errors >= policy.max_attempts:
                    return found, attempts
                wait = max(policy.backoff(errors, self._rng), found.wait or 0.0)
            else:
                return found, attempts
            self.stats.retries += 1
            await anyio.sleep(wait)
            self._raise_if_stopped()

    def _forget_response_format(self, found: _Failed) -> None:
        if self._response_format is not _Support.NO:
            self._response_format = _Support.NO
            self.stats.notes.append(
                "the judge rejected response_format "
                f"({found.server_message!r}): requests are sent without it",
            )

    def _payload(self, request: _Request) -> bytes:
        config = self.config
        body: dict[str, Any] = {
            "model": config.model,
            "messages": request.messages,
            self._max_tokens_field: request.max_tokens,
        }
        request.sent_field = self._max_tokens_field
        if config.temperature is not None:
            body["temperature"] = config.temperature
        if request.response_format is not None:
            body["response_format"] = request.response_format
        body.update(config.extra_body)
        return orjson.dumps(body)

    async def _attempt(self, request: _Request, attempt: int) -> JudgeReply | _Failed:
        body = self._payload(request)
        reserved = 0.0
        if self._rps is not None:
            await self._rps.acquire()
        if self._tpm is not None:
            reserved = min(len(body) / 4 + request.max_tokens, self._tpm.capacity)
            await self._tpm.acquire(reserved)
        epoch = await self._limiter.acquire()
        try:
            self._raise_if_stopped()  # the breaker may have tripped while this one waited
            answer = await self._post(body)
        finally:
            self._limiter.release()
        if isinstance(answer, _Failed):
            return answer
        outcome = self._judge_answer(answer, request, attempt, epoch)
        if isinstance(outcome, _Failed):
            if outcome.kind is _Kind.PERMANENT:
                self._limiter.refused()
            elif outcome.kind in {_Kind.RETRY, _Kind.CONTEXT}:
                self._limiter.answered()  # the server works, if not for this request
        self._settle_tokens(reserved, request.max_tokens, outcome)
        return outcome

    async def _post(self, body: bytes) -> _Answer | _Failed:
        """One attempt on the wire, also holding a slot of the shared limiter when there is one."""
        shared = self._shared_limiter
        if shared is None:
            return await self._timed_post(body)
        try:
            shared.acquire_nowait()
        except anyio.WouldBlock:
            await shared.acquire()
        try:
            self._raise_if_stopped()  # the run may have stopped while this one waited
            return await self._timed_post(body)
        finally:
            shared.release()

    async def _timed_post(self, body: bytes) -> _Answer | _Failed:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if self._session is not None:
                # aiohttp's own total timeout bounds the attempt (connection and body
                # included); a cancel scope per request costs as much CPU as aiohttp itself.
                return await self._send("POST", self._endpoint, body)
            with anyio.move_on_after(self.config.timeout):
                return await self._send("POST", self._endpoint, body)
            return self._timed_out()
        finally:
            stats.in_flight -= 1

    def _timed_out(self) -> _Failed:
        return _Failed(
            FailureReason.TIMEOUT, f"no answer within {self.config.timeout:g} s", _Kind.RETRY
        )

    def _settle_tokens(
        self, reserved: float, max_tokens: int, outcome: JudgeReply | _Failed
    ) -> None:
        """Give the tokens-per-minute budget back what the server did not use."""
        if self._tpm is None or reserved <= 0:
            return
        if isinstance(outcome, JudgeReply):
            if outcome.prompt_tokens is None and outcome.completion_tokens is None:
                return  # no usage reported: the estimate stands
            used = (outcome.prompt_tokens or 0) + (outcome.completion_tokens or 0)
            self._tpm.refund(reserved - used)
        elif outcome.status is not None and outcome.status != 200:
            self._tpm.refund(min(reserved, max_tokens))  # refused: nothing was generated

    def _judge_answer(
        self, answer: _Answer, request: _Request, attempt: int, epoch: int
    ) -> JudgeReply | _Failed:
        """Turn one HTTP answer into a reply or a classified failure."""
        status, content = answer.status, answer.content
        if status == 200:
            if content is None:
                return _Failed(
                    FailureReason.MALFORMED,
                    f"the answer body is over {self.config.max_response_bytes} bytes (not a "
                    "chat completion)",
                    _Kind.RETRY,
                    status,
                )
            found = _parse_reply(
                content,
                self.config.model,
                attempt,
                structured=request.response_format is not None,
            )
            if isinstance(found, JudgeReply):
                self._limiter.succeeded()
            return found
        said = self._scrub(server_message(content))
        if status in {401, 403}:
            return _Failed(f"http_{status}", f"HTTP {status}", _Kind.AUTH, status, said)
        if status == 429:
            self.stats.rate_limited += 1
            if self._limiter.rate_limited(epoch):
                self.stats.lowest_in_flight_limit = self._limiter.lowest
                self.stats.suggested_concurrency = self._limiter.suggested
            wait = _retry_after(answer.retry_after, self.config.retry.max_retry_after)
            return _Failed(
                FailureReason.RATE_LIMITED, "HTTP 429", _Kind.RATE_LIMITED, status, said, wait
            )
        reason, kind = _classify_refusal(status, said, request)
        wait = _retry_after(answer.retry_after, self.config.retry.max_retry_after)
        return _Failed(reason, f"HTTP {status}", kind, status, said, wait)

    def _auth_error(self, status: int, said: str) -> JudgeAuthError:
        return JudgeAuthError(
            f"the judge at {self._base_url} answered HTTP {status}: {said!r}. Check the API key "
            f"(set {API_KEY_ENV[0]} or {API_KEY_ENV[1]}) and that it may use model "
            f"{self.config.model!r}; behind a proxy, the message may come from the provider "
            "behind it",
            server_message=said,
        )

    # -- the transports -----------------------------------------------------------------

    async def _send(
        self, method: str, url: str, body: bytes | None, *, seconds: float | None = None
    ) -> _Answer | _Failed:
        """One HTTP exchange; the status, ``Retry-After`` and the (capped) body, or why not."""
        if self._session is not None:
            return await self._send_aiohttp(self._session, method, url, body, seconds)
        assert self._client is not None  # noqa: S101 -- one of the two is open
        return await self._send_httpx(self._client, method, url, body, seconds)

    async def _send_aiohttp(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        body: bytes | None,
        seconds: float | None,
    ) -> _Answer | _Failed:
        cap = self.config.max_response_bytes
        options: dict[str, Any] = {}
        if seconds is not None:
            options["timeout"] = aiohttp.ClientTimeout(
                total=seconds, sock_connect=min(seconds, self.config.connect_timeout)
            )
        try:
            async with session.request(method, url, data=body, **options) as response:
                content: bytes | None = None
                length = response.content_length
                if length is None:
                    content = await _read_capped(response.content.iter_chunked(_READ_CHUNK), cap)
                elif length <= cap:
                    content = await response.read()  # the length is known and allowed
                return _Answer(response.status, response.headers.get("Retry-After"), content)
        except aiohttp.ConnectionTimeoutError as exc:  # no connection: nothing answers
            return _Failed(FailureReason.CONNECTION, _connection_detail(exc), _Kind.RETRY)
        except TimeoutError:
            return self._timed_out()
        except aiohttp.ClientError as exc:
            return _Failed(FailureReason.CONNECTION, _connection_detail(exc), _Kind.RETRY)

    async def _send_httpx(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        body: bytes | None,
        seconds: float | None,
    ) -> _Answer | _Failed:
        cap = self.config.max_response_bytes
        try:
            async with client.stream(
                method,
                url,
                content=body,
                timeout=seconds if seconds is not None else httpx.USE_CLIENT_DEFAULT,
            ) as response:
                length = response.headers.get("content-length")
                content = None
                if length is None or not length.isdigit() or int(length) <= cap:
                    content = await _read_capped(response.aiter_bytes(_READ_CHUNK), cap)
                return _Answer(response.status_code, response.headers.get("retry-after"), content)
        except httpx.ConnectTimeout as exc:  # also how httpx-aiohttp reports a refused connection
            return _Failed(FailureReason.CONNECTION, _connection_detail(exc), _Kind.RETRY)
        except httpx.TimeoutException:
            return self._timed_out()
        except httpx.TransportError as exc:
            return _Failed(FailureReason.CONNECTION, _connection_detail(exc), _Kind.RETRY)


def _connection_detail(exc: BaseException) -> str:
    said = str(exc).strip()
    return f"connection error: {type(exc).__name__}" + (
        f" ({_one_line(said, 200)})" if said else ""
    )


async def _read_capped(chunks: Any, cap: int) -> bytes | None:  # noqa: ANN401 -- aiohttp's and httpx's chunk iterators
    """The whole body, or ``None`` as soon as it is over ``cap`` bytes (the rest is not read)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > cap:
            return None
        parts.append(chunk)
    return b"".join(parts)
