"""OpenHands event streams → traces.

Knows the OpenHands format and nothing else. Three layouts hold the same events:

- an event list (a JSON array: ``trajs/*.json``, a session exported from the UI);
- an evaluation record (``output.jsonl``: one run per line, its events in ``history``);
- a session folder (``~/.openhands/sessions/<id>/events/<n>.json``, one event per file),
  which discovery turns into one event per line.

An event is an *action* (``action``: ``run``, ``edit``, ``message``, ...) or an *observation*
(``observation``) that answers the action whose ``id`` is its ``cause``. Agent actions are
tool calls; their id is ``tool_call_metadata.tool_call_id`` when the model made one, else the
event's ``id``. Old (2024) records have flat events without ids: an observation answers the
action just before it.

A result failed when: the observation is ``error``; an editor's ``content`` starts with
``ERROR:``; the command's exit code (``extras.metadata.exit_code``, or ``exit_code`` in old
events) is neither 0 nor -1 (-1: still running or timed out, not a failure by itself);
``success`` is false without an exit code, or ``extras.error`` is true (the browser); or the
old ``agentskills`` editor rejected an edit (its linter, or no exact match).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tracehint._ingest._builder import Block, ResultIn, TraceBuilder, call_in, tool_call
from tracehint._ingest._document import Outcome, as_int, as_str, text_of
from tracehint._ingest._files import open_regular
from tracehint._kinds import InputFormat
from tracehint._longstr import join, strip
from tracehint._records import InputIssue

if TYPE_CHECKING:
    from tracehint._ingest._document import ReadContext

__all__ = ["FORMAT", "is_event", "is_record", "read_event_folder", "read_openhands"]

FORMAT = InputFormat.OPENHANDS

_EVENT_FILE = re.compile(r"\d+\.json")
# Actions that are the runtime's bookkeeping, not the model's doing.
_QUIET_ACTIONS = frozenset({"recall", "change_agent_state", "null", "condensation", "pause"})
# Observations that answer no tool call.
_QUIET_OBSERVATIONS = frozenset({"agent_state_changed", "recall", "null", "condensation"})
# ``args`` keys that are OpenHands' own, not the model's arguments.
_RUNTIME_ARGS = frozenset(
    {
        "thought",
        "is_input",
        "blocking",
        "is_static",
        "cwd",
        "hidden",
        "confirmation_state",
        "security_risk",
        "kernel_init_code",
        "include_extra",
        "impl_source",
        "keep_prompt",
        "is_confirmed",
        "action_risk",
        "wait_for_response",
        "image_urls",
        "file_urls",
        "action",
    }
)
# Old agentskills editor messages that mean the edit did not happen.
_OLD_EDITOR_FAILURES = (
    "Your proposed edit has introduced new syntax error(s)",
    "[No exact match found in",
    "[Error editing file",
)


def is_event(value: object) -> bool:
    """Whether ``value`` looks like one OpenHands event (not a chat message that names one)."""
    return (
        isinstance(value, dict)
        and ("action" in value or "observation" in value)
        and ("source" in value or "cause" in value or "content" in value or "args" in value)
        and "role" not in value
    )


_EVENT_KEYS = ("history", "trajectory", "events")
"""Where a record keeps its events: evaluation ``history``, a UI export's ``trajectory``, an
API page's ``events``."""


def _events_of(value: dict[str, Any]) -> list[Any] | None:
    history = value.get("history")
    if (
        isinstance(history, list)
        and ("instance_id" in value or "instruction" in value or "metrics" in value)
        and "trajectory" not in value
    ):
        return history
    for key in _EVENT_KEYS:
        events = value.get(key)
        if isinstance(events, list) and any(is_event(e) for e in events[:20]):
            return events
    return None


def is_record(value: object) -> bool:
    """Whether ``value`` holds one run's events.

    That is an evaluation record (``history``), a UI trajectory export (``trajectory``) or an
    API page (``events``).
    """
    return isinstance(value, dict) and _events_of(value) is not None


def read_openhands(value: object, context: ReadContext) -> Outcome:
    """Read an event list, an evaluation record, or a single event."""
    outcome = Outcome()
    if isinstance(value, list):
        _read_events(value, context.default_id(), None, context, outcome)
    elif is_record(value):
        record: dict[str, Any] = value  # type: ignore[assignment]
        run = as_str(record.get("instance_id"))
        trace_id = run or context.default_id()
        events = _events_of(record) or []
        builder = _read_events(events, trace_id, run, context, outcome, keep=True)
        error = record.get("error")
        if isinstance(error, str) and error and error != "None":
            builder.add_system_text(f"[run ended with an error] {error}", context=False)
        outcome.add(builder)
    elif is_event(value):
        _read_events([value], context.default_id(), None, context, outcome)
    else:
        outcome.problems.append(
            "expected OpenHands events (a list), an evaluation record with 'history', or an event"
        )
    return outcome


