"""OpenAI-style chat messages (what rollout workers hold) → a trace.

``role`` is ``system``, ``user``, ``assistant`` or ``tool``; assistants carry ``tool_calls``
(``{id, function: {name, arguments}}``); ``tool`` messages answer them by ``tool_call_id``.
The format has no error flag, so a tool message is a failure when it says so explicitly
(``is_error: true`` or ``status: "error"``) or when its text starts the way tool errors do
(``ErrorDetector``); pass your own detector to change that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from tracehint._exceptions import InputError
from tracehint._ingest._builder import Block, ResultIn, TraceBuilder, call_in
from tracehint._jsonparts import loads as loads_json
from tracehint._kinds import InputFormat
from tracehint._longstr import join
from tracehint._records import InputIssue, TraceSource

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tracehint._classify import Classifier
    from tracehint._ingest._lines import Line
    from tracehint._limits import Limits
    from tracehint._records import Trace

__all__ = ["FORMAT", "ErrorDetector", "OpenAIJsonlParser", "parse_openai_messages"]

FORMAT = InputFormat.OPENAI
"""``source.format`` of these traces: the same word as ``--format openai``."""

_LOOKS_FAILED = re.compile(
    r"\A\s*(?:<tool_use_error>|error\b|\[error\]|exception\b|fatal\b|"
    r"traceback \(most recent call last\)|exit code:? [1-9]\d*|"
    r"[^\n]{0,200}\b(?:command not found|no such file or directory|permission denied)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ErrorDetector:
    """Decides whether a ``tool`` message reports a failure."""

    pattern: re.Pattern[str] = _LOOKS_FAILED

    def is_error(self, message: Mapping[str, Any], text: str) -> bool:
        """Explicit flags win; otherwise the text's opening decides."""
        if message.get("is_error") is True or message.get("status") == "error":
            return True
        if message.get("is_error") is False or message.get("status") == "success":
            return False
        return self.pattern.match(text) is not None


def _text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, dict):
                kind = part.get("type")
                if kind == "text" and isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif kind in {"image_url", "image", "input_image"}:
                    parts.append("[image]")
                else:
                    parts.append(f"[{kind} part]")
            else:
                parts.append(str(part))
        return join(parts, "\n")
    return str(content)


def parse_openai_messages(  # noqa: C901 -- one dispatch over roles, kept whole
    messages: Sequence[Mapping[str, Any]],
    *,
    trace_id: str,
    classifier: Classifier,
    limits: Limits,
    source: TraceSource | None = None,
    detector: ErrorDetector | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> Trace:
    """Build a trace from OpenAI-style messages; raise ``InputError`` naming a bad message.

    ``tools``: the tool definitions the agent was given (``Trace.tools``), kept as they are.
    """
    detector = detector or ErrorDetector()
    builder = TraceBuilder(
        trace_id,
        source or TraceSource(path="<memory>", format=FORMAT),
        classifier,
        limits,
    )
    builder.tools = tuple(dict(tool) for tool in tools or () if isinstance(tool, dict))
    pending: list[ResultIn] = []
    pending_native: list[Mapping[str, Any]] = []

    def flush_results() -> None:
        if pending:
            builder.add_tool_results(list(pending), native=list(pending_native))
            pending.clear()
            pending_native.clear()

    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InputError(f"message {index} is not an object")
        role = message.get("role")
        text = _text(message.get("content"))
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InputError(f"message {index} (tool) has no string 'tool_call_id'")
            pending.append(ResultIn(call_id, text, detector.is_error(message, text)))
            pending_native.append(message)
            continue
        flush_results()
        if role == "assistant":
            parts: list[Block] = [text] if text else []
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise InputError(f"message {index} (assistant) has 'tool_calls' that is not a list")
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                call_id = call.get("id") if isinstance(call, dict) else None
                name = function.get("name") if isinstance(function, dict) else None
                if not isinstance(call_id, str) or not isinstance(name, str):
                    raise InputError(
                        f"message {index} has a tool call without 'id' and 'function.name'"
                    )
                parts.append(call_in(call_id, name, function.get("arguments"), limits))  # type: ignore[union-attr]
            builder.add_assistant(None, parts, native=message)
        elif role == "user":
            builder.add_user_text(text, native=message)
        elif role in {"system", "developer"}:
            builder.add_system_text(text, native=message)
        else:
            raise InputError(f"message {index} has unknown role {role!r}")
    flush_results()
    return builder.build()


class OpenAIJsonlParser:
    """Incremental parser for a JSONL file of ``{"messages": [...]}`` records, one trace a line.

    The trace id is the record's ``trace_id`` or ``id`` when it has one, else ``<file>:<line>``.
    """

    def __init__(
        self,
        path: str,
        classifier: Classifier,
        limits: Limits,
        detector: ErrorDetector | None = None,
    ) -> None:
        self.path = path
        self.classifier = classifier
        self.limits = limits
        self.detector = detector or ErrorDetector()
        self.skipped_entries = 0
        self.duplicate_entries = 0
        self.good_lines = 0
        self.orphan_results = 0
        self._ready: list[Trace] = []

    def feed(self, line: Line) -> InputIssue | None:
        """Parse one record; return an issue if it is malformed."""
        try:
            record = loads_json(line.data)
        except orjson.JSONDecodeError as exc:
            return InputIssue(self.path, line.number, f"invalid JSON ({exc})")
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
            return InputIssue(self.path, line.number, "expected an object with a 'messages' list")
        given = record.get("trace_id", record.get("id"))
        trace_id = str(given) if isinstance(given, (str, int)) else f"{self.path}:{line.number}"
        source = TraceSource(path=self.path, format=FORMAT)
        try:
            trace = parse_openai_messages(
                record["messages"],
                trace_id=trace_id,
                classifier=self.classifier,
                limits=self.limits,
                source=source,
                detector=self.detector,
                tools=record["tools"] if isinstance(record.get("tools"), list) else None,
            )
        except InputError as exc:
            return InputIssue(self.path, line.number, str(exc))
        self.good_lines += 1
        self._ready.append(trace)
        return None

    def drain(self) -> list[Trace]:
        """Traces completed so far (each record is complete on its own line)."""
        ready, self._ready = self._ready, []
        return ready

    def finish(self) -> list[Trace]:
        """The remaining traces."""
        return self.drain()
