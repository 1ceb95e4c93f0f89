"""Input formats: which exist, how a file's content tells them apart, and the file parser.

Detection reads content, not names. A file whose first line is a complete JSON object is JSONL
and that object decides (each format module says what its records look like); a file that
opens a JSON value over several lines (``{`` or ``[`` alone, a pretty-printed ``.traj`` or
``.json``) is one document, held until the end of the file (within ``Limits.max_line_bytes``)
and decided from the whole value. ``--format`` skips the decision, not the reading.

``FormatParser`` is the one ``SessionParser`` the pipeline sees: it decides, then hands lines
to the chosen format's parser. It never reads a file silently as nothing: a file in no known
format, or one whose format was known but which held no conversation, gives an input issue
naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from tracehint._classify import Classifier
from tracehint._ingest import (
    anthropic,
    atif,
    codex,
    gemini_cli,
    openhands,
    responses,
    swe_agent,
)
from tracehint._ingest._document import DocumentParser, Outcome, ReadContext, Shape
from tracehint._ingest._lines import Line, OverlongLine, split_lines
from tracehint._ingest.claude_code import AgentMeta, ClaudeCodeParser, FileRejectedError
from tracehint._ingest.openai import ErrorDetector, OpenAIJsonlParser
from tracehint._jsonparts import loads as loads_json
from tracehint._kinds import InputFormat
from tracehint._limits import Limits
from tracehint._records import InputIssue

if TYPE_CHECKING:
    from collections.abc import Callable

    from tracehint._records import Trace

__all__ = [
    "FormatParser",
    "InputFormat",
    "ParsedSession",
    "SessionParser",
    "detect",
    "make_parser",
    "parse_session",
]


_KNOWN = tuple(f.value for f in InputFormat if f is not InputFormat.AUTO)

_CLAUDE_ARRAY = (
    "file is a JSON array, not JSONL (one JSON object per line); "
    "convert it with `jq -c '.[]' FILE > FILE.jsonl`"
)

_READERS: dict[InputFormat, Callable[[object, ReadContext], Outcome]] = {
    InputFormat.SWE_AGENT: swe_agent.read_swe_agent,
    InputFormat.OPENHANDS: openhands.read_openhands,
    InputFormat.ATIF: atif.read_atif,
    InputFormat.GEMINI_CLI: gemini_cli.read_gemini_cli,
    InputFormat.ANTHROPIC: anthropic.read_anthropic,
    InputFormat.OPENAI_RESPONSES: responses.read_responses,
}


class SessionParser(Protocol):
    """An incremental parser of one input file."""

    @property
    def path(self) -> str:
        """The file being read."""
        ...

    @property
    def skipped_entries(self) -> int:
        """Entries skipped on purpose (types that carry no conversation)."""
        ...

    @property
    def duplicate_entries(self) -> int:
        """Entries seen twice, read once."""
        ...

    @property
    def good_lines(self) -> int:
        """Lines read without an issue."""
        ...

    @property
    def orphan_results(self) -> int:
        """Tool results that matched no tool call."""
        ...

    def feed(self, line: Line) -> InputIssue | None:
        """Parse one line; return an issue when it is malformed."""
        ...

    def drain(self) -> list[Trace]:
        """Traces complete so far."""
        ...

    def finish(self) -> list[Trace]:
        """The remaining traces, at the end of the file."""
        ...


def _is_claude_code(value: dict[str, Any]) -> bool:
    return isinstance(value.get("type"), str)


def _is_openai(value: dict[str, Any]) -> bool:
    return isinstance(value.get("messages"), list)


def _detect_list(value: list[Any]) -> InputFormat | None:
    first = next((x for x in value if isinstance(x, dict)), None)
    if first is None:
        return None
    if any(openhands.is_event(x) for x in value[:50]):
        return InputFormat.OPENHANDS
    if codex.is_record(first):
        return InputFormat.CODEX
    if gemini_cli.is_contents(value):
        return InputFormat.GEMINI_CLI
    if "role" in first and "content" in first:  # a bare list of chat messages
        wrapped = {"messages": value}
        return InputFormat.ANTHROPIC if anthropic.is_record(wrapped) else InputFormat.OPENAI
    return None


def detect(value: object) -> InputFormat | None:  # noqa: C901, PLR0911 -- one answer per format
    """The format of a JSON value: a JSONL file's first record, or a whole-file document."""
    if isinstance(value, list):
        return _detect_list(value)
    if not isinstance(value, dict):
        return None
    if codex.is_record(value):
        return InputFormat.CODEX
    if atif.is_trajectory(value):
        return InputFormat.ATIF
    if openhands.is_record(value) or openhands.is_event(value):
        return InputFormat.OPENHANDS
    if swe_agent.is_trajectory(value):
        return InputFormat.SWE_AGENT
    if gemini_cli.is_session(value):
        return InputFormat.GEMINI_CLI
    if anthropic.is_record(value):
        return InputFormat.ANTHROPIC
    if responses.is_record(value):
        return InputFormat.OPENAI_RESPONSES
    if _is_openai(value):
        return InputFormat.OPENAI
    if _is_claude_code(value):
        return InputFormat.CLAUDE_CODE
    return None


