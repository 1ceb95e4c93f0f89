"""Formats stored as JSON documents, and the parser that feeds them a file's lines.

A *document reader* knows one format and nothing about files: it takes a parsed JSON value
(a SWE-agent ``.traj``, an ATIF trajectory, an OpenHands event list or evaluation record, a
Gemini CLI session) and returns the traces in it and the problems it met, each naming the
record it concerns. ``DocumentParser`` feeds readers from a JSONL file in one of two shapes:

- ``PER_LINE``: one document per line (an evaluation ``output.jsonl``);
- ``COLLECT``: one *record* per line, all of them one document (OpenHands events converted to
  JSONL, a session folder's ``events/N.json``): the reader gets the list at the end.

A file that *is* one JSON document (pretty-printed over many lines) is assembled by
``formats`` and handed over whole with ``read_whole``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING

import orjson

from tracehint._ingest._builder import TraceBuilder
from tracehint._jsonparts import loads as loads_json
from tracehint._longstr import join
from tracehint._records import InputIssue, TraceSource

if TYPE_CHECKING:
    from collections.abc import Callable

    from tracehint._classify import Classifier
    from tracehint._ingest._lines import Line
    from tracehint._kinds import InputFormat
    from tracehint._limits import Limits
    from tracehint._records import Trace

__all__ = [
    "SHELL_FAILURE",
    "DocumentParser",
    "Outcome",
    "ReadContext",
    "Shape",
    "as_int",
    "as_str",
    "shell_failed",
    "text_of",
]


SHELL_FAILURE = re.compile(
    r"Traceback \(most recent call last\)|\bcommand not found\b|\bNo such file\b|"
    r"^(?:bash|sh|/bin/sh)(?:: line \d+)?: .*(?:Permission denied|Is a directory)",
    re.MULTILINE,
)
"""Text that shows a shell command or script failed, for formats with no error flag."""
_SHELL_FAILURE_NEEDLES = (
    "Traceback (most recent call last)",
    "command not found",
    "No such file",
    "Permission denied",
    "Is a directory",
)


def shell_failed(text: str) -> bool:
    """Whether ``text`` shows a failed command (``SHELL_FAILURE``), its words checked first.

    Every match holds one of the needles; a plain ``in`` test is many times faster than the
    regex on the outputs that hold none (most of them).
    """
    return any(map(text.__contains__, _SHELL_FAILURE_NEEDLES)) and (
        SHELL_FAILURE.search(text) is not None
    )


class Shape(Enum):
    """How a file holds its documents."""

    PER_LINE = "per_line"
    COLLECT = "collect"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadContext:
    """What a reader needs besides the document: where it is, and how to classify."""

    path: str
    format: InputFormat
    classifier: Classifier
    limits: Limits
    line: int | None = None
    """The JSONL line the document is on (``PER_LINE``), else ``None``."""
    stem: str = ""
    """A name for the document when it carries none (the file name without extension)."""

    def builder(self, trace_id: str, *, session_id: str | None = None) -> TraceBuilder:
        """A builder for one trace of this document."""
        source = TraceSource(path=self.path, format=self.format, session_id=session_id)
        return TraceBuilder(trace_id, source, self.classifier, self.limits)

    def default_id(self) -> str:
        """A trace id for a document that names none: the file, and its line if any."""
        return f"{self.stem}:{self.line}" if self.line is not None else self.stem


@dataclass(slots=True)
class Outcome:
    """What reading one document gave."""

    traces: list[Trace] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Malformed records, each reason naming its record; the rest was read."""
    skipped: int = 0
    """Records skipped on purpose (bookkeeping events, demonstrations, ...)."""
    orphans: int = 0
    """Tool results that matched no tool call."""

    def add(self, builder: TraceBuilder) -> None:
        """Keep the builder's trace when it has a turn."""
        self.orphans += builder.orphan_results
        if not builder.is_empty:
            self.traces.append(builder.build())


