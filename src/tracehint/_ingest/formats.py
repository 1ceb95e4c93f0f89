"""Input formats: the parser protocol every format implements, and format detection."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import orjson

from tracehint._ingest.claude_code import AgentMeta, ClaudeCodeParser
from tracehint._ingest.openai import ErrorDetector, OpenAIJsonlParser

if TYPE_CHECKING:
    from tracehint._classify import Classifier
    from tracehint._ingest._lines import Line
    from tracehint._limits import Limits
    from tracehint._records import InputIssue, Trace

__all__ = ["InputFormat", "SessionParser", "make_parser"]


class InputFormat(StrEnum):
    """Formats ``tracehint annotate`` reads (``--format``)."""

    AUTO = "auto"
    CLAUDE_CODE = "claude_code"
    OPENAI = "openai"


class SessionParser(Protocol):
    """An incremental parser of one input file."""

    path: str
    skipped_entries: int
    duplicate_entries: int
    good_lines: int

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


def _looks_openai(line: Line) -> bool:
    try:
        first = orjson.loads(line.data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(first, dict) and isinstance(first.get("messages"), list)


def make_parser(
    fmt: InputFormat,
    path: str,
    first: Line,
    *,
    classifier: Classifier,
    limits: Limits,
    meta: AgentMeta | None,
    detector: ErrorDetector | None = None,
) -> SessionParser:
    """The parser for ``path``; with ``auto``, the first line decides."""
    if fmt is InputFormat.OPENAI or (fmt is InputFormat.AUTO and _looks_openai(first)):
        return OpenAIJsonlParser(path, classifier, limits, detector)
    return ClaudeCodeParser(path, classifier, limits, meta)