@dataclass(slots=True)
class _Stream:
    """One event stream being read into a trace."""

    builder: TraceBuilder
    context: ReadContext
    outcome: Outcome
    calls: dict[str, str] = field(default_factory=dict)
    """Action event id → tool call id."""
    last_call: str | None = None
    """The latest action's call still unanswered (old layout: observations follow it)."""
    spoke: set[str] = field(default_factory=set)
    """Model responses whose text is already in the trace."""
    users: int = 0


def _read_events(
    events: list[Any],
    trace_id: str,
    run: str | None,
    context: ReadContext,
    outcome: Outcome,
    *,
    keep: bool = False,
) -> TraceBuilder:
    stream = _Stream(context.builder(trace_id, session_id=run), context, outcome)
    for index, raw in enumerate(_flatten(events)):
        if not isinstance(raw, dict):
            outcome.problems.append(f"record {index}: event is {type(raw).__name__}, not an object")
            continue
        if "action" in raw:
            problem = _action(stream, raw, index)
        elif "observation" in raw:
            problem = _observation(stream, raw, index)
        else:
            outcome.skipped += 1
            problem = None
        if problem is not None:
            outcome.problems.append(f"record {index}: {problem}")
    if not keep:
        outcome.add(stream.builder)
    return stream.builder


def _flatten(events: list[Any]) -> list[Any]:
    """Early evaluation records hold ``[action, observation]`` pairs: make them one list."""
    out: list[Any] = []
    for event in events:
        if isinstance(event, list) and all(isinstance(x, dict) for x in event):
            out.extend(event)
        else:
            out.append(event)
    return out


def _event_id(event: dict[str, Any]) -> str | None:
    found = event.get("id")
    return str(found) if isinstance(found, (int, str)) and not isinstance(found, bool) else None


def _metadata(event: dict[str, Any]) -> dict[str, Any]:
    meta = event.get("tool_call_metadata")
    return meta if isinstance(meta, dict) else {}


