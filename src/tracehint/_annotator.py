"""The embedding API: ``Annotator`` for async rollout workers.

``Annotator`` owns its resources (judge client, cache) as an async context manager; they are
created when it is entered, so on the event loop that uses it. Judge failures are values on
the sites, never exceptions in the caller's task group; only a misconfiguration raises: a
``JudgeError`` (bad credentials, a judge that is not there or does not serve the model, found
by the preflight when the annotator is entered, or by the judge client's circuit breaker).
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Self

import anyio

from tracehint._cache import HintCache, default_cache_path
from tracehint._classify import Classifier
from tracehint._exceptions import ConfigError, InputError
from tracehint._hints.judge import JudgeLayer
from tracehint._hints.layers import (
    HintChain,
    HintLayer,
    RawErrorLayer,
    TemplateLayer,
    UserLayer,
    build_layers,
)
from tracehint._hints.reader import ReaderPass
from tracehint._hints.templates import DEFAULT_TEMPLATES, Templates
from tracehint._ingest.formats import InputFormat
from tracehint._ingest.openai import FORMAT as OPENAI
from tracehint._ingest.openai import ErrorDetector, parse_openai_messages
from tracehint._judge import JudgeClient, JudgeConfig, JudgePreflight
from tracehint._kinds import DetectedBy, LayerName
from tracehint._limits import Limits
from tracehint._pipeline import PipelineConfig, hint_trace, redacted_output
from tracehint._reader import ReaderConfig
from tracehint._records import InputIssue, Trace, TraceSource
from tracehint._redact import DEFAULT_REDACTOR, Redactor
from tracehint._stats import JudgeTotals

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from types import TracebackType

    import httpx
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Annotator", "AnnotatorConfig", "TraceStream"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotatorConfig:
    """What an ``Annotator`` (and ``tracehint annotate``) uses to hint sites."""

    layers: tuple[str, ...] | None = None
    """Layer names in order; default ``template,raw`` (``template,judge,raw`` with a judge)."""
    judge: JudgeConfig | None = None
    judge_samples: int = 1
    """Answers asked of the judge per site; the valid ones are compared and one is kept (see
    ``pick_answer``). More than one needs a temperature above 0 to differ."""
    judge_show_next_action: bool = False
    """Show the judge the agent's next message (off: it is usually the student's own
    recovery, and a teacher that sees it copies it)."""
    cache_path: str | os.PathLike[str] | None = None
    """The judge cache file; ``None`` uses the user's cache directory."""
    use_cache: bool = True
    limits: Limits = field(default_factory=Limits)
    classifier: Classifier = field(default_factory=Classifier)
    templates: Templates = DEFAULT_TEMPLATES
    redactor: Redactor = DEFAULT_REDACTOR
    """Secrets it finds never reach the judge, nor a hint (template or raw error text)."""
    redact_output: bool = False
    """Also redact the traces it returns (``redact_trace``: turns, ``error_meta``, hints,
    ``messages``). Off by default here: a rollout worker builds the teacher's context from
    the messages it passed in, which must stay what the student saw. ``tracehint annotate``
    turns it on (its output files become training data); ``--no-redact-output`` turns it off."""
    detector: ErrorDetector = field(default_factory=ErrorDetector)
    concurrency: int = 16
    """Traces annotated at once by ``annotate_many``."""
    max_traces_in_flight: int = 8
    """Traces of session files hinted at once (``annotate_files``, ``tracehint annotate``),
    whatever the judge's concurrency: their sites share its requests in flight, so memory
    does not grow with it (``--max-traces-in-flight``)."""
    max_trace_bytes_in_flight: int = 16 * 1024 * 1024
    """More traces than ``max_traces_in_flight`` are hinted at once while they are small: up
    to this many characters of text in all, and only while they have fewer open sites than
    twice the judge's concurrency (``--max-trace-bytes-in-flight``)."""
    detect: frozenset[DetectedBy] = frozenset({DetectedBy.TOOL_ERROR, DetectedBy.USER})
    """What finds sites (``--detect``): failed tool results (always), the user's corrections
    (``user``, on by default, offline), the reader pass (``reader``, needs a judge: one request
    per trace window). Without ``user`` the classifier's ``corrections`` are turned off."""
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    """How the reader pass reads a trace (window size, answer budget)."""
    input_format: InputFormat = InputFormat.AUTO
    """How session files are read (``auto``: each file's content decides)."""
    reasoning: bool = True
    """Keep the assistants' thinking (``reasoning_content``) in the output ``messages``."""

    def __post_init__(self) -> None:
        if self.judge_samples < 1:
            raise ConfigError(f"judge samples must be at least 1, got {self.judge_samples}")
        if self.max_traces_in_flight < 1:
            raise ConfigError(
                f"max_traces_in_flight must be at least 1, got {self.max_traces_in_flight}"
            )
        if self.max_trace_bytes_in_flight < 0:
            raise ConfigError(
                "max_trace_bytes_in_flight must not be negative, got "
                f"{self.max_trace_bytes_in_flight}"
            )
        try:
            detect = frozenset(DetectedBy(name) for name in self.detect) | {DetectedBy.TOOL_ERROR}
        except ValueError:
            known = ", ".join(d.value for d in DetectedBy)
            raise ConfigError(
                f"detect: unknown detector in {sorted(self.detect)}; use {known}"
            ) from None
        object.__setattr__(self, "detect", detect)
        if DetectedBy.USER not in detect and self.classifier.corrections is not None:
            object.__setattr__(self, "classifier", replace(self.classifier, corrections=None))

    def pipeline(self, *, exclude: frozenset[str] = frozenset()) -> PipelineConfig:
        """The file pipeline's settings from this configuration (the one place they are made).

        ``exclude``: absolute paths never read as input (the run's own output files).
        """
        return PipelineConfig(
            limits=self.limits,
            classifier=self.classifier,
            max_traces_in_flight=self.max_traces_in_flight,
            max_trace_bytes_in_flight=self.max_trace_bytes_in_flight,
            concurrency=self.judge.concurrency
            if self.judge is not None and self._asks_judge()
            else 1,
            input_format=self.input_format,
            exclude=exclude,
            reasoning=self.reasoning,
            detector=self.detector,
            output_redactor=self.redactor if self.redact_output else None,
        )

    def _asks_judge(self) -> bool:
        """Whether the run sends judge requests (its judge layer, or the reader pass)."""
        if self.judge is None:
            return False
        return LayerName.JUDGE in self.layer_names() or DetectedBy.READER in self.detect

    def layer_names(self) -> tuple[LayerName, ...]:
        """The layers to use, defaults applied, checked (``ConfigError`` for a bad list).

        With a judge: ``template,judge,raw`` (grounded templates first, the judge for the rest,
        the raw error only when the judge finally fails); without one: ``template,raw``.
        """
        if self.layers is not None:
            return LayerName.parse(self.layers)
        if self.judge is not None:
            return (LayerName.TEMPLATE, LayerName.JUDGE, LayerName.RAW)
        return (LayerName.TEMPLATE, LayerName.RAW)


