"""The streaming pipeline: producer → adapter → hint stage → writer.

Stages are joined by anyio memory object streams with small buffers, inside one task group,
so a slow stage holds the others back and memory stays bounded by the largest session plus a
constant. Each stage owns the stream ends it is given and closes them with ``async with``;
the hint stage's workers get cloned ends (trio's discipline).
"""

from __future__ import annotations

import os
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol

import anyio

from tracehint._classify import Classifier
from tracehint._context import requests_for
from tracehint._exceptions import StoppedError
from tracehint._ingest._discover import Found, FoundKind, Skipped, discover
from tracehint._ingest._lines import Line, OverlongLine, lines_from, open_and_read, split_lines
from tracehint._ingest.claude_code import AgentMeta, FileRejectedError, read_agent_meta
from tracehint._ingest.formats import FormatParser, InputFormat, make_parser
from tracehint._ingest.openhands import read_event_folder
from tracehint._limits import Limits
from tracehint._records import HintRequest, InputIssue, Trace
from tracehint._redact_records import redact_trace
from tracehint._resume import FileKey, ResumeState, file_key, journal_line
from tracehint._wire import dump_issue, dump_trace

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from tracehint._hints.layers import HintChain
    from tracehint._ingest.openai import ErrorDetector
    from tracehint._records import Hint
    from tracehint._redact import Redactor
    from tracehint._stats import RunStats

__all__ = [
    "LineSink",
    "PipelineConfig",
    "SessionBlob",
    "annotate_files",
    "hint_trace",
    "redacted_output",
    "requests_for",
]


@dataclass(frozen=True, slots=True)
class SessionBlob:
    """A session file already in memory (e.g. a row of a Ray dataset), read like a file.

    ``path`` names it in traces and issues; ``meta`` is what an ``agent-*.meta.json`` beside
    it says, when the reader had it.
    """

    path: str
    data: bytes
    meta: AgentMeta | None = None


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
    hint_workers: int = 1
    """Traces being hinted at once (the judge's fan-out runs inside each)."""
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


# -- items on the producer → adapter stream ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FileStart:
    path: str
    meta: AgentMeta | None
    key: FileKey | None


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


@dataclass(frozen=True, slots=True)
class _Batch:
    lines: list[Line | OverlongLine]
    size: int

    @classmethod
    def of(cls, lines: list[Line | OverlongLine]) -> _Batch:
        """A batch and its size in bytes (an overlong line counts what it had)."""
        return cls(lines, sum(len(x.data) if isinstance(x, Line) else x.size for x in lines))


@dataclass(frozen=True, slots=True)
class _FileEnd:
    error: str | None


_FileItem = _FileStart | _Batch | _FileEnd | InputIssue


def _meta_for(path: str) -> AgentMeta | None:
    if os.path.basename(path).startswith("agent-"):  # noqa: PTH119 -- str paths
        return read_agent_meta(path)
    return None


@dataclass(frozen=True, slots=True)
class _Excluded:
    """The run's own output files, by name and by identity (any spelling, symlink or link)."""

    paths: frozenset[str]
    ids: frozenset[tuple[int, int]]

    @classmethod
    def of(cls, paths: frozenset[str]) -> _Excluded:
        """The files named in ``paths`` as they are now (blocking: stats each)."""
        ids = set()
        for path in paths:
            try:
                found = os.stat(path)  # noqa: PTH116 -- str paths
            except OSError:
                continue
            ids.add((found.st_dev, found.st_ino))
        return cls(frozenset(os.path.abspath(p) for p in paths), frozenset(ids))  # noqa: PTH100

    def __contains__(self, path: str) -> bool:
        if not self.paths:
            return False
        if os.path.abspath(path) in self.paths:  # noqa: PTH100 -- str paths
            return True
        try:
            found = os.stat(path)  # noqa: PTH116 -- str paths
        except OSError:
            return False
        return (found.st_dev, found.st_ino) in self.ids


@dataclass(slots=True)
class _Opened:
    """A session file opened for reading, with what the run needs to know about it."""

    skip: bool = False
    own: bool = False
    key: FileKey | None = None
    meta: AgentMeta | None = None
    handle: BinaryIO | None = None
    first: bytes = b""
    error: str | None = None