def text_of(content: object) -> str:
    """Text of a message content: a string, or a list of text parts (OpenAI/Anthropic style)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
                elif part.get("type") in {"image", "image_url", "input_image"}:
                    parts.append("[image]")
                else:
                    parts.append(f"[{part.get('type', 'unknown')} part]")
        return join(parts, "\n")
    if isinstance(content, dict):
        text = content.get("text")
        return text if isinstance(text, str) else orjson.dumps(content).decode()
    return str(content)


def as_str(value: object) -> str | None:
    """``value`` when it is a non-empty string."""
    return value if isinstance(value, str) and value else None


def as_int(value: object) -> int | None:
    """``value`` when it is an integer (not a bool); integral strings count too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


@dataclass(slots=True)
class DocumentParser:
    """Feeds a format's document reader from a file's lines (a ``SessionParser``)."""

    path: str
    reader: Callable[[object, ReadContext], Outcome]
    context: ReadContext
    shape: Shape
    skipped_entries: int = 0
    duplicate_entries: int = 0
    good_lines: int = 0
    orphan_results: int = 0
    _records: list[object] = field(default_factory=list)
    _record_lines: list[int] = field(default_factory=list)
    _ready: list[Trace] = field(default_factory=list)
    _issues: list[InputIssue] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)

    def feed(self, line: Line) -> InputIssue | None:
        """Take one line; return an issue when it is malformed."""
        try:
            value = loads_json(line.data)
        except orjson.JSONDecodeError as exc:
            return InputIssue(self.path, line.number, f"invalid JSON ({exc})")
        self.good_lines += 1
        if self.shape is Shape.COLLECT:
            self._records.append(value)
            self._record_lines.append(line.number)
            return None
        self._read(value, line.number)
        return None

    def _read(self, value: object, line: int | None) -> None:
        context = ReadContext(
            path=self.context.path,
            format=self.context.format,
            classifier=self.context.classifier,
            limits=self.context.limits,
            line=line,
            stem=self.context.stem,
        )
        outcome = self.reader(value, context)
        for trace in outcome.traces:
            # Two records of one file naming the same run (a retried instance) stay apart.
            if trace.trace_id in self._ids and line is not None:
                trace = replace(trace, trace_id=f"{trace.trace_id}:{line}")  # noqa: PLW2901
            self._ids.add(trace.trace_id)
            self._ready.append(trace)
        self.skipped_entries += outcome.skipped
        self.orphan_results += outcome.orphans
        problems = outcome.problems
        cap = self.context.limits.issues_per_file
        if len(problems) > cap:
            # One broken document must not flood the issue list (line issues are capped alike).
            problems = [*problems[: cap - 1], f"{len(problems) - cap + 1} more malformed records"]
        self._issues.extend(InputIssue(self.path, line, reason) for reason in problems)

    def read_whole(self, value: object) -> None:
        """Read a document that is a whole file."""
        self._read(value, None)

    def take_issues(self) -> list[InputIssue]:
        """Issues found since the last call (problems inside documents)."""
        issues, self._issues = self._issues, []
        return issues

    def drain(self) -> list[Trace]:
        """Traces complete so far."""
        ready, self._ready = self._ready, []
        return ready

    def finish(self) -> list[Trace]:
        """The remaining traces, at the end of the file."""
        if self.shape is Shape.COLLECT and self._records:
            records, self._records = self._records, []
            lines, self._record_lines = self._record_lines, []
            outcome_start = len(self._issues)
            self._read(records, None)
            # A reader names a collected record by its index: say which line that was.
            for index in range(outcome_start, len(self._issues)):
                issue = self._issues[index]
                self._issues[index] = _with_line(issue, lines)
        return self.drain()


def _with_line(issue: InputIssue, lines: list[int]) -> InputIssue:
    """``record 3: …`` of a collected list → the issue at that record's line."""
    head, _, rest = issue.reason.partition(": ")
    if head.startswith("record ") and rest:
        index = as_int(head.removeprefix("record ").split(" ", 1)[0])
        if index is not None and 0 <= index < len(lines):
            return InputIssue(issue.path, lines[index], rest)
    return issue