def _opens_document(data: bytes) -> bool:
    """Whether a first line opens a JSON value spread over lines (or is a one-line array)."""
    stripped = data.strip()
    return stripped in {b"{", b"["} or stripped[:1] == b"["


def _json_reason(line: Line, exc: orjson.JSONDecodeError | None) -> str:
    try:
        line.data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"invalid JSON ({exc})" if exc is not None else "invalid JSON"


def _keys(value: object) -> str:
    if isinstance(value, dict):
        shown = ", ".join(sorted(str(k) for k in value)[:8])
        return f"an object with keys {shown}" if shown else "an empty object"
    return f"a JSON {type(value).__name__}"


def _stem(path: str) -> str:
    """A file's name without its extension; an OpenHands ``events`` folder's session id."""
    base = os.path.basename(path.rstrip(os.sep))  # noqa: PTH119 -- str paths
    if base == "events":
        parent = os.path.basename(os.path.dirname(path.rstrip(os.sep)))  # noqa: PTH119, PTH120
        return parent or base
    for suffix in (".jsonl", ".json", ".traj"):
        if base.endswith(suffix):
            return base.removesuffix(suffix)
    return base


@dataclass(slots=True)
class FormatParser:
    """Decides a file's format from its content, then feeds that format's parser."""

    path: str
    forced: InputFormat
    classifier: Classifier
    limits: Limits
    meta: AgentMeta | None = None
    detector: ErrorDetector | None = None
    read_as: InputFormat | None = None
    """The format the file is being read as, once decided."""
    _inner: SessionParser | None = None
    _held: list[bytes] | None = None
    _held_bytes: int = 0
    _held_lines: int = 0
    _overflow: bool = False
    _first_bad: Line | None = None
    _issues: list[InputIssue] = field(default_factory=list)
    _issued: int = 0
    _traces: int = 0

    # -- what the pipeline reads ---------------------------------------------------------

    @property
    def skipped_entries(self) -> int:
        """Entries the format's parser skipped on purpose."""
        return self._inner.skipped_entries if self._inner is not None else 0

    @property
    def duplicate_entries(self) -> int:
        """Entries seen twice."""
        return self._inner.duplicate_entries if self._inner is not None else 0

    @property
    def good_lines(self) -> int:
        """Lines read without an issue (a held document's lines count)."""
        inner = self._inner.good_lines if self._inner is not None else 0
        return inner + self._held_lines

    @property
    def orphan_results(self) -> int:
        """Tool results that matched no tool call."""
        return self._inner.orphan_results if self._inner is not None else 0

    # -- lines ----------------------------------------------------------------------------

    def feed(self, line: Line) -> InputIssue | None:
        """Take one line; return an issue when it is malformed.

        Raises ``FileRejectedError`` when the content is in no known format.
        """
        if self._held is not None:
            return self._hold(line)
        if self._inner is None:
            return self._decide(line)
        return self._counted(self._inner.feed(line))

    def _counted(self, issue: InputIssue | None) -> InputIssue | None:
        if issue is not None:
            self._issued += 1
        return issue

    def _decide(self, line: Line) -> InputIssue | None:
        first = self._first_bad
        if first is None and _opens_document(line.data):
            self._held = []
            return self._hold(line)
        try:
            value = loads_json(line.data)
        except orjson.JSONDecodeError as exc:
            if first is None and line.data.lstrip()[:1] == b"{":
                # Either JSONL with a broken first line, or a document whose first line
                # holds more than its opening brace: the next line tells.
                self._first_bad = line
                return None
            if first is None:
                return self._counted(InputIssue(self.path, line.number, _json_reason(line, exc)))
            self._first_bad = None
            if line.data.lstrip()[:1] in {b'"', b"}", b"]", b"{", b"["}:
                self._held = []
                self._hold(first)
                return self._hold(line)
            self._issue(InputIssue(self.path, first.number, _json_reason(first, None)))
            return self._counted(InputIssue(self.path, line.number, _json_reason(line, exc)))
        if first is not None:
            self._first_bad = None
            self._issue(InputIssue(self.path, first.number, _json_reason(first, None)))
        if not isinstance(value, dict):
            raise FileRejectedError(self._unknown(value))
        fmt = self.forced if self.forced is not InputFormat.AUTO else detect(value)
        if fmt is None:
            raise FileRejectedError(self._unknown(value))
        self.read_as = fmt
        self._inner = self._line_parser(fmt, value)
        return self._counted(self._inner.feed(line))

    def _unknown(self, value: object, *, whole: bool = False) -> str:
        what = "the file is one JSON document:" if whole else "the first record is"
        return (
            f"not a transcript in any known format (tried {', '.join(_KNOWN)}); "
            f"{what} {_keys(value)}"
        )

    def _line_parser(self, fmt: InputFormat, first: dict[str, Any]) -> SessionParser:
        if fmt is InputFormat.CLAUDE_CODE:
            return ClaudeCodeParser(self.path, self.classifier, self.limits, self.meta)
        if fmt is InputFormat.OPENAI:
            return OpenAIJsonlParser(self.path, self.classifier, self.limits, self.detector)
        if fmt is InputFormat.CODEX:
            return codex.CodexParser(self.path, self.classifier, self.limits)
        collect = (fmt is InputFormat.OPENHANDS and openhands.is_event(first)) or (
            fmt is InputFormat.GEMINI_CLI and gemini_cli.is_header(first)
        )
        return self._documents(fmt, Shape.COLLECT if collect else Shape.PER_LINE)

    def _documents(self, fmt: InputFormat, shape: Shape) -> DocumentParser:
        context = ReadContext(
            path=self.path,
            format=fmt,
            classifier=self.classifier,
            limits=self.limits,
            stem=_stem(self.path),
        )
        return DocumentParser(self.path, _READERS[fmt], context, shape)

    def _hold(self, line: Line) -> InputIssue | None:
        if self._overflow or self._held is None:
            return None
        self._held_bytes += len(line.data) + 1
        if self._held_bytes > self.limits.max_line_bytes:
            self._overflow = True
            self._held = []
            return self._counted(
                InputIssue(
                    self.path,
                    None,
                    f"JSON document over the {self.limits.max_line_bytes}-byte limit; skipped "
                    "(raise Limits.max_line_bytes to read it)",
                )
            )
        self._held.append(line.data)
        self._held_lines += 1
        return None

    def _issue(self, issue: InputIssue) -> None:
        self._issues.append(issue)
        self._issued += 1

    # -- results --------------------------------------------------------------------------

    def take_issues(self) -> list[InputIssue]:
        """Issues found since the last call, besides those ``feed`` returned."""
        if isinstance(self._inner, DocumentParser):
            for issue in self._inner.take_issues():
                self._issue(issue)
        issues, self._issues = self._issues, []
        return issues

    def drain(self) -> list[Trace]:
        """Traces complete so far."""
        traces = self._inner.drain() if self._inner is not None else []
        self._traces += len(traces)
        return traces

    def finish(self) -> list[Trace]:
        """The remaining traces; the end of the file decides a held document."""
        if self._first_bad is not None:
            bad = self._first_bad
            self._issue(InputIssue(self.path, bad.number, _json_reason(bad, None)))
            self._first_bad = None
        if self._held:
            self._read_document(b"\n".join(self._held))
            self._held = []
        traces = self._inner.finish() if self._inner is not None else []
        self._traces += len(traces)
        if isinstance(self._inner, DocumentParser):
            for issue in self._inner.take_issues():
                self._issue(issue)
        if self._traces == 0 and self._issued == 0 and (self._inner is not None):
            what = self.read_as.value if self.read_as is not None else "?"
            skipped = self.skipped_entries
            self._issue(
                InputIssue(
                    self.path,
                    None,
                    f"no conversation found (read as {what}"
                    + (f"; {skipped} entries of other kinds skipped)" if skipped else ")"),
                )
            )
        return traces

    def _read_document(self, data: bytes) -> None:
        try:
            value = loads_json(data)
        except orjson.JSONDecodeError as exc:
            self._issue(InputIssue(self.path, None, f"invalid JSON document ({exc})"))
            return
        fmt = self.forced if self.forced is not InputFormat.AUTO else detect(value)
        if (
            fmt is None
            and isinstance(value, list)
            and value
            and detect(value[0]) is InputFormat.CLAUDE_CODE
        ):
            fmt = InputFormat.CLAUDE_CODE
        if fmt is InputFormat.CLAUDE_CODE and isinstance(value, list):
            self._issue(InputIssue(self.path, None, _CLAUDE_ARRAY))
            return
        if fmt is None:
            self._issue(InputIssue(self.path, None, self._unknown(value, whole=True)))
            return
        self.read_as = fmt
        if fmt in _READERS:
            parser = self._documents(fmt, Shape.PER_LINE)
            self._inner = parser
            if fmt is InputFormat.ANTHROPIC and isinstance(value, list):
                value = {"messages": value}
            parser.read_whole(value)
            return
        # A line format saved as one document (a JSON array of its records): read each
        # record as the line it would have been.
        records = value if isinstance(value, list) else [value]
        if (
            fmt is InputFormat.OPENAI
            and records
            and all(isinstance(x, dict) and "role" in x for x in records)
        ):
            records = [{"messages": records}]
        first = records[0] if records and isinstance(records[0], dict) else {}
        inner = self._line_parser(fmt, first)
        self._inner = inner
        for number, record in enumerate(records, start=1):
            found = inner.feed(Line(number, orjson.dumps(record)))
            if found is not None:
                self._issue(InputIssue(self.path, None, f"record {number - 1}: {found.reason}"))


