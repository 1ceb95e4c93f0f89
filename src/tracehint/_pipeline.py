"""The streaming pipeline: producer → adapter → hint stage → writer.

Stages are joined by anyio memory object streams with small buffers, inside one task group,
so a slow stage holds the others back and memory stays bounded by the largest session plus a
constant. Each stage owns the stream ends it is given and closes them with ``async with``;
the hint stage's workers get cloned ends (trio's discipline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio
import orjson

from tracehint._classify import Classifier
from tracehint._context import requests_for
from tracehint._exceptions import StoppedError
from tracehint._ingest._lines import Line, OverlongLine
from tracehint._ingest._reader import Batch, FileEnd, FileItem, FileStart, SessionBlob, produce
from tracehint._ingest.claude_code import AgentMeta, FileRejectedError
from tracehint._ingest.formats import FormatParser, InputFormat, make_parser
from tracehint._jsonparts import HUGE_STRING_CHARS, dump_parts
from tracehint._limits import Limits
from tracehint._records import HintRequest, InputIssue, Trace
from tracehint._redact_records import redact_trace
from tracehint._resume import FileKey, ResumeState, journal_line
from tracehint._wire import approx_size, dump_issue, dump_trace, trace_to_dict

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from tracehint._hints.layers import HintChain
    from tracehint._ingest._discover import Found
    from tracehint._ingest.openai import ErrorDetector
    from tracehint._redact import Redactor
    from tracehint._stats import RunStats

__all__ = [
    "LineSink",
    "PartsSink",
    "PipelineConfig",
    "SessionBlob",
    "annotate_files",
    "hint_trace",
    "redacted_output",
    "requests_for",
]


class LineSink(Protocol):
    """Where output lines go (``JsonlSink`` or anything with the same methods)."""

    @property
    def buffered(self) -> int:
        """Bytes taken but not yet written (0 when everything is written)."""
        ...

    async def write(self, line: bytes) -> None:
        """Take one complete line."""
        ...

    async def flush(self) -> None:
        """Write everything taken so far."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineConfig:
    """How the pipeline reads and how much it holds in flight."""

    limits: Limits = field(default_factory=Limits)
    classifier: Classifier = field(default_factory=Classifier)
    buffer: int = 4
    """Items buffered between two stages (small: backpressure, bounded memory)."""
    max_traces_in_flight: int = 8
    """Traces being hinted at once (no more than ``concurrency`` either: more would only
    wait); their sites share the judge's limiter (``concurrency`` requests in flight), so
    memory does not grow with the judge's concurrency."""
    max_trace_bytes_in_flight: int = 16 * 1024 * 1024
    """More traces than ``max_traces_in_flight`` are hinted at once while they are small:
    while the traces in flight hold at most this many characters of text in all and have
    fewer open sites than twice ``concurrency`` (so many small traces still keep every
    request slot busy)."""
    concurrency: int = 1
    """Judge requests in flight (the judge client's bound; 1 without a judge); the hint stage
    takes in traces until their open sites can fill it."""
    input_format: InputFormat = InputFormat.AUTO
    exclude: frozenset[str] = frozenset()
    """Paths never read as input: the run's own output files, when they sit inside an input
    folder. Matched by name and by the file itself (any spelling, symlink or hard link)."""
    reasoning: bool = True
    """Keep the assistants' thinking (``reasoning_content``) in the output ``messages``."""
    detector: ErrorDetector | None = None
    """Decides which ``tool`` messages of OpenAI-style input report a failure."""
    output_redactor: Redactor | None = None
    """Redact each trace with it before it is written (``--redact-output``: turns,
    ``error_meta``, hints and ``messages``); ``None`` writes the transcripts' text as read."""
    large_json_bytes: int = 1024 * 1024
    """A line this long or longer is parsed, and a trace about this large is serialised, in a
    worker thread (so is the end of a file this large), so the event loop never waits on it.
    Such a line of a file on disk is read again whole at its end (``os.pread``, without the
    GIL) rather than joined from the chunks read."""
    huge_string_chars: int = HUGE_STRING_CHARS
    """In a trace serialised in a worker thread, a string this long or longer is encoded a
    slice at a time, and the line is written in parts (``JsonlSink``) rather than joined: one
    call over all of it would hold the GIL, so the event loop too, for as long as it takes."""


