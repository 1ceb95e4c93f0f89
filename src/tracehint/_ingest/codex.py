"""OpenAI Codex CLI rollout JSONL (``~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl``) → a trace.

Knows the Codex format and nothing else. Each line is ``{timestamp, type, payload}``:
``session_meta`` (the thread's id; a sub-agent's names its parent thread), ``turn_context``,
``response_item`` (what the model saw and said: ``message``, ``reasoning``, ``function_call``
/ ``custom_tool_call`` answered by ``*_output`` with the same ``call_id``), ``event_msg``
(what the UI saw: ``exec_command_end``, ``patch_apply_end``, ``turn_aborted``, and echoes of
the messages, skipped) and ``compacted``. Rollouts from before 2025-06 have a header line
``{id, timestamp, instructions}`` and the response items as lines themselves.

Codex has no error flag. A result failed when its output starts ``Exit code: N`` (or its
header says ``Process exited with code N``) with N ≠ 0,
when an older JSON output's ``metadata.exit_code`` is ≠ 0, when ``apply_patch`` says its
verification failed, or when the matching ``exec_command_end`` / ``patch_apply_end`` event says
so. A ``turn_aborted`` event ends the turn's unanswered calls as interrupted (not a mistake).
A sub-agent (``spawn_agent``) writes its own rollout file, read as its own trace.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tracehint._ingest._builder import Block, ResultIn, Thinking, TraceBuilder, call_in
from tracehint._ingest._document import as_int, as_str, text_of
from tracehint._jsonparts import loads as loads_json
from tracehint._jsonparts import loads_text
from tracehint._kinds import InputFormat
from tracehint._longstr import strip
from tracehint._records import InputIssue, TraceSource

if TYPE_CHECKING:
    from tracehint._classify import Classifier
    from tracehint._ingest._lines import Line
    from tracehint._limits import Limits
    from tracehint._records import Trace

__all__ = ["FORMAT", "CodexParser", "is_record"]

FORMAT = InputFormat.CODEX

_LINE_TYPES = frozenset({"session_meta", "turn_context", "response_item", "event_msg", "compacted"})
_ITEM_TYPES = frozenset(
    {
        "message",
        "reasoning",
        "function_call",
        "function_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "local_shell_call",
        "web_search_call",
    }
)
_CALLS = frozenset({"function_call", "custom_tool_call", "local_shell_call"})
_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output"})
_EXIT_HEADER = re.compile(r"\A\s*Exit code:\s*(-?\d+)")
# Unified exec (``exec_command``): a header of lines, one of them the exit code.
_PROCESS_EXIT = re.compile(r"^Process exited with code (-?\d+)\s*$", re.MULTILINE)
_PATCH_FAILED = "apply_patch verification failed"
# User messages Codex writes itself (context it gives the model), not the user's words.
_INJECTED = ("<environment_context>", "<user_instructions>", "# AGENTS.md instructions")


def is_record(value: object) -> bool:
    """Whether ``value`` looks like a line of a Codex rollout (new or old layout)."""
    if not isinstance(value, dict):
        return False
    if value.get("type") in _LINE_TYPES and isinstance(value.get("payload"), dict):
        return True
    # The header line of a rollout from before mid-2025.
    return (
        "type" not in value and "instructions" in value and "id" in value and ("timestamp" in value)
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What an ``event_msg`` said about a call."""

    exit_code: int | None = None
    failed: bool = False
    stdout: str | None = None
    stderr: str | None = None