def make_parser(
    fmt: InputFormat,
    path: str,
    *,
    classifier: Classifier,
    limits: Limits,
    meta: AgentMeta | None,
    detector: ErrorDetector | None = None,
) -> FormatParser:
    """The parser for ``path``: with ``auto``, the content decides the format."""
    return FormatParser(path, fmt, classifier, limits, meta, detector)


@dataclass(frozen=True, slots=True)
class ParsedSession:
    """What one session file held: its traces (not yet hinted) and its input issues."""

    traces: tuple[Trace, ...]
    issues: tuple[InputIssue, ...]
    read_as: InputFormat | None
    """The format the content was read as (``None``: no known format)."""


def parse_session(
    data: bytes,
    *,
    path: str,
    input_format: InputFormat = InputFormat.AUTO,
    classifier: Classifier | None = None,
    limits: Limits | None = None,
    meta: AgentMeta | None = None,
) -> ParsedSession:
    """Read a session file already in memory, in any format, into traces (pure, sync).

    ``path`` names the file in traces and issues. Hand the traces to
    ``Annotator.annotate_many`` to hint them.
    """
    limits = limits or Limits()
    parser = FormatParser(path, input_format, classifier or Classifier(), limits, meta)
    traces: list[Trace] = []
    issues: list[InputIssue] = []
    try:
        for batch in split_lines(data, max_line_bytes=limits.max_line_bytes):
            for line in batch:
                if isinstance(line, OverlongLine):
                    issues.append(
                        InputIssue(path, line.number, f"line of {line.size} bytes over the limit")
                    )
                    continue
                found = parser.feed(line)
                issues.extend(parser.take_issues())
                if found is not None:
                    issues.append(found)
            traces.extend(parser.drain())
    except FileRejectedError as exc:
        return ParsedSession((), (*issues, InputIssue(path, None, str(exc))), None)
    traces.extend(parser.finish())
    issues.extend(parser.take_issues())
    return ParsedSession(tuple(traces), tuple(issues), parser.read_as)