def _model_message(meta: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The model response's id and its assistant message, when OpenHands kept them."""
    response = meta.get("model_response")
    if not isinstance(response, dict):
        return None, {}
    response_id = as_str(response.get("id"))
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return response_id, {}
    message = choices[0].get("message")
    return response_id, message if isinstance(message, dict) else {}


def _action(  # noqa: C901 -- one dispatch over action kinds, kept whole
    stream: _Stream, event: dict[str, Any], index: int
) -> str | None:
    kind = event.get("action")
    if not isinstance(kind, str):
        return "'action' is not a string"
    source = event.get("source")
    args = event.get("args")
    args = args if isinstance(args, dict) else {k: v for k, v in event.items() if k != "action"}
    if kind in _QUIET_ACTIONS or source == "environment":
        stream.outcome.skipped += 1
        return None
    if kind == "message":
        text = text_of(args.get("content")) or text_of(event.get("message"))
        to_user = source == "user" or (source is None and args.get("wait_for_response") is not True)
        if to_user:
            stream.builder.add_user_text(text)
            stream.users += 1
        else:
            stream.builder.add_assistant(None, [text])
        return None
    if kind == "system":
        stream.builder.add_system_text(
            text_of(args.get("content")) or text_of(event.get("message"))
        )
        return None
    if source == "user":
        stream.outcome.skipped += 1
        return None
    meta = _metadata(event)
    call_id = as_str(meta.get("tool_call_id")) or _event_id(event) or str(index)
    name = as_str(meta.get("function_name")) or kind
    response_id, message = _model_message(meta)
    parts: list[Block] = []
    thought = text_of(message.get("content")) if message else ""
    if not thought:
        thought = text_of(args.get("thought"))
    if thought and (response_id is None or response_id not in stream.spoke):
        parts.append(thought)
    if response_id is not None:
        stream.spoke.add(response_id)
    arguments = _arguments(message, call_id) or {
        k: v for k, v in args.items() if k not in _RUNTIME_ARGS
    }
    parts.append(call_in(call_id, name, arguments, stream.context.limits))
    stream.builder.add_assistant(response_id, parts)
    action_id = _event_id(event)
    if action_id is not None:
        stream.calls[action_id] = call_id
    stream.last_call = call_id
    return None


def _arguments(message: dict[str, Any], call_id: str) -> object:
    """The model's own arguments for ``call_id`` in its response, as it wrote them."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return None
    for call in calls:
        if isinstance(call, dict) and call.get("id") == call_id:
            function = call.get("function")
            return function.get("arguments") if isinstance(function, dict) else None
    return None


def _observation(stream: _Stream, event: dict[str, Any], index: int) -> str | None:
    kind = event.get("observation")
    if not isinstance(kind, str):
        return "'observation' is not a string"
    if kind in _QUIET_OBSERVATIONS:
        stream.outcome.skipped += 1
        return None
    call_id = _answered_call(stream, event)
    if call_id is None:
        if kind != "error":
            stream.outcome.skipped += 1
            return None
        # The runtime refused a call it could not even turn into an action (bad arguments):
        # the model's mistake all the same, answered under the observation's own id.
        call_id = _event_id(event) or str(index)
        call = tool_call(call_id, "invalid_tool_call", {}, stream.context.limits)
        stream.builder.register_call(call)
    stream.last_call = None
    stream.builder.add_tool_results([_result(call_id, kind, event)])
    return None


def _answered_call(stream: _Stream, event: dict[str, Any]) -> str | None:
    cause = event.get("cause")
    if cause is not None and not isinstance(cause, bool):
        found = stream.calls.get(str(cause))
        if found is not None:
            return found
    meta_id = as_str(_metadata(event).get("tool_call_id"))
    if meta_id is not None and meta_id in stream.calls.values():
        return meta_id
    if cause is None:
        return stream.last_call  # old layouts: the action just before, still unanswered
    return None


def _exit_code(event: dict[str, Any]) -> int | None:
    extras = event.get("extras")
    if isinstance(extras, dict):
        metadata = extras.get("metadata")
        if isinstance(metadata, dict) and "exit_code" in metadata:
            return as_int(metadata.get("exit_code"))
        if "exit_code" in extras:
            return as_int(extras.get("exit_code"))
    return as_int(event.get("exit_code"))


def _result(  # noqa: PLR0911 -- one answer per error signal
    call_id: str, kind: str, event: dict[str, Any]
) -> ResultIn:
    content = text_of(event.get("content"))
    if not content:
        content = text_of(event.get("message"))
    exit_code = _exit_code(event)
    if kind == "error":
        return ResultIn(call_id, content, is_error=True, error_text=content)
    if content.startswith("ERROR:"):
        return ResultIn(call_id, content, is_error=True, error_text=strip(content, len("ERROR:")))
    if exit_code is not None and exit_code not in {0, -1}:
        # What the agent saw: OpenHands ends a command's output with its exit code.
        text = join((content, f"\n[The command completed with exit code {exit_code}.]"))
        return ResultIn(call_id, text, is_error=True, exit_code=exit_code)
    extras = event.get("extras")
    flagged = isinstance(extras, dict) and extras.get("error") is True  # browser observations
    if flagged or (exit_code is None and event.get("success") is False):
        return ResultIn(call_id, content, is_error=True)
    if any(marker in content for marker in _OLD_EDITOR_FAILURES):
        return ResultIn(call_id, content, is_error=True, error_text=strip(content))
    if kind == "user_rejected":
        return ResultIn(call_id, content or "The user rejected this action.", is_error=True)
    return ResultIn(call_id, content, is_error=False, exit_code=exit_code)


def read_event_folder(path: str) -> tuple[bytes, list[InputIssue]]:
    """A session's ``events/`` folder as JSONL, one event per line in event order (blocking).

    An event file that cannot be read or parsed is an issue naming it; the others are read.
    """
    issues: list[InputIssue] = []
    try:
        names = os.listdir(path)  # noqa: PTH208 -- str paths, in a worker thread
    except OSError as exc:
        return b"", [InputIssue(path, None, f"cannot list folder: {exc.strerror or exc}")]
    numbered = sorted((int(name[:-5]), name) for name in names if _EVENT_FILE.fullmatch(name))
    lines: list[bytes] = []
    for _, name in numbered:
        file = os.path.join(path, name)  # noqa: PTH118 -- str paths
        try:
            with open_regular(file) as handle:  # small files, in a worker thread
                data = handle.read()
        except OSError as exc:
            issues.append(InputIssue(file, None, f"cannot read file: {exc.strerror or exc}"))
            continue
        try:
            lines.append(orjson.dumps(orjson.loads(data)))
        except orjson.JSONDecodeError as exc:
            issues.append(InputIssue(file, None, f"invalid JSON ({exc})"))
    return b"\n".join(lines), issues
