"""A loopback OpenAI-compatible chat-completions server for tests, benchmarks and dry runs.

``MockJudge`` serves ``POST /v1/chat/completions`` (also without ``/v1``), ``GET /v1/models``
and ``GET /health`` on loopback, in the current event loop, with a configurable latency and
configurable rates of the faults a real judge shows: 429 with ``Retry-After``, 500, requests
that never answer, 200 with a body that is not JSON, 200 with an empty answer, and connections
reset without an answer. The hint it answers is deterministic in the prompt, so runs against it
are reproducible; ``stats`` counts what it saw, for tests to assert on.

Reader requests (``--detect reader``: ``response_format`` named ``reader_findings``, or the
reader's system message) are answered with findings, as ``MockJudgeConfig.reader_answers``
says: good findings read from the numbered transcript, none, or findings a reader must drop
(a message number that does not exist or is not an assistant's, a quote that is not in the
transcript, a generic hint), or an answer that is not JSON.

``strict=True`` makes it behave like vLLM's server, for the client's failure paths: only
``/v1/...`` paths (others 404 ``{"detail": "Not Found"}``), a model it does not serve is 404
with vLLM's error body, a malformed request is 400; and it can act out what real servers do
when they are misused: 429 without ``Retry-After`` above N requests in flight, answers cut off
at the token limit, prompts over the context length, a 400 asking for
``max_completion_tokens``, a 400 rejecting ``response_format``, no ``/models``.

Built on the low-level ``aiohttp.web.Server`` (no router, no middleware, no access log) so
that the server is never the bottleneck of a benchmark. aiohttp runs on asyncio only.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import random
import re
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio
import orjson
from aiohttp import web

from tracehint._context import content_text
from tracehint._exceptions import ConfigError
from tracehint._reader import READER_SYSTEM_PROMPT

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

__all__ = [
    "MockAnswer",
    "MockJudge",
    "MockJudgeConfig",
    "MockJudgeStats",
    "MockReaderAnswer",
    "mock_hint",
    "serve_forever",
]

_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_MODEL_PATHS = frozenset({"/v1/models", "/models"})
_HEALTH_PATHS = frozenset({"/health", "/v1/health"})

_MAX_AUTHORIZATION_HEADERS = 10
_MAX_DISTINCT_PROMPTS = 10_000
"""Distinct prompts recorded in ``stats.prompts``; later new ones are not (memory stays bounded)."""
_SHUTDOWN_GRACE = 1.0
"""Seconds an answer still in its latency gets to finish when the server stops."""

_GARBAGE = b"<<<not json>>>"
_MAX_BODIES = 100
_STRICT_NOT_FOUND = orjson.dumps({"detail": "Not Found"})


class _Fault(enum.StrEnum):
    """A fault the server injects; the value is the key in ``MockJudgeStats.faults``."""

    RESET = "reset"
    HANG = "hang"
    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    GARBAGE = "garbage"
    EMPTY = "empty"


class MockAnswer(enum.StrEnum):
    """What the mock judge answers when it draws no fault (``MockJudgeConfig.answers``).

    A request whose ``response_format`` asks for JSON (``json_schema`` or ``json_object``) gets
    its answer as ``{"hint": ..., "verdict": ...}``; any other request gets plain text. The
    bad answers are what real judges send and what tracehint must never keep as a hint.
    """

    HINT = "hint"
    """A good, deterministic hint (``mock_hint`` of the last user message)."""
    PLAIN = "plain"
    """The good hint as plain text even when JSON was asked (a server ignoring the format)."""
    FENCED = "fenced"
    """The good answer as JSON inside a fenced code block (```json … ```)."""
    THINK = "think"
    """A ``<think>…</think>`` block, then the good answer."""
    THINK_UNTERMINATED = "think_unterminated"
    """A ``<think>`` block that is never closed (the reasoning ate the budget)."""
    CUT_OFF = "cut_off"
    """The first half of the good answer, with ``finish_reason: "length"``."""
    EMPTY = "empty"
    """An empty answer (with ``finish_reason: "stop"``)."""
    ESSAY = "essay"
    """Several paragraphs, well over two sentences and 600 characters."""
    ECHO = "echo"
    """``Corrective hint:`` followed by the start of the prompt."""
    GENERIC = "generic"
    """Generic filler: "Be careful and try again." """
    NOT_A_MISTAKE = "not_a_mistake"
    """The verdict that the failure was deliberate: ``{"hint": "", "verdict": "not_a_mistake"}``."""
    CONTROL = "control"
    """The good hint with terminal escapes, NUL, BEL, backspace and bidi overrides woven in
    (``control_hint``); as plain text it is the good hint."""


class MockReaderAnswer(enum.StrEnum):
    """What the mock judge answers to a reader request (``MockJudgeConfig.reader_answers``)."""

    FINDINGS = "findings"
    """Good findings: each assistant message of the window whose text claims success ("done",
    "fixed", "works", ...) is a ``false_claim``, quoted verbatim, with a good hint (at most 3)."""
    NONE = "none"
    """``{"findings": []}``."""
    BAD_MESSAGE = "bad_message"
    """Findings naming a message that does not exist and a message that is not an assistant's."""
    FAKE_QUOTE = "fake_quote"
    """A finding whose quote is not in the transcript."""
    BAD_HINT = "bad_hint"
    """A finding whose hint is generic filler."""
    MIXED = "mixed"
    """The good findings, plus one of each bad kind."""
    MALFORMED = "malformed"
    """Prose, not JSON."""