def _open_file(
    path: str, resume: ResumeState | None, chunk_bytes: int, exclude: _Excluded
) -> _Opened:
    """Everything a file needs before parsing, in one worker-thread trip (blocking)."""
    if path in exclude:
        return _Opened(own=True)
    if resume is not None and resume.file_done(path):
        return _Opened(skip=True)
    opened = _Opened(key=file_key(path), meta=_meta_for(path))
    try:
        opened.handle, opened.first = open_and_read(path, chunk_bytes)
    except OSError as exc:
        opened.error = f"cannot read file: {exc.strerror or exc}"
    return opened


async def _produce(
    paths: Sequence[str | os.PathLike[str] | SessionBlob],
    send: MemoryObjectSendStream[_FileItem],
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
        await _produce_files(paths, send, config, stats, resume)
        group.cancel_scope.cancel()


async def _produce_blob(
    blob: SessionBlob,
    send: MemoryObjectSendStream[_FileItem],
    limits: Limits,
    resume: ResumeState | None,
    stats: RunStats,
) -> None:
    if resume is not None and resume.file_done(blob.path):
        stats.files_resumed += 1
        return
    await send.send(_FileStart(blob.path, blob.meta, None))
    for batch in split_lines(blob.data, max_line_bytes=limits.max_line_bytes):
        await send.send(_Batch.of(batch))
    await send.send(_FileEnd(None))


async def _produce_files(
    inputs: Sequence[str | os.PathLike[str] | SessionBlob],
    send: MemoryObjectSendStream[_FileItem],
    config: PipelineConfig,
    stats: RunStats,
    resume: ResumeState | None,
) -> None:
    paths: list[str | os.PathLike[str]] = []
    for item in inputs:
        if isinstance(item, SessionBlob):
            await _produce_blob(item, send, config.limits, resume, stats)
        else:
            paths.append(item)
    # By identity too: an output reached through a symlinked input folder is still the output.
    exclude = await anyio.to_thread.run_sync(_Excluded.of, config.exclude)
    async for found in discover(paths):
        if isinstance(found, Skipped):
            stats.record_skipped_file(found.reason)
        elif isinstance(found, Found) and found.kind is FoundKind.EVENT_FOLDER:
            await _produce_event_folder(found.path, send, config, stats, resume, exclude)
        elif isinstance(found, Found):
            await _produce_file(found.path, send, config, stats, resume, exclude)
        else:
            await send.send(found)


def _open_event_folder(
    path: str, resume: ResumeState | None, exclude: _Excluded
) -> tuple[_Opened, bytes, list[InputIssue]]:
    """An OpenHands ``events/`` folder read as one JSONL session (blocking)."""
    if path in exclude:
        return _Opened(own=True), b"", []
    if resume is not None and resume.file_done(path):
        return _Opened(skip=True), b"", []
    key = file_key(path)
    data, issues = read_event_folder(path)
    return _Opened(key=key), data, issues


async def _produce_event_folder(
    path: str,
    send: MemoryObjectSendStream[_FileItem],
    config: PipelineConfig,
    stats: RunStats,
    resume: ResumeState | None,
    exclude: _Excluded,
) -> None:
    opened, data, issues = await anyio.to_thread.run_sync(_open_event_folder, path, resume, exclude)
    if opened.own:
        return
    if opened.skip:
        stats.files_resumed += 1
        return
    await send.send(_FileStart(path, None, opened.key))
    for found in issues:
        await send.send(found)
    for batch in split_lines(data, max_line_bytes=config.limits.max_line_bytes):
        await send.send(_Batch.of(batch))
    await send.send(_FileEnd(None))


async def _produce_file(
    path: str,
    send: MemoryObjectSendStream[_FileItem],
    config: PipelineConfig,
    stats: RunStats,
    resume: ResumeState | None,
    exclude: _Excluded,
) -> None:
    limits = config.limits
    opened = await anyio.to_thread.run_sync(_open_file, path, resume, limits.chunk_bytes, exclude)
    if opened.own:
        return
    if opened.skip:
        stats.files_resumed += 1
        return
    await send.send(_FileStart(path, opened.meta, opened.key))
    if opened.handle is None:
        await send.send(_FileEnd(opened.error))
        return
    try:
        async with aclosing(
            lines_from(
                opened.handle,
                opened.first,
                chunk_bytes=limits.chunk_bytes,
                max_line_bytes=limits.max_line_bytes,
            ),
        ) as batches:
            async for batch in batches:
                await send.send(_Batch.of(batch))
    except OSError as exc:
        await send.send(_FileEnd(f"cannot read file: {exc.strerror or exc}"))
    else:
        await send.send(_FileEnd(None))


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


async def _adapt(  # noqa: C901, PLR0912, PLR0915 -- one dispatch over the item types, kept whole
    receive: MemoryObjectReceiveStream[_FileItem],
    send: MemoryObjectSendStream[Trace],
    issues: MemoryObjectSendStream[InputIssue],
    stats: RunStats,
    config: PipelineConfig,
    ledger: _Ledger,
    resume: ResumeState | None,
) -> None:
    limits = config.limits
    state: _FileState | None = None

    async def issue(found: InputIssue) -> None:
        stats.record_issue(found)
        if state is not None:
            state.reported += 1
        # Only per-line issues are capped: a whole-file issue (why the file was skipped or
        # could not be read) is always listed, even after the cap swallowed line issues.
        if state is not None and found.line is not None:
            state.issues += 1
            if state.issues > limits.issues_per_file:
                return
            if state.issues == limits.issues_per_file:
                found = InputIssue(
                    found.path,
                    found.line,
                    f"{found.reason} (further issues in this file not listed)",
                )
        await issues.send(found)

    async with receive, send, issues:
        async for item in receive:
            if isinstance(item, InputIssue):
                await issue(item)
            elif isinstance(item, _FileStart):
                state = _FileState(item.path, item.meta, item.key)
                stats.files += 1
            elif isinstance(item, _Batch):
                if state is None or state.rejected:
                    continue
                stats.bytes_read += item.size
                for line in item.lines:
                    state.lines += 1
                    if isinstance(line, OverlongLine):
                        await issue(
                            InputIssue(
                                state.path,
                                line.number,
                                f"line of {line.size} bytes is over the "
                                f"{limits.max_line_bytes}-byte limit; skipped "
                                "(raise Limits.max_line_bytes to read it)",
                            ),
                        )
                        continue
                    if state.parser is None:
                        state.parser = make_parser(
                            config.input_format,
                            state.path,
                            classifier=config.classifier,
                            limits=limits,
                            meta=state.meta,
                            detector=config.detector,
                        )
                    try:
                        found = state.parser.feed(line)
                    except FileRejectedError as exc:
                        state.rejected = True
                        await issue(InputIssue(state.path, None, str(exc)))
                        break
                    for extra in state.parser.take_issues():
                        await issue(extra)
                    if found is not None:
                        await issue(found)
                        if state.parser.good_lines == 0 and state.issues >= limits.issues_per_file:
                            state.rejected = True
                            await issue(
                                InputIssue(
                                    state.path,
                                    None,
                                    f"no valid line among the first {state.issues} lines; file "
                                    "skipped (is it a session JSONL file?)",
                                ),
                            )
                            break
                if state.parser is not None and not state.rejected:
                    for trace in state.parser.drain():
                        state.sent += await _send_new(trace, send, stats, resume)
                await anyio.lowlevel.checkpoint()
            else:
                if state is None:
                    continue
                stats.lines += state.lines
                if item.error is not None:
                    stats.files_unreadable += 1
                    await issue(InputIssue(state.path, None, item.error))
                elif state.lines == 0:
                    stats.empty_files += 1
                    if not state.reported:
                        await issue(InputIssue(state.path, None, _empty_reason(state.key)))
                if state.parser is not None:
                    stats.skipped_entries += state.parser.skipped_entries
                    stats.duplicate_entries += state.parser.duplicate_entries
                    stats.orphan_results += state.parser.orphan_results
                    if not state.rejected:
                        for trace in state.parser.finish():
                            state.sent += await _send_new(trace, send, stats, resume)
                        for extra in state.parser.take_issues():
                            await issue(extra)
                if item.error is None:
                    ledger.expect(state.path, state.key, state.sent)
                state = None


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
    findings become sites (or join the sites already there). ``stats`` counts each site as it
    is resolved (``sites_hinted``, for the progress line).

    After ``chain.drain()`` (a graceful stop) a site that needs a new judge request raises
    ``StoppedError``, once the trace's other sites are done: their requests already on the
    wire finish (and are cached), so a resumed run does not ask for them again.
    """
    if chain.reader is not None:
        trace = await chain.reader.read(trace)
    requests = requests_for(trace, limits)
    if not requests:
        return trace
    hints: dict[int, Hint] = {}
    stopped: list[StoppedError] = []

    async def one(index: int, request: HintRequest) -> None:
        try:
            hints[index] = await chain.resolve(request)
            if stats is not None:
                stats.sites_hinted += 1
        except StoppedError as exc:
            stopped.append(exc)  # not raised here: that would cancel the sites in flight

    if len(requests) == 1:
        await one(*requests[0])
    else:
        async with anyio.create_task_group() as group:
            for index, request in requests:
                group.start_soon(one, index, request)
    if stopped:
        raise stopped[0]
    return trace.with_hints(hints)


_INLINE_REDACT_CHARS = 64 * 1024
"""A trace with less text than this is redacted on the event loop; a bigger one in a thread."""


async def redacted_output(trace: Trace, redactor: Redactor) -> Trace:
    """``redact_trace``, in a worker thread when the trace is big (it is CPU work)."""
    size = sum(len(turn.content) for turn in trace.turns)
    if size < _INLINE_REDACT_CHARS:
        return redact_trace(trace, redactor)
    return await anyio.to_thread.run_sync(redact_trace, trace, redactor)


async def _hint_worker(
    receive: MemoryObjectReceiveStream[Trace],
    send: MemoryObjectSendStream[Trace],
    chain: HintChain,
    limits: Limits,
    stop: anyio.Event | None,
    stats: RunStats,
) -> None:
    async with receive, send:
        async for trace in receive:
            # After a stop, a trace read but not hinted is dropped: it is not written, so its
            # file is not journaled and a resumed run reads it again.
            if stop is not None and stop.is_set():
                continue
            try:
                hinted = await hint_trace(trace, chain, limits, stats=stats)
            except StoppedError:
                continue  # it needed a judge request after the stop: left for --resume
            await send.send(hinted)


async def _hint_stage(
    receive: MemoryObjectReceiveStream[Trace],
    send: MemoryObjectSendStream[Trace],
    chain: HintChain,
    config: PipelineConfig,
    stop: anyio.Event | None,
    stats: RunStats,
) -> None:
    """``config.hint_workers`` workers on cloned stream ends; on ``stop``, drains the chain."""
    async with receive, send, anyio.create_task_group() as group:
        if stop is not None:

            async def drain_on_stop() -> None:
                await stop.wait()
                chain.drain()  # no new judge request from here on

            group.start_soon(drain_on_stop)
        async with anyio.create_task_group() as workers:
            for _ in range(max(config.hint_workers, 1)):
                workers.start_soon(
                    _hint_worker, receive.clone(), send.clone(), chain, config.limits, stop, stats
                )
        group.cancel_scope.cancel()


async def _write_traces(
    receive: MemoryObjectReceiveStream[Trace],
    sink: LineSink,
    stats: RunStats,
    ledger: _Ledger,
    journal: LineSink | None,
    config: PipelineConfig,
) -> None:
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
            await sink.write(dump_trace(trace, reasoning=config.reasoning))
            stats.record_trace(trace)
            ledger.wrote(trace.source.path)
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
    paths: Sequence[str | os.PathLike[str] | SessionBlob],
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

    ``paths`` are files and folders on disk, or ``SessionBlob`` files already in memory.

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
    files_send, files_receive = anyio.create_memory_object_stream[_FileItem](buffer)
    traces_send, traces_receive = anyio.create_memory_object_stream[Trace](buffer)
    hinted_send, hinted_receive = anyio.create_memory_object_stream[Trace](buffer)
    issues_send, issues_receive = anyio.create_memory_object_stream[InputIssue](buffer)
    ledger = _Ledger()
    async with anyio.create_task_group() as group:
        group.start_soon(_produce, paths, files_send, config, stats, resume, stop)
        group.start_soon(
            _adapt,
            files_receive,
            traces_send,
            issues_send,
            stats,
            config,
            ledger,
            resume,
        )
        group.start_soon(_hint_stage, traces_receive, hinted_send, chain, config, stop, stats)
        group.start_soon(_write_traces, hinted_receive, sink, stats, ledger, journal, config)
        group.start_soon(_write_issues, issues_receive, issue_sink)
    stats.finished = time.monotonic()