class Annotator:
    """Annotate traces from inside any running asyncio event loop.

    >>> judge = JudgeConfig.from_env(url=..., model=...)
    >>> async with Annotator(AnnotatorConfig(judge=judge)) as ann:
    ...     trace = await ann.annotate(messages)
    """

    def __init__(
        self,
        config: AnnotatorConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        judge_limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self.config = config or AnnotatorConfig()
        self._transport = transport
        self._judge_limiter = judge_limiter
        self._stack: AsyncExitStack | None = None
        self._group: TaskGroup | None = None
        self._chain: HintChain | None = None
        self.judge: JudgeLayer | None = None
        self.cache: HintCache | None = None
        self.judge_preflight: JudgePreflight | None = None
        """What the judge preflight found (``None`` without a judge or with it turned off)."""
        self._count = 0
        self.reader: ReaderPass | None = None
        """The reader pass (``detect`` with ``reader``; available inside ``async with``)."""
        self._client: JudgeClient | None = None
        names = self.config.layer_names()
        if "judge" in names and self.config.judge is None:
            raise ConfigError("the judge layer needs a judge: pass --judge-url and --judge-model")
        if DetectedBy.READER in self.config.detect and self.config.judge is None:
            raise ConfigError(
                "the reader pass (--detect reader) needs a judge: pass --judge-url and "
                "--judge-model"
            )
        if self.config.concurrency < 1:
            raise ConfigError("Annotator concurrency must be at least 1")

    @property
    def chain(self) -> HintChain:
        """The hint chain (available inside ``async with``)."""
        if self._chain is None:
            raise RuntimeError("Annotator is not open: use `async with Annotator(...) as ann`")
        return self._chain

    async def __aenter__(self) -> Self:
        config = self.config
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            available: dict[str, HintLayer] = {
                "template": TemplateLayer(config.templates, config.redactor),
                "raw": RawErrorLayer(redactor=config.redactor),
            }
            reading = DetectedBy.READER in config.detect
            if config.judge is not None and ("judge" in config.layer_names() or reading):
                if config.use_cache:
                    path = config.cache_path or default_cache_path()
                    self.cache = await stack.enter_async_context(HintCache(path))
                client = self._client = await stack.enter_async_context(
                    JudgeClient(
                        config.judge, transport=self._transport, limiter=self._judge_limiter
                    ),
                )
                if "judge" in config.layer_names():
                    self.judge = JudgeLayer(
                        client,
                        cache=self.cache,
                        redactor=config.redactor,
                        hint_chars=config.limits.hint_chars,
                        samples=config.judge_samples,
                        show_next_action=config.judge_show_next_action,
                        limits=config.limits,
                    )
                    available["judge"] = self.judge
                if reading:
                    self.reader = ReaderPass(
                        client,
                        cache=self.cache,
                        redactor=config.redactor,
                        config=config.reader,
                        limits=config.limits,
                    )
                if config.judge.preflight:
                    self.judge_preflight = await client.preflight()
            layers = build_layers(config.layer_names(), available)
            self._chain = HintChain(
                layers,
                hint_chars=config.limits.hint_chars,
                user=UserLayer(config.redactor),
                reader=self.reader,
            )
            self._group = await stack.enter_async_context(anyio.create_task_group())
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        self._chain = None
        if self._group is not None:
            self._group.cancel_scope.cancel()
            self._group = None
        if stack is not None:
            return await stack.__aexit__(exc_type, exc, tb)
        return None

    # -- one trace ------------------------------------------------------------------------

    def parse(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        trace_id: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Trace:
        """Tag the error sites of OpenAI-style messages (sync, no hints).

        ``tools``: the tool definitions the agent was given, kept on the trace (``Trace.tools``)
        for the trainer's chat template.
        """
        self._count += 1
        return parse_openai_messages(
            messages,
            trace_id=trace_id or f"trace-{self._count}",
            classifier=self.config.classifier,
            limits=self.config.limits,
            detector=self.config.detector,
            tools=tools,
        )

    async def annotate(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        trace_id: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Trace:
        """Tag and hint one conversation of OpenAI-style messages."""
        return await self.annotate_trace(self.parse(messages, trace_id=trace_id, tools=tools))

    async def annotate_trace(self, trace: Trace) -> Trace:
        """Hint the sites of an already tagged trace (redacted with ``redact_output``)."""
        trace = await hint_trace(trace, self.chain, self.config.limits)
        if self.config.redact_output:
            trace = await redacted_output(trace, self.config.redactor)
        return trace

    # -- many traces ----------------------------------------------------------------------

    def annotate_many(
        self,
        items: Iterable[Sequence[Mapping[str, Any]] | Trace]
        | AsyncIterable[Sequence[Mapping[str, Any]] | Trace],
    ) -> TraceStream:
        """Annotate many conversations (message lists or traces), ``concurrency`` at a time.

        A context-managed stream::

            async with ann.annotate_many(rollouts) as traces:
                async for trace in traces:
                    ...

        Traces come out as they finish (not in input order; each carries its ``trace_id``),
        and input is pulled only as fast as they are consumed. A malformed rollout becomes a
        trace with no turns and its problem in ``Trace.issues``; the stream goes on. An
        exception raised by ``items`` itself comes out of the ``async for`` as itself, after
        the traces finished before it. Leaving the ``async with`` (at the end, on ``break``
        or on an exception) stops all work at once: requests in flight are cancelled.
        """
        if self._group is None:
            raise RuntimeError("Annotator is not open: use `async with Annotator(...) as ann`")
        return TraceStream(self, self._group, items)

    # -- statistics -----------------------------------------------------------------------

    def stats(self) -> JudgeTotals | None:
        """Judge, reader and cache counters (``None`` without a judge)."""
        if self._client is None and self.judge is None and self.reader is None:
            return None
        totals = JudgeTotals.of(
            client=self._client.stats if self._client is not None else None,
            layer=self.judge.stats if self.judge is not None else None,
            reader=self.reader.stats if self.reader is not None else None,
        )
        if self.cache is not None:
            totals.cache_path = str(self.cache.path)
        return totals


@contextmanager
def _setting(event: anyio.Event) -> Iterator[None]:
    try:
        yield
    finally:
        event.set()


@dataclass(frozen=True, slots=True)
class _Failed:
    """An exception raised by the caller's input, handed to the consumer to raise as itself."""

    error: BaseException


class TraceStream:
    """What ``Annotator.annotate_many`` returns: enter it, then iterate it."""

    def __init__(
        self,
        annotator: Annotator,
        group: TaskGroup,
        items: Iterable[Sequence[Mapping[str, Any]] | Trace]
        | AsyncIterable[Sequence[Mapping[str, Any]] | Trace],
    ) -> None:
        self._annotator = annotator
        self._group = group
        self._items = items
        self._scope = anyio.CancelScope()
        self._receive: MemoryObjectReceiveStream[Trace | _Failed] | None = None
        self._entered = False
        self._error: Exception | None = None
        """The exception the caller's input raised, if it did."""
        self._stopped = anyio.Event()

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("an annotate_many stream can be entered once")
        self._entered = True
        width = self._annotator.config.concurrency
        work_send, work_receive = anyio.create_memory_object_stream[Trace](0)
        done_send, done_receive = anyio.create_memory_object_stream[Trace | _Failed](width)
        self._receive = done_receive

        async def run() -> None:
            with self._scope, _setting(self._stopped):
                async with done_send:
                    async with anyio.create_task_group() as group, work_receive:
                        group.start_soon(self._feed, work_send)
                        for _ in range(width):
                            group.start_soon(self._work, work_receive.clone(), done_send.clone())
                    if self._error is not None:  # after the traces pulled before it
                        await done_send.send(_Failed(self._error))

        self._group.start_soon(run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._scope.cancel()
        if self._receive is not None:
            await self._receive.aclose()
            with anyio.CancelScope(shield=True):  # the work is cancelled: wait until it is gone
                await self._stopped.wait()

    def __aiter__(self) -> Self:
        if self._receive is None:
            raise RuntimeError(
                "annotate_many() is a context manager: "
                "`async with ann.annotate_many(items) as traces: async for trace in traces: ...`"
            )
        return self

    async def __anext__(self) -> Trace:
        if self._receive is None:
            raise StopAsyncIteration
        try:
            item = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, _Failed):
            raise item.error
        result: Trace = item
        return result

    def _parse(self, item: Sequence[Mapping[str, Any]] | Trace, number: int) -> Trace:
        if isinstance(item, Trace):
            return item
        trace_id = f"rollout-{number}"
        try:
            return self._annotator.parse(item, trace_id=trace_id)
        except (InputError, TypeError, AttributeError) as error:
            reason = str(error) if isinstance(error, InputError) else "not a list of messages"
            issue = InputIssue(path=trace_id, line=None, reason=reason)
            return Trace(trace_id, (), TraceSource(path=trace_id, format=OPENAI), issues=(issue,))

    async def _feed(self, work: MemoryObjectSendStream[Trace]) -> None:
        items = self._items
        number = 0
        async with work:
            try:
                if isinstance(items, AsyncIterable):
                    async for item in items:
                        number += 1
                        await work.send(self._parse(item, number))
                else:
                    for item in items:
                        number += 1
                        await work.send(self._parse(item, number))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the consumer left
            except Exception as error:  # noqa: BLE001 -- the caller's own, raised in its loop
                self._error = error

    async def _work(
        self,
        receive: MemoryObjectReceiveStream[Trace],
        send: MemoryObjectSendStream[Trace | _Failed],
    ) -> None:
        async with receive, send:
            async for trace in receive:
                try:
                    result: Trace | _Failed = await self._annotator.annotate_trace(trace)
                except Exception as error:  # noqa: BLE001 -- a misconfigured judge: the caller's
                    result = _Failed(error)
                try:
                    await send.send(result)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