_READER_SCHEMA = "reader_findings"
_BLOCK = re.compile(r"^\[(\d+)\] (\w+):\n(.*?)(?=^\[\d+\] \w+:\n|\Z)", re.MULTILINE | re.DOTALL)
_CLAIM = re.compile(
    r"\b(?:done|fixed|works|working|success\w*|complete\w*|pass\w*)\b", re.IGNORECASE
)
_FAKE_QUOTE = "this passage is nowhere in the transcript"


def _is_reader(body: dict[str, Any], messages: list[Any]) -> bool:
    found = body.get("response_format")
    schema = found.get("json_schema") if isinstance(found, dict) else None
    if isinstance(schema, dict) and schema.get("name") == _READER_SCHEMA:
        return True
    first = messages[0]
    return (
        isinstance(first, dict)
        and first.get("role") == "system"
        and content_text(first.get("content")) == READER_SYSTEM_PROMPT
    )


def _blocks(prompt: str) -> list[tuple[int, str, str]]:
    """The numbered messages of a reader request: ``(number, role, text)``."""
    return [(int(m.group(1)), m.group(2), m.group(3)) for m in _BLOCK.finditer(prompt)]


def _good_findings(prompt: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for number, role, text in _blocks(prompt):
        if role != "assistant":
            continue
        for line in text.splitlines():
            if line.startswith("-> call") or not _CLAIM.search(line):
                continue
            quote = line.strip()[:120].strip()
            if len(quote) < 12:
                continue
            digest = hashlib.sha256(quote.encode("utf-8", "surrogatepass")).hexdigest()[:8]
            found.append(
                {
                    "message": number,
                    "kind": "false_claim",
                    "quote": quote,
                    "hint": f"Mock reader hint {digest}: run the checks that show the change "
                    "works before you report it as finished.",
                }
            )
            break
        if len(found) == 3:
            break
    return found


def _any_finding(blocks: list[tuple[int, str, str]]) -> dict[str, Any]:
    """A finding on the first assistant message, quoting its first line (for the bad kinds)."""
    for number, role, text in blocks:
        line = text.strip().splitlines()[0] if text.strip() else ""
        if role == "assistant" and len(line) >= 12:
            return {"message": number, "kind": "false_claim", "quote": line[:120], "hint": ""}
    return {"message": 0, "kind": "false_claim", "quote": "", "hint": ""}


def _reader_text(answer: MockReaderAnswer, prompt: str) -> str:
    """The content of one reader answer."""
    if answer is MockReaderAnswer.MALFORMED:
        return "I read the transcript; message 3 looks wrong to me."
    good = _good_findings(prompt) if answer is not MockReaderAnswer.NONE else []
    blocks = _blocks(prompt)
    last = max((number for number, _, _ in blocks), default=0)
    users = [number for number, role, _ in blocks if role != "assistant"]
    template = good[0] if good else _any_finding(blocks)
    hint = "Run the page's tests before you say that the redirect works."
    bad = {
        MockReaderAnswer.BAD_MESSAGE: [
            {**template, "message": last + 1000, "hint": hint},
            *([{**template, "message": users[0], "hint": hint}] if users else []),
        ],
        MockReaderAnswer.FAKE_QUOTE: [{**template, "quote": _FAKE_QUOTE, "hint": hint}],
        MockReaderAnswer.BAD_HINT: [{**template, "hint": _GENERIC}],
    }
    if answer is MockReaderAnswer.MIXED:
        findings = [*good, *(item for items in bad.values() for item in items)]
    elif answer in bad:
        findings = bad[answer]
    else:
        findings = good
    return orjson.dumps({"findings": findings}).decode()


_ESSAY = (
    "There are several things to consider here. First, the error message indicates that the "
    "command did not succeed, which could be due to many different reasons. Second, it is "
    "important to understand the environment in which the command runs.\n\n"
    "In general, when a tool call fails, an agent should look at the output carefully. It "
    "should consider whether the inputs were right. It should also consider the state of the "
    "file system, the working directory and any configuration that might matter.\n\n"
    "Finally, it is worth remembering that persistence pays off: retrying with a small change "
    "is often the fastest way forward, and documenting what was learned helps later steps."
)
_GENERIC = "Be careful and try again."
_THINKING = "<think>The agent ran a command that failed; the hint should say what to check.</think>"


def _wants_json(body: dict[str, Any]) -> bool:
    found = body.get("response_format")
    return isinstance(found, dict) and found.get("type") in {"json_schema", "json_object"}


def _shape(text: str, *, as_json: bool, verdict: str = "mistake") -> str:
    return orjson.dumps({"hint": text, "verdict": verdict}).decode() if as_json else text


def control_hint(hint: str) -> str:
    """``hint`` with control characters woven in that ``plain_text`` removes again."""
    third = len(hint) // 3
    return (
        f"\x1b[1;31m{hint[:third]}\x1b[0m\x00\x07{hint[third : 2 * third]}\u202e\u200b\x08"
        f"{hint[2 * third :]}\x1b]0;pwned\x07\u2066"
    )


def _answer_text(answer: MockAnswer, prompt: str, *, as_json: bool) -> tuple[str, str]:
    """The content and ``finish_reason`` of one answer."""
    hint = mock_hint(prompt)
    good = _shape(hint, as_json=as_json)
    answers = {
        MockAnswer.PLAIN: (hint, "stop"),
        MockAnswer.FENCED: (f"```json\n{_shape(hint, as_json=True)}\n```", "stop"),
        MockAnswer.THINK: (f"{_THINKING}\n{good}", "stop"),
        MockAnswer.THINK_UNTERMINATED: ("<think>The agent ran a command that failed, so", "stop"),
        MockAnswer.CUT_OFF: (good[: len(good) // 2], "length"),
        MockAnswer.EMPTY: ("", "stop"),
        MockAnswer.ESSAY: (_shape(_ESSAY, as_json=as_json), "stop"),
        MockAnswer.ECHO: (
            _shape(f"Corrective hint: {' '.join(prompt.split()[:40])}", as_json=as_json),
            "stop",
        ),
        MockAnswer.GENERIC: (_shape(_GENERIC, as_json=as_json), "stop"),
        MockAnswer.NOT_A_MISTAKE: (_shape("", as_json=True, verdict="not_a_mistake"), "stop"),
        MockAnswer.CONTROL: (_shape(control_hint(hint), as_json=as_json), "stop"),
    }
    return answers.get(answer, (good, "stop"))


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True, kw_only=True)
class MockJudgeConfig:
    """How the mock judge behaves: latency, fault rates, authentication.

    Each ``rate_*`` is the fraction of chat requests that get that fault; together they may not
    exceed 1. One fault at most is drawn per request, before the latency; every answer (faults
    included) comes after ``latency`` ± ``jitter`` seconds, except a hang, which never comes.
    """

    latency: float = 0.05
    """Seconds before each answer."""
    jitter: float = 0.0
    """Uniform ± seconds added to ``latency`` (the sum is floored at 0)."""
    rate_429: float = 0.0
    """Fraction answered 429 with a ``Retry-After`` header."""
    retry_after: float = 0.1
    """Seconds sent in ``Retry-After`` with a 429 (as a decimal string, e.g. ``0.1``)."""
    rate_500: float = 0.0
    """Fraction answered 500."""
    rate_hang: float = 0.0
    """Fraction never answered (until the client gives up or the server stops)."""
    rate_garbage: float = 0.0
    """Fraction answered 200 with a ``text/plain`` body that is not JSON."""
    rate_empty: float = 0.0
    """Fraction answered 200 with a well-formed completion whose content is empty."""
    rate_reset: float = 0.0
    """Fraction whose connection is reset without an answer."""
    require_key: str | None = field(default=None, repr=False)
    """When set, a request without ``Authorization: Bearer <key>`` is answered 401."""
    seed: int | None = None
    """Seed for the fault and jitter draws; the same seed and request order give the same faults."""
    model: str = "mock-judge"
    """Model id listed by ``/v1/models`` and answered when a request names none. The lenient
    (default) server answers any model and lists ``*`` after it; a strict one only this one
    and ``served_models``."""
    strict: bool = False
    """Behave like vLLM: ``/v1/...`` paths only, 404 for an unknown model, 400 for a bad
    request, vLLM's error bodies."""
    served_models: tuple[str, ...] = ()
    """More model ids a strict server serves."""
    list_models: bool = True
    """Whether ``GET /v1/models`` exists (``False``: 404, like a server without it)."""
    max_in_flight: int | None = None
    """Answer 429 *without* ``Retry-After`` to a request that finds this many in flight."""
    cut_off_below: int | None = None
    """Answers are cut off (``finish_reason: "length"``) unless the request allows at least
    this many tokens (``max_tokens`` or ``max_completion_tokens``)."""
    context_chars: int | None = None
    """A request whose messages hold more characters is a 400 context-length error (vLLM's
    words)."""
    require_max_completion_tokens: bool = False
    """A request with ``max_tokens`` is a 400 asking for ``max_completion_tokens`` (OpenAI's
    reasoning models)."""
    reject_response_format: str | None = None
    """When set, a request with ``response_format`` is a 400 with this message."""
    garbage_bytes: int = 0
    """Size of the non-JSON body of a ``garbage`` fault (0: a short one); a proxy's HTML page."""
    reader_answers: tuple[MockReaderAnswer, ...] = (MockReaderAnswer.FINDINGS,)
    """What reader requests are answered, cycled over them (apart from ``answers``)."""
    answers: tuple[MockAnswer, ...] = (MockAnswer.HINT,)
    """What the answers are, cycled over the requests that draw no fault: ``(HINT,)`` answers
    every request well; ``(ESSAY,)`` sends only essays; ``(GENERIC, HINT)`` sends a generic
    answer, then a good one, then a generic one, …"""

    def __post_init__(self) -> None:
        if not self.answers or not self.reader_answers:
            raise ConfigError("MockJudgeConfig.answers and reader_answers must name one at least")
        total = 0.0
        for spec in fields(self):
            if spec.name.startswith("rate_"):
                rate = getattr(self, spec.name)
                if not 0.0 <= rate <= 1.0:
                    raise ConfigError(f"MockJudgeConfig.{spec.name} must be in [0, 1], got {rate}")
                total += rate
        if total > 1.0 + 1e-9:
            raise ConfigError(f"MockJudgeConfig fault rates add up to {total:g}, more than 1")
        for name in ("latency", "jitter", "retry_after", "garbage_bytes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"MockJudgeConfig.{name} must not be negative")
        if not self.model:
            raise ConfigError("MockJudgeConfig.model must not be empty")

    def _fault_rates(self) -> tuple[tuple[_Fault, float], ...]:
        return tuple(
            (fault, rate)
            for fault, rate in (
                (_Fault.RESET, self.rate_reset),
                (_Fault.HANG, self.rate_hang),
                (_Fault.RATE_LIMIT, self.rate_429),
                (_Fault.SERVER_ERROR, self.rate_500),
                (_Fault.GARBAGE, self.rate_garbage),
                (_Fault.EMPTY, self.rate_empty),
            )
            if rate > 0
        )


@dataclass(slots=True)
class MockJudgeStats:
    """Live counters of one ``MockJudge``, for tests and benchmarks to read."""

    requests: int = 0
    """Chat-completion requests received (every one: rejected, faulted or answered)."""
    in_flight: int = 0
    """Chat-completion requests being handled now."""
    max_in_flight: int = 0
    """Highest ``in_flight`` seen."""
    by_status: Counter[int] = field(default_factory=Counter)
    """Chat-completion answers sent, by HTTP status (resets and hangs send none)."""
    faults: Counter[str] = field(default_factory=Counter)
    """Faults injected: ``429``, ``500``, ``hang``, ``garbage``, ``empty``, ``reset``."""
    prompts: Counter[str] = field(default_factory=Counter)
    """Requests per prompt (the last user message); the first 10,000 distinct prompts only."""
    authorization_headers: list[str] = field(default_factory=list)
    """Distinct ``Authorization`` header values received, the first 10 only."""
    system_prompts: Counter[str] = field(default_factory=Counter)
    """Requests per system message (the first message, when its role is ``system``); the first
    10,000 distinct ones only."""
    answers: Counter[str] = field(default_factory=Counter)
    """Answers sent, by ``MockAnswer`` value."""
    reader_answers: Counter[str] = field(default_factory=Counter)
    """Answers sent to reader requests, by ``MockReaderAnswer`` value."""
    reader_requests: int = 0
    """Reader requests answered (faults aside)."""
    response_formats: Counter[str] = field(default_factory=Counter)
    """Requests per ``response_format`` type (``json_schema``, ``json_object``, ``none``)."""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    """The JSON bodies of the first 100 chat requests (what the client really sent)."""
    model_lists: int = 0
    """``GET /models`` requests received."""


def _error_body(message: str, kind: str, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


_UNAUTHORIZED = _error_body(
    "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
)
_RATE_LIMITED = _error_body("Rate limit reached (mock judge).", "requests", "rate_limit_exceeded")
_SERVER_ERROR = _error_body("The server had an error (mock judge).", "server_error", None)
_NOT_FOUND = _error_body("Unknown path.", "invalid_request_error", "not_found")
_NOT_ALLOWED = _error_body("Method not allowed.", "invalid_request_error", "method_not_allowed")
_HEALTHY = orjson.dumps({"status": "ok"})


def _vllm_error(status: int, message: str, kind: str) -> web.Response:
    """An error in vLLM's (flat) format."""
    body = {"object": "error", "message": message, "type": kind, "param": None, "code": status}
    return _json(status, orjson.dumps(body))


def _strict_refusal(config: MockJudgeConfig, body: dict[str, Any]) -> web.Response | None:
    """What a strict (vLLM-like) server answers instead of a completion, if anything."""
    model = body.get("model")
    if model != config.model and model not in config.served_models:
        return _vllm_error(404, f"The model `{model}` does not exist.", "NotFoundError")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            return _vllm_error(400, f"{name} must be at least 1, got {value!r}.", "BadRequestError")
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        return _vllm_error(
            400, f"temperature must be in [0, 2], got {temperature!r}.", "BadRequestError"
        )
    return None


def _misuse_refusal(
    config: MockJudgeConfig, body: dict[str, Any], messages: list[Any]
) -> web.Response | None:
    """The 400s real servers give to requests they cannot serve (any mode)."""
    if config.require_max_completion_tokens and "max_tokens" in body:
        return _json(
            400,
            _error_body(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "invalid_request_error",
                "unsupported_parameter",
            ),
        )
    if config.reject_response_format is not None and "response_format" in body:
        return _vllm_error(400, config.reject_response_format, "BadRequestError")
    if config.context_chars is not None:
        size = sum(
            len(content_text(message.get("content")))
            for message in messages
            if isinstance(message, dict)
        )
        if size > config.context_chars:
            return _vllm_error(
                400,
                f"This model's maximum context length is {config.context_chars // 4} tokens. "
                f"However, you requested {size // 4} tokens in the messages. Please reduce the "
                "length of the messages.",
                "BadRequestError",
            )
    return None


def _json(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _bad_request(message: str) -> web.Response:
    return _json(400, _error_body(message, "invalid_request_error", None))


async def _read_chat(request: web.BaseRequest) -> tuple[dict[str, Any], list[Any]] | web.Response:
    """The request's JSON body and its messages, or a 400 saying what is wrong with them."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _bad_request("The request body is not valid JSON.")
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        return _bad_request("'messages' must be a non-empty list.")
    return body, messages


def _seconds(value: float) -> str:
    """``0.1`` -> ``"0.1"``, ``2.0`` -> ``"2"``: what ``Retry-After`` parsers accept."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _prompt(messages: list[Any]) -> str:
    """The last user message's text (the last message's, when no message is from the user)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    last = messages[-1]
    return content_text(last.get("content")) if isinstance(last, dict) else ""


def mock_hint(prompt: str) -> str:
    """The hint the mock judge answers for ``prompt`` (deterministic)."""
    digest = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"Mock hint {digest}: re-read the error and fix the call."


def _abort(request: web.BaseRequest) -> web.StreamResponse:
    """Reset the connection (RST) and return a response that will never be written."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # aiohttp fails to write this to the closed transport and drops it quietly.
    return web.Response(status=499)


async def _cut(request: web.BaseRequest) -> web.StreamResponse:
    """Send the head of an answer, then close the connection before the body.

    Every client sees this as a broken connection while reading (httpx ``ReadError`` or
    ``RemoteProtocolError``, aiohttp ``ClientPayloadError``). A connection closed before any
    byte would do for httpx, but the aiohttp transport of ``httpx-aiohttp`` reports that as an
    ``httpx.ConnectTimeout``, so a client could not tell it from a timeout.
    """
    response = web.StreamResponse(status=200, headers={"Content-Length": "4096"})
    response.content_type = "application/json"
    await response.prepare(request)
    await response.write(b'{"id":')
    if request.transport is not None:
        request.transport.close()  # FIN after the bytes above; abort() would discard them
    return response


class MockJudge:
    """A fake OpenAI-compatible judge on loopback; an async context manager.

    ::

        async with MockJudge(MockJudgeConfig(latency=0.0, rate_429=0.2)) as judge:
            ...  # point a client at judge.url ("http://127.0.0.1:<port>/v1")
            assert judge.stats.faults["429"] > 0

    The server runs in the current event loop (asyncio) from ``__aenter__`` to ``__aexit__``;
    on exit, hung requests are cut and answers still in their latency get a short grace.
    ``port=0`` picks a free port. ``set_config`` changes the behaviour between phases of a test;
    ``hold()`` keeps chat requests waiting (received and counted, not answered) until
    ``release()``, so a test can act while it knows exactly what is in flight.
    """

    def __init__(
        self,
        config: MockJudgeConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.stats = MockJudgeStats()
        self._host = host
        self._port = port
        self._state = _State.NEW
        self._runner: web.ServerRunner | None = None
        self._url: str | None = None
        self._closing: anyio.Event | None = None
        self._held: anyio.Event | None = None
        self._in_flight_waiters: list[tuple[int, anyio.Event]] = []
        self.set_config(config or MockJudgeConfig())

    @property
    def config(self) -> MockJudgeConfig:
        """The current behaviour (replace it with ``set_config``)."""
        return self._config

    @property
    def url(self) -> str:
        """The base URL a client appends ``/chat/completions`` to, e.g. ``http://127.0.0.1:43123/v1``."""
        if self._url is None:
            raise RuntimeError("MockJudge is not running: use `async with MockJudge(...)`")
        return self._url

    def set_config(self, config: MockJudgeConfig) -> None:
        """Change the behaviour from the next request on; the random draws restart from the seed."""
        self._config = config
        self._faults = config._fault_rates()  # noqa: SLF001 -- same module
        self._retry_after = {"Retry-After": _seconds(config.retry_after)}
        size = config.garbage_bytes
        # One body shared by every garbage answer, so the server's memory stays flat.
        self._garbage = (b"<html>" + b"x" * size)[:size] if size else _GARBAGE
        self._expected_auth = None if config.require_key is None else f"Bearer {config.require_key}"
        # Separate streams, so that the faults drawn do not depend on whether there is jitter.
        self._fault_rng = random.Random(config.seed)  # noqa: S311 -- test faults, not cryptography
        self._jitter_rng = random.Random(config.seed)  # noqa: S311 -- same
        self._answered = 0
        self._read = 0

    def hold(self) -> None:
        """Keep every chat request waiting before its answer until ``release()``.

        Held requests are received and counted (``stats.requests``, ``stats.in_flight``), so a
        test can wait until a known number is in flight; no answer leaves meanwhile.
        """
        if self._held is None:
            self._held = anyio.Event()

    async def wait_in_flight(self, count: int) -> None:
        """Return once at least ``count`` chat requests are in flight (a readiness signal)."""
        if self.stats.in_flight >= count:
            return
        event = anyio.Event()
        self._in_flight_waiters.append((count, event))
        await event.wait()

    def release(self) -> None:
        """Let the held requests (and every later one) go on to their answers."""
        held, self._held = self._held, None
        if held is not None:
            held.set()

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError("a MockJudge can be entered once")
        self._closing = anyio.Event()
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_GRACE)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"mock judge cannot listen on {self._host}:{self._port}: {exc}"
            ) from exc
        self._runner = runner
        port = runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._url = f"http://{host}:{port}/v1"
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = _State.CLOSED
        self.release()
        if self._closing is not None:
            self._closing.set()  # hung requests drop their connections now
        runner, self._runner = self._runner, None
        if runner is not None:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:  # noqa: PLR0911 -- one answer per route
        path = request.path
        if self._config.strict and not path.startswith("/v1/"):
            return _json(404, _STRICT_NOT_FOUND)
        if path in _MODEL_PATHS and not self._config.list_models:
            return _json(404, _STRICT_NOT_FOUND if self._config.strict else _NOT_FOUND)
        if path in _CHAT_PATHS:
            if request.method != "POST":
                return _json(405, _NOT_ALLOWED, {"Allow": "POST"})
            return await self._chat(request)
        if path in _MODEL_PATHS or path in _HEALTH_PATHS:
            if request.method != "GET":
                return _json(405, _NOT_ALLOWED, {"Allow": "GET"})
            if path in _HEALTH_PATHS:
                return _json(200, _HEALTHY)
            self.stats.model_lists += 1
            refusal = self._authorize(request) if self._config.strict else None
            if refusal is not None:
                return refusal
            return _json(200, self._models())
        return _json(404, _NOT_FOUND)

    def _models(self) -> bytes:
        config = self._config
        ids = [config.model, *config.served_models] if config.strict else [config.model, "*"]
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "tracehint"} for name in ids
        ]
        return orjson.dumps({"object": "list", "data": models})

    async def _chat(self, request: web.BaseRequest) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        number = stats.requests
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        if self._in_flight_waiters:
            waiting = self._in_flight_waiters
            self._in_flight_waiters = [w for w in waiting if w[0] > stats.in_flight]
            for count, event in waiting:
                if count <= stats.in_flight:
                    event.set()
        try:
            held = self._held
            if held is not None:
                await held.wait()
            answer = await self._answer(request, number)
            if answer is _Fault.RESET:
                return await _cut(request)
        finally:
            stats.in_flight -= 1
        if answer is _Fault.HANG:
            return _abort(request)
        assert isinstance(answer, web.Response)  # noqa: S101 -- the faults are handled above
        stats.by_status[answer.status] += 1
        return answer

    async def _answer(  # noqa: PLR0911 -- one answer per fault, in the order drawn
        self,
        request: web.BaseRequest,
        number: int,
    ) -> web.Response | Literal[_Fault.RESET, _Fault.HANG]:
        """The answer to one chat request, or the fault that gives none."""
        refusal = self._authorize(request)
        if refusal is not None:
            return refusal
        chat = await _read_chat(request)
        if isinstance(chat, web.Response):
            return chat
        body, messages = chat
        prompt = _prompt(messages)
        self._record(body, messages, prompt)
        if len(self.stats.bodies) < _MAX_BODIES:
            self.stats.bodies.append(body)
        refusal = self._refusal(body, messages)
        if refusal is not None:
            return refusal

        fault = self._draw_fault()
        if fault is _Fault.HANG:
            assert self._closing is not None  # noqa: S101 -- set in __aenter__
            await self._closing.wait()  # or cancelled earlier, when the client hangs up
            return fault
        config = self._config
        delay = config.latency
        if config.jitter:
            delay = max(0.0, delay + self._jitter_rng.uniform(-config.jitter, config.jitter))
        if delay > 0:
            await anyio.sleep(delay)

        if fault is None or fault is _Fault.EMPTY:
            content, finish = ("", "stop") if fault else self._content(body, messages, prompt)
            return _json(200, self._completion(body, messages, content, number, finish))
        if fault is _Fault.RESET:
            return fault
        return self._fault_response(fault)

    def _record(self, body: dict[str, Any], messages: list[Any], prompt: str) -> None:
        """Count the request's prompt, system message and ``response_format``."""
        prompts = self.stats.prompts
        if prompt in prompts or len(prompts) < _MAX_DISTINCT_PROMPTS:
            prompts[prompt] += 1
        first = messages[0]
        if isinstance(first, dict) and first.get("role") == "system":
            system = content_text(first.get("content"))
            systems = self.stats.system_prompts
            if system in systems or len(systems) < _MAX_DISTINCT_PROMPTS:
                systems[system] += 1
        found = body.get("response_format")
        kind = found.get("type") if isinstance(found, dict) else None
        self.stats.response_formats[kind if isinstance(kind, str) else "none"] += 1

    def _refusal(self, body: dict[str, Any], messages: list[Any]) -> web.Response | None:
        """A strict server's 404/400, a misuse 400, or 429 for a request over the in-flight cap."""
        config = self._config
        refusal = _strict_refusal(config, body) if config.strict else None
        if refusal is None:
            refusal = _misuse_refusal(config, body, messages)
        if (
            refusal is None
            and config.max_in_flight is not None
            and self.stats.in_flight > config.max_in_flight
        ):
            self.stats.faults[_Fault.RATE_LIMIT.value] += 1
            return _json(429, _RATE_LIMITED)  # no Retry-After: a proxy out of slots
        return refusal

    def _authorize(self, request: web.BaseRequest) -> web.Response | None:
        """Record the ``Authorization`` header; a 401 when it is not the required key."""
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            seen = self.stats.authorization_headers
            if len(seen) < _MAX_AUTHORIZATION_HEADERS and authorization not in seen:
                seen.append(authorization)
        if self._expected_auth is not None and authorization != self._expected_auth:
            return _json(401, _UNAUTHORIZED)
        return None

    def _next_answer(self, body: dict[str, Any], prompt: str) -> tuple[str, str]:
        answers = self._config.answers
        answer = answers[self._answered % len(answers)]
        self._answered += 1
        self.stats.answers[answer.value] += 1
        return _answer_text(answer, prompt, as_json=_wants_json(body))

    def _content(self, body: dict[str, Any], messages: list[Any], prompt: str) -> tuple[str, str]:
        """The content and ``finish_reason`` of the next answer (a reader's or a hint's)."""
        if _is_reader(body, messages):  # the transcript is the first user message
            first = next(
                (m for m in messages if isinstance(m, dict) and m.get("role") == "user"), {}
            )
            return self._next_reader_answer(content_text(first.get("content"))), "stop"
        return self._next_answer(body, prompt)

    def _next_reader_answer(self, prompt: str) -> str:
        answers = self._config.reader_answers
        answer = answers[self._read % len(answers)]
        self._read += 1
        self.stats.reader_requests += 1
        self.stats.reader_answers[answer.value] += 1
        return _reader_text(answer, prompt)

    def _draw_fault(self) -> _Fault | None:
        draw = self._fault_rng.random()
        for fault, rate in self._faults:
            if draw < rate:
                self.stats.faults[fault.value] += 1
                return fault
            draw -= rate
        return None

    def _fault_response(self, fault: _Fault) -> web.Response:
        if fault is _Fault.RATE_LIMIT:
            return _json(429, _RATE_LIMITED, self._retry_after)
        if fault is _Fault.SERVER_ERROR:
            return _json(500, _SERVER_ERROR)
        return web.Response(status=200, body=self._garbage, content_type="text/plain")

    def _completion(
        self,
        body: dict[str, Any],
        messages: list[Any],
        content: str,
        number: int,
        finish: str = "stop",
    ) -> bytes:
        """A ``chat.completion`` answering ``content`` (cut to ``max_tokens`` words)."""
        words = content.split()
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
            words, finish = words[:max_tokens], "length"
        below = self._config.cut_off_below
        if below is not None and (not isinstance(max_tokens, int) or max_tokens < below):
            words, finish = words[: max(1, len(words) // 2)], "length"
        if finish == "length":
            content = " ".join(words)
        prompt_tokens = sum(
            len(content_text(message.get("content")).split())
            for message in messages
            if isinstance(message, dict)
        )
        model = body.get("model")
        return orjson.dumps(
            {
                "id": f"mock-{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model if isinstance(model, str) and model else self._config.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish,
                    },
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(words),
                    "total_tokens": prompt_tokens + len(words),
                },
            },
        )


async def serve_forever(config: MockJudgeConfig, *, host: str, port: int) -> None:
    """Serve a mock judge until cancelled (``tracehint mock-judge``).

    Writes ``mock judge listening on http://<host>:<port>/v1`` to stderr once it is ready.
    """
    async with MockJudge(config, host=host, port=port) as judge:
        sys.stderr.write(f"mock judge listening on {judge.url}\n")
        sys.stderr.flush()
        await anyio.sleep_forever()