@dataclass(slots=True)
class CodexParser:
    """Incremental parser for one Codex rollout file (one trace)."""

    path: str
    classifier: Classifier
    limits: Limits
    format: InputFormat = FORMAT
    """``source.format`` of the trace (``openai_responses`` reads the same items)."""
    trace_id: str | None = None
    """The trace's id; by default the thread id of ``session_meta``, else the file name."""
    skipped_entries: int = 0
    duplicate_entries: int = 0
    good_lines: int = 0
    _builder: TraceBuilder | None = None
    _thread: str | None = None
    _parent: str | None = None
    _nickname: str | None = None
    _role: str | None = None
    _events: dict[str, _Outcome] = field(default_factory=dict)
    _open_calls: dict[str, None] = field(default_factory=dict)
    _speaking: bool = False
    _messages: int = 0

    @property
    def orphan_results(self) -> int:
        """Outputs that matched no call."""
        return self._builder.orphan_results if self._builder is not None else 0

    def feed(self, line: Line) -> InputIssue | None:
        """Parse one line; return an issue when it is malformed."""
        try:
            entry = loads_json(line.data)
        except orjson.JSONDecodeError as exc:
            return InputIssue(self.path, line.number, f"invalid JSON ({exc})")
        if not isinstance(entry, dict):
            return InputIssue(
                self.path, line.number, f"expected a JSON object, got {type(entry).__name__}"
            )
        reason = self._entry(entry)
        if reason is not None:
            return InputIssue(self.path, line.number, reason)
        self.good_lines += 1
        return None

    def _entry(self, entry: dict[str, Any]) -> str | None:  # noqa: C901, PLR0911 -- one per line type
        kind = entry.get("type")
        payload = entry.get("payload")
        if kind in _LINE_TYPES:
            if not isinstance(payload, dict):
                return f"'{kind}' line has no 'payload' object"
            if kind == "session_meta":
                self._meta(payload)
                return None
            if kind == "response_item":
                return self._item(payload)
            if kind == "event_msg":
                return self._event(payload)
            if kind == "compacted":
                summary = as_str(payload.get("message"))
                if summary is not None:
                    self._trace().add_user_text(summary, compact_summary=True)
                    self._speaking = False
                return None
            self.skipped_entries += 1
            return None
        if kind in _ITEM_TYPES:
            return self._item(entry)  # old layout: the item is the line
        if "instructions" in entry and "id" in entry and kind is None:
            self._meta(entry)
            return None
        if isinstance(kind, str) or "record_type" in entry:
            self.skipped_entries += 1
            return None
        return "line has no 'type'"

    def _meta(self, payload: dict[str, Any]) -> None:
        self._thread = self._thread or as_str(payload.get("id"))
        source = payload.get("source")
        spawn = None
        if isinstance(source, dict) and isinstance(source.get("subagent"), dict):
            spawn = source["subagent"].get("thread_spawn")
        spawn = spawn if isinstance(spawn, dict) else {}
        self._parent = as_str(payload.get("parent_thread_id")) or as_str(
            spawn.get("parent_thread_id")
        )
        self._nickname = as_str(payload.get("agent_nickname")) or as_str(
            spawn.get("agent_nickname")
        )
        self._role = as_str(payload.get("agent_role")) or as_str(spawn.get("agent_role"))

    def _trace(self) -> TraceBuilder:
        if self._builder is None:
            stem = os.path.basename(self.path).removesuffix(".jsonl")  # noqa: PTH119 -- str paths
            thread = self.trace_id or self._thread or stem
            source = TraceSource(
                path=self.path,
                format=self.format,
                session_id=self._parent or thread,
                agent_id=thread if self._parent else None,
                agent_type=self._role,
                description=self._nickname,
            )
            self._builder = TraceBuilder(thread, source, self.classifier, self.limits)
        return self._builder

    # -- response items -------------------------------------------------------------------

    def read_item(self, item: dict[str, Any]) -> str | None:
        """Read one Responses API item (``message``, ``function_call``, ...); a problem or None."""
        if "type" not in item and "role" in item:
            item = {**item, "type": "message"}
        return self._item(item)

    def system(self, text: str) -> None:
        """Add the system prompt (the Responses API's ``instructions``)."""
        self._trace().add_system_text(text)

    def _item(self, item: dict[str, Any]) -> str | None:
        kind = item.get("type")
        if kind == "message":
            return self._message(item)
        if kind == "reasoning":
            summary = item.get("summary")
            text = text_of(summary) if isinstance(summary, list) else ""
            if text and not text.isspace():
                self._say([Thinking(text)])
            else:
                self.skipped_entries += 1
            return None
        if kind in _CALLS:
            return self._call(item)
        if kind in _OUTPUTS:
            return self._output(item)
        if kind == "web_search_call":
            action = item.get("action")
            self._say([f"[WEB_SEARCH] {orjson.dumps(action).decode() if action else ''}"])
            return None
        self.skipped_entries += 1
        return None

    def _say(self, parts: list[Block]) -> None:
        """Add parts of the model's current response (items until the next input are one)."""
        if not self._speaking:
            self._messages += 1
            self._speaking = True
        self._trace().add_assistant(f"response-{self._messages}", parts)

    def _message(self, item: dict[str, Any]) -> str | None:
        role = item.get("role")
        text = text_of(item.get("content"))
        if role == "assistant":
            self._say([text])
            return None
        if role == "user":
            self._speaking = False
            injected = text.lstrip().startswith(_INJECTED)
            self._trace().add_user_text(text, meta=injected)
            return None
        if role in {"developer", "system"}:
            self._speaking = False
            self._trace().add_system_text(text)
            return None
        return f"message has unknown role {role!r}"

    def _call(self, item: dict[str, Any]) -> str | None:
        call_id = as_str(item.get("call_id")) or as_str(item.get("id"))
        kind = item.get("type")
        name = as_str(item.get("name")) or ("shell" if kind == "local_shell_call" else None)
        if call_id is None or name is None:
            return f"'{kind}' has no string 'call_id' and 'name'"
        arguments: object
        if kind == "function_call":
            arguments = item.get("arguments")  # the JSON string as the model wrote it
        elif kind == "custom_tool_call":
            arguments = {"input": item.get("input")}
        else:
            arguments = item.get("action")
        self._say([call_in(call_id, name, arguments, self.limits)])
        self._open_calls[call_id] = None
        return None

    def _output(self, item: dict[str, Any]) -> str | None:
        call_id = as_str(item.get("call_id"))
        if call_id is None:
            return f"'{item.get('type')}' has no string 'call_id'"
        self._speaking = False
        self._open_calls.pop(call_id, None)
        self._trace().add_tool_results([self._result(call_id, item.get("output"))])
        return None

    def _result(self, call_id: str, output: object) -> ResultIn:
        text, exit_code, success = _unwrap(output)
        event = self._events.pop(call_id, None)
        if exit_code is None and event is not None:
            exit_code = event.exit_code
        failed = (
            (exit_code is not None and exit_code != 0)
            or success is False
            or _PATCH_FAILED in text[:500]
            or (event is not None and event.failed)
        )
        error_text = strip(text) if _PATCH_FAILED in text[:500] else None
        return ResultIn(
            call_id,
            text,
            is_error=failed,
            exit_code=exit_code,
            stdout=event.stdout if event is not None else None,
            stderr=event.stderr if event is not None else None,
            error_text=error_text,
        )

    # -- UI events ------------------------------------------------------------------------

    def _event(self, payload: dict[str, Any]) -> str | None:
        kind = payload.get("type")
        call_id = as_str(payload.get("call_id"))
        if kind == "exec_command_end" and call_id is not None:
            self._events[call_id] = _Outcome(
                exit_code=as_int(payload.get("exit_code")),
                stdout=as_str(payload.get("stdout")),
                stderr=as_str(payload.get("stderr")),
            )
            return None
        if kind == "patch_apply_end" and call_id is not None:
            self._events[call_id] = _Outcome(
                failed=payload.get("success") is False,
                stdout=as_str(payload.get("stdout")),
                stderr=as_str(payload.get("stderr")),
            )
            return None
        if kind == "turn_aborted":
            reason = as_str(payload.get("reason")) or "interrupted"
            results = [
                ResultIn(
                    call_id,
                    f"[turn aborted: {reason}; interrupted by user]",
                    is_error=True,
                    interrupted=True,
                )
                for call_id in self._open_calls
            ]
            self._open_calls.clear()
            if results:
                self._trace().add_tool_results(results)
            self._speaking = False
            return None
        self.skipped_entries += 1
        return None

    # -- end ------------------------------------------------------------------------------

    def drain(self) -> list[Trace]:
        """Traces complete so far: none before the end of the file."""
        return []

    def finish(self) -> list[Trace]:
        """The file's trace, when it has a turn."""
        if self._builder is None or self._builder.is_empty:
            return []
        return [self._builder.build()]


def _unwrap(output: object) -> tuple[str, int | None, bool | None]:
    """``(text, exit code, success)`` of a call's output, whichever way Codex wrote it."""
    success: bool | None = None
    if isinstance(output, dict):
        found = output.get("success")
        success = found if isinstance(found, bool) else None
        output = output.get("content", output.get("output"))
    if isinstance(output, list):
        return text_of(output), None, success
    text = output if isinstance(output, str) else ("" if output is None else str(output))
    if text.startswith("{") and '"output"' in text:
        try:
            wrapped = loads_text(text)
        except orjson.JSONDecodeError:
            wrapped = None
        if isinstance(wrapped, dict) and "output" in wrapped:
            metadata = wrapped.get("metadata")
            code = as_int(metadata.get("exit_code")) if isinstance(metadata, dict) else None
            inner = wrapped.get("output")
            return (inner if isinstance(inner, str) else str(inner)), code, success
    match = _EXIT_HEADER.match(text) or _PROCESS_EXIT.search(text[:1000])
    return text, (int(match.group(1)) if match else None), success