@dataclass(slots=True)
class _Ledger:
    """Which files have all their traces written (for the resume journal).

    The adapter says how many traces a file will write; the writer counts them as they land.
    Both run on one event loop, so no lock is needed.
    """

    expected: dict[str, tuple[FileKey | None, int]] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    ready: list[FileKey] = field(default_factory=list)

    def expect(self, path: str, key: FileKey | None, count: int) -> None:
        self.expected[path] = (key, count)
        self._check(path)

    def wrote(self, path: str) -> None:
        self.written[path] = self.written.get(path, 0) + 1
        self._check(path)

    def _check(self, path: str) -> None:
        found = self.expected.get(path)
        if found is None or self.written.get(path, 0) < found[1]:
            return
        del self.expected[path]
        self.written.pop(path, None)
        if found[0] is not None:
            self.ready.append(found[0])


async def _produce(
    paths: Sequence[str | os.PathLike[str] | SessionBlob | Found],
    send: MemoryObjectSendStream[list[FileItem]],
    config: PipelineConfig,
    stats: RunStats,
    resume: ResumeState | None,
    stop: anyio.Event | None,
) -> None:
    async with send, anyio.create_task_group() as group:
        if stop is not None:

            async def watch() -> None:
                await stop.wait()
                group.cancel_scope.cancel()

            group.start_soon(watch)
        await produce(
            paths,
            send,
            limits=config.limits,
            exclude=config.exclude,
            stats=stats,
            resume=resume,
            long_line_bytes=config.large_json_bytes,
        )
        group.cancel_scope.cancel()


@dataclass(slots=True)
class _FileState:
    path: str
    meta: AgentMeta | None
    key: FileKey | None
    parser: FormatParser | None = None
    issues: int = 0
    """Line issues of this file (they are capped)."""
    reported: int = 0
    """Every issue of this file, line or whole-file."""
    lines: int = 0
    bytes: int = 0
    sent: int = 0
    rejected: bool = False


async def _send_new(
    trace: Trace,
    send: MemoryObjectSendStream[Trace],
    stats: RunStats,
    resume: ResumeState | None,
) -> int:
    """Send a trace on unless an earlier run already wrote it; return how many were sent."""
    if resume is not None and resume.trace_done(trace.source.path, trace.trace_id):
        stats.traces_resumed += 1
        return 0
    stats.sites_found += trace.site_count
    await send.send(trace)
    return 1


_SLICE_SECONDS = 0.005
"""The adapter parses for at most about this long before it lets other tasks run."""


@dataclass(slots=True)
class _Adapter:
    """Turns the producer's lines into traces and input issues, one file after the other.

    Parsing is sync; the adapter yields to the event loop every ``_SLICE_SECONDS`` of it, and a
    line (or a file's end) of ``PipelineConfig.large_json_bytes`` or more is parsed in a
    worker thread, so no step of it stalls the loop for long.
    """

    send: MemoryObjectSendStream[Trace]
    issues: MemoryObjectSendStream[InputIssue]
    stats: RunStats
    config: PipelineConfig
    ledger: _Ledger
    resume: ResumeState | None
    limiter: anyio.CapacityLimiter
    state: _FileState | None = None
    deadline: float = 0.0

    async def issue(self, found: InputIssue) -> None:
        state = self.state
        self.stats.record_issue(found)
        if state is not None:
            state.reported += 1
        # Only per-line issues are capped: a whole-file issue (why the file was skipped or
        # could not be read) is always listed, even after the cap swallowed line issues.
        if state is not None and found.line is not None:
            cap = self.config.limits.issues_per_file
            state.issues += 1
            if state.issues > cap:
                return
            if state.issues == cap:
                found = InputIssue(
                    found.path,
                    found.line,
                    f"{found.reason} (further issues in this file not listed)",
                )
        await self.issues.send(found)

    async def run(self, receive: MemoryObjectReceiveStream[list[FileItem]]) -> None:
        async with receive, self.send, self.issues:
            self.deadline = time.perf_counter() + _SLICE_SECONDS
            async for items in receive:
                for item in items:
                    if isinstance(item, InputIssue):
                        await self.issue(item)
                    elif isinstance(item, FileStart):
                        self.state = _FileState(item.path, item.meta, item.key)
                        self.stats.files += 1
                    elif isinstance(item, Batch):
                        await self.batch(item)
                    else:
                        await self.end(item)

    async def batch(self, batch: Batch) -> None:
        state = self.state
        if state is None or state.rejected:
            return
        self.stats.bytes_read += batch.size
        state.bytes += batch.size
        for line in batch.lines:
            state.lines += 1
            if isinstance(line, OverlongLine):
                await self.overlong(state, line)
                continue
            if not await self.line(state, line):
                break
        if state.parser is not None and not state.rejected:
            for trace in state.parser.drain():
                state.sent += await _send_new(trace, self.send, self.stats, self.resume)
        await self.pause()

    async def pause(self) -> None:
        """Let other tasks run when this slice of parsing is used up."""
        if time.perf_counter() >= self.deadline:
            await anyio.lowlevel.checkpoint()
            self.deadline = time.perf_counter() + _SLICE_SECONDS

    async def overlong(self, state: _FileState, line: OverlongLine) -> None:
        await self.issue(
            InputIssue(
                state.path,
                line.number,
                f"line of {line.size} bytes is over the "
                f"{self.config.limits.max_line_bytes}-byte limit; skipped "
                "(raise Limits.max_line_bytes to read it)",
            ),
        )

    async def line(self, state: _FileState, line: Line) -> bool:
        """Parse one line; ``False`` when the file was rejected (its other lines are not read)."""
        config = self.config
        parser = state.parser
        if parser is None:
            parser = state.parser = make_parser(
                config.input_format,
                state.path,
                classifier=config.classifier,
                limits=config.limits,
                meta=state.meta,
                detector=config.detector,
            )
        try:
            if len(line.data) >= config.large_json_bytes:
                found = await anyio.to_thread.run_sync(parser.feed, line, limiter=self.limiter)
            else:
                found = parser.feed(line)
                if time.perf_counter() >= self.deadline:
                    await self.pause()
        except FileRejectedError as exc:
            state.rejected = True
            await self.issue(InputIssue(state.path, None, str(exc)))
            return False
        for extra in parser.take_issues():
            await self.issue(extra)
        if found is not None:
            await self.issue(found)
            if parser.good_lines == 0 and state.issues >= config.limits.issues_per_file:
                state.rejected = True
                await self.issue(
                    InputIssue(
                        state.path,
                        None,
                        f"no valid line among the first {state.issues} lines; file "
                        "skipped (is it a session JSONL file?)",
                    ),
                )
                return False
        return True

    async def finish(self, state: _FileState, parser: FormatParser) -> None:
        stats = self.stats
        stats.skipped_entries += parser.skipped_entries
        stats.duplicate_entries += parser.duplicate_entries
        stats.orphan_results += parser.orphan_results
        if state.rejected:
            return
        # Building a large file's traces (or parsing a document held whole) is long work.
        if state.bytes >= self.config.large_json_bytes:
            traces = await anyio.to_thread.run_sync(parser.finish, limiter=self.limiter)
        else:
            traces = parser.finish()
        for trace in traces:
            state.sent += await _send_new(trace, self.send, stats, self.resume)
        for extra in parser.take_issues():
            await self.issue(extra)

    async def end(self, item: FileEnd) -> None:
        state = self.state
        if state is None:
            return
        stats = self.stats
        stats.lines += state.lines
        if item.error is not None:
            stats.files_unreadable += 1
            await self.issue(InputIssue(state.path, None, item.error))
        elif state.lines == 0:
            stats.empty_files += 1
            if not state.reported:
                await self.issue(InputIssue(state.path, None, _empty_reason(state.key)))
        if state.parser is not None:
            await self.finish(state, state.parser)
        if item.error is None:
            self.ledger.expect(state.path, state.key, state.sent)
        self.state = None


def _empty_reason(key: FileKey | None) -> str:
    if key is None:
        return "no session to read: the file is empty or holds only blank lines"
    if key.size == 0:
        return "empty file (0 bytes): no session to read"
    return "no session to read: the file holds only blank lines"


async def hint_trace(
    trace: Trace, chain: HintChain, limits: Limits, *, stats: RunStats | None = None
) -> Trace:
    """Resolve every site of ``trace`` concurrently and return the hinted trace.

    With the chain's reader pass (``--detect reader``), the trace is read first and its
    findings become sites (or join the sites already there). ``stats`` counts the sites
    resolved (``sites_hinted``, for the progress line).

    After ``chain.drain()`` (a graceful stop) a site that needs a new judge request raises
    ``StoppedError``, once the trace's other sites are done: their requests already on the
    wire finish (and are cached), so a resumed run does not ask for them again.
    """
    if chain.reader is not None:
        trace = await chain.reader.read(trace)
    return await _hint_requests(trace, requests_for(trace, limits), chain, stats)


async def _hint_requests(
    trace: Trace,
    requests: list[tuple[int, HintRequest]],
    chain: HintChain,
    stats: RunStats | None,
) -> Trace:
    if not requests:
        return trace
    hints = await chain.resolve_all([request for _, request in requests])
    if stats is not None:
        stats.sites_hinted += len(requests)
    return trace.with_hints({index: hint for (index, _), hint in zip(requests, hints, strict=True)})


def _trace_size(trace: Trace) -> int:
    """What a trace weighs in memory, roughly: the characters of its turns (and per turn)."""
    return sum(len(turn.content) for turn in trace.turns) + 256 * len(trace.turns)


class _InFlight:
    """How many traces the hint stage holds, and whether it may take one more.

    A trace may start when fewer than ``traces`` are in flight, or, while the traces in flight
    are small (under ``size_budget`` in all) and have fewer than ``sites`` open sites, so that
    traces of a site or two still keep the judge's request slots busy. Only the hint stage's
    dispatcher waits here, so one event is enough.
    """

    def __init__(self, *, traces: int, size_budget: int, sites: int) -> None:
        self.traces = max(traces, 1)
        self.size_budget = size_budget
        self.sites = sites
        self.count = 0
        self.size = 0
        self.open_sites = 0
        self._changed = anyio.Event()

    def _room(self, size: int) -> bool:
        if self.count < self.traces:
            return True
        return self.size + size <= self.size_budget and self.open_sites < self.sites

    async def enter(self, size: int, sites: int) -> None:
        """Wait for room, then take it: one trace of ``size`` with ``sites`` open sites."""
        while not self._room(size):
            self._changed = anyio.Event()
            await self._changed.wait()
        self.count += 1
        self.size += size
        self.open_sites += sites

    def resolved(self, sites: int) -> None:
        """``sites`` of a trace in flight have their hints."""
        self.open_sites -= sites
        self._changed.set()

    def leave(self, size: int) -> None:
        """A trace of ``size`` has left the stage (handed on, or dropped)."""
        self.count -= 1
        self.size -= size
        self._changed.set()


_INLINE_REDACT_CHARS = 64 * 1024
"""A trace with less text than this is redacted on the event loop; a bigger one in a thread."""


async def redacted_output(trace: Trace, redactor: Redactor) -> Trace:
    """``redact_trace``, in a worker thread when the trace is big (it is CPU work)."""
    size = sum(len(turn.content) for turn in trace.turns)
    if size < _INLINE_REDACT_CHARS:
        return redact_trace(trace, redactor)
    return await anyio.to_thread.run_sync(redact_trace, trace, redactor)


async def _hint_stage(  # noqa: C901 -- the dispatcher and the task per trace, kept together
    receive: MemoryObjectReceiveStream[Trace],
    send: MemoryObjectSendStream[Trace],
    chain: HintChain,
    config: PipelineConfig,
    stop: anyio.Event | None,
    stats: RunStats,
) -> None:
    """Hint traces, several at once (bounded by ``_InFlight``), in one task group.

    On ``stop`` the chain is drained; a trace read but not hinted yet is dropped (it is not
    written, so its file is not journaled and a resumed run reads it again), and so is a
    trace that needed a judge request after the stop.
    """
    limits = config.limits
    slots = max(config.concurrency, 1)
    in_flight = _InFlight(
        # More traces than requests in flight would only wait (offline: one at a time).
        traces=min(config.max_traces_in_flight, slots),
        size_budget=config.max_trace_bytes_in_flight,
        sites=2 * slots,
    )

    async def hint_one(
        trace: Trace, requests: list[tuple[int, HintRequest]] | None, size: int, sites: int
    ) -> None:
        try:
            try:
                if requests is None:  # the reader pass first: its findings are sites too
                    assert chain.reader is not None  # noqa: S101 -- requests are None only then
                    trace = await chain.reader.read(trace)
                    requests = requests_for(trace, limits)
                hinted = await _hint_requests(trace, requests, chain, stats)
            except StoppedError:
                return  # it needed a judge request after the stop: left for --resume
            finally:
                in_flight.resolved(sites)
            await send.send(hinted)  # still held until the writer takes it
        finally:
            in_flight.leave(size)

    async with receive, send, anyio.create_task_group() as group:
        if stop is not None:

            async def drain_on_stop() -> None:
                await stop.wait()
                chain.drain()  # no new judge request from here on

            group.start_soon(drain_on_stop)
        async with anyio.create_task_group() as traces:
            async for trace in receive:
                if stop is not None and stop.is_set():
                    continue
                requests: list[tuple[int, HintRequest]] | None = requests_for(trace, limits)
                sites = len(requests or ())
                if chain.reader is not None:
                    requests, sites = None, max(sites, 1)
                elif not requests:
                    await send.send(trace)
                    continue
                size = _trace_size(trace)
                await in_flight.enter(size, sites)
                if stop is not None and stop.is_set():
                    in_flight.resolved(sites)
                    in_flight.leave(size)
                    continue
                traces.start_soon(hint_one, trace, requests, size, sites)
        group.cancel_scope.cancel()


@runtime_checkable
class PartsSink(Protocol):
    """A sink that takes a line in parts and writes them without joining them (``JsonlSink``)."""

    async def write_parts(self, parts: Sequence[bytes]) -> None:
        """Take one complete line, given in parts."""
        ...


def _dump_parts(trace: Trace, *, reasoning: bool, min_chars: int) -> list[bytes]:
    """``dump_trace(trace)`` in parts: its huge strings a slice at a time (a worker thread)."""
    return dump_parts(
        trace_to_dict(trace, reasoning=reasoning),
        option=orjson.OPT_APPEND_NEWLINE,
        min_chars=min_chars,
    )


async def _write_parts(sink: LineSink, parts: list[bytes], limiter: anyio.CapacityLimiter) -> None:
    """Write a line made in parts: as parts where the sink takes them, else joined in a thread."""
    if len(parts) == 1:
        await sink.write(parts[0])
    elif isinstance(sink, PartsSink):
        await sink.write_parts(parts)
    else:
        await sink.write(await anyio.to_thread.run_sync(b"".join, parts, limiter=limiter))


def _release(items: list[Any]) -> None:
    """Drop ``items`` one at a time (a worker thread).

    Freeing the line of a 50 MB trace (a few hundred parts) or the trace itself takes 5 to
    10 ms each, with the GIL held: all at once on the event loop, a stall of 20 ms or more.
    One ``pop`` at a time lets the event loop run between them.
    """
    while items:
        items.pop()


async def _write_traces(
    receive: MemoryObjectReceiveStream[Trace],
    sink: LineSink,
    stats: RunStats,
    ledger: _Ledger,
    journal: LineSink | None,
    config: PipelineConfig,
    limiter: anyio.CapacityLimiter,
) -> None:
    reasoning, large_json_bytes = config.reasoning, config.large_json_bytes
    huge_chars = config.huge_string_chars

    async def journal_ready() -> None:
        # Only files whose every trace line has reached the output file are journaled.
        if journal is None or not ledger.ready:
            return
        ready, ledger.ready = ledger.ready, []
        for key in ready:
            await journal.write(journal_line(key))
        await journal.flush()

    async with receive:
        async for found in receive:
            trace = found
            if config.output_redactor is not None:
                trace = await redacted_output(found, config.output_redactor)
            large = approx_size(trace) >= large_json_bytes
            if large:
                parts = await anyio.to_thread.run_sync(
                    partial(_dump_parts, trace, reasoning=reasoning, min_chars=huge_chars),
                    limiter=limiter,
                )
                await _write_parts(sink, parts, limiter)
                await anyio.to_thread.run_sync(_release, parts, limiter=limiter)
            else:
                await sink.write(dump_trace(trace, reasoning=reasoning))
            stats.record_trace(trace)
            ledger.wrote(trace.source.path)
            if large:  # its huge strings are freed in a worker thread too
                held: list[object] = [trace, found]
                del trace, found
                await anyio.to_thread.run_sync(_release, held, limiter=limiter)
            if ledger.ready and sink.buffered == 0:
                await journal_ready()
        await sink.flush()
        await journal_ready()


async def _write_issues(
    receive: MemoryObjectReceiveStream[InputIssue], sink: LineSink | None
) -> None:
    async with receive:
        async for found in receive:
            if sink is not None:
                await sink.write(dump_issue(found))


async def annotate_files(  # noqa: PLR0913 -- keyword-only options of the one entry point
    paths: Sequence[str | os.PathLike[str] | SessionBlob | Found],
    *,
    chain: HintChain,
    sink: LineSink,
    stats: RunStats,
    issue_sink: LineSink | None = None,
    config: PipelineConfig | None = None,
    resume: ResumeState | None = None,
    journal: LineSink | None = None,
    stop: anyio.Event | None = None,
) -> None:
    """Annotate every session under ``paths`` and write one JSON line per trace to ``sink``.

    ``paths`` are files and folders on disk (searched), ``Found`` sessions an earlier
    ``discover`` listed (read as they are), or ``SessionBlob`` files already in memory.

    Input issues are counted in ``stats`` and written to ``issue_sink`` when given; they
    never stop the run. Output errors (``OutputError``) do.

    With ``resume``, files and traces an earlier run finished are skipped; with ``journal``,
    each input file whose traces are all written is recorded there (see ``_resume``). Setting
    ``stop`` stops the run gracefully: no new file is opened (files being read are dropped),
    no trace starts hinting, and the chain is drained (``HintChain.drain``): judge requests
    already sent finish and are cached, and a trace that needs a new request is dropped. What
    was dropped is not written nor journaled, so a resumed run reads it again.
    """
    config = config or PipelineConfig()
    buffer = config.buffer
    files_send, files_receive = anyio.create_memory_object_stream[list[FileItem]](buffer)
    traces_send, traces_receive = anyio.create_memory_object_stream[Trace](buffer)
    hinted_send, hinted_receive = anyio.create_memory_object_stream[Trace](buffer)
    issues_send, issues_receive = anyio.create_memory_object_stream[InputIssue](buffer)
    ledger = _Ledger()
    # Parsing a large line and serialising a large trace run in worker threads, one of each
    # stage at a time.
    limiter = anyio.CapacityLimiter(2)
    adapter = _Adapter(traces_send, issues_send, stats, config, ledger, resume, limiter)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_produce, paths, files_send, config, stats, resume, stop)
            group.start_soon(adapter.run, files_receive)
            group.start_soon(_hint_stage, traces_receive, hinted_send, chain, config, stop, stats)
            group.start_soon(
                _write_traces, hinted_receive, sink, stats, ledger, journal, config, limiter
            )
            group.start_soon(_write_issues, issues_receive, issue_sink)
    except BaseExceptionGroup as failed:
        # A stage that fails closes its input stream as it unwinds; the stage feeding it may
        # send to the closed stream before the task group has cancelled it, and gets
        # `BrokenResourceError`: a consequence, left out unless it is the only error.
        _broken, causes = failed.split(anyio.BrokenResourceError)
        if causes is None:
            raise
        raise causes from None
    stats.finish()
