"""Gemini CLI chat sessions (``~/.gemini/tmp/<hash>/chats/session-*.json``) → a trace.

Knows the Gemini CLI format and nothing else. A session is one JSON object (``sessionId``,
``projectHash``, ``startTime``, ``messages``); a JSONL session has that header on its first
line and one message per line after it (a message written again, by ``id``, replaces the
earlier one). Messages are ``user``, ``gemini`` (``content``, ``thoughts``, ``toolCalls``),
``info`` and ``error``. A tool call carries its own result: ``id``, ``name``, ``args``,
``status``, ``result`` (function responses) and ``resultDisplay``.

A saved chat (``/chat save``: ``checkpoint-<tag>.json``) is the raw Gemini API history instead,
a list of ``{role, parts}`` contents whose ``functionCall`` parts are answered by
``functionResponse`` parts (by ``id``, else in order by name); there a response failed when it
holds an ``error``.

A result failed when its call's ``status`` is ``error``; ``cancelled`` is an interruption, not
a mistake. An ``error`` message (the session failed, not a tool) is kept as a system note.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tracehint._ingest._builder import Block, ResultIn, Thinking, call_in
from tracehint._ingest._document import Outcome, as_str, text_of
from tracehint._kinds import InputFormat
from tracehint._longstr import join

if TYPE_CHECKING:
    from tracehint._ingest._builder import TraceBuilder
    from tracehint._ingest._document import ReadContext

__all__ = ["FORMAT", "is_contents", "is_header", "is_session", "read_gemini_cli"]

FORMAT = InputFormat.GEMINI_CLI


def is_session(value: object) -> bool:
    """Whether ``value`` looks like a Gemini CLI session (or its JSONL header)."""
    return (
        isinstance(value, dict)
        and "sessionId" in value
        and (isinstance(value.get("messages"), list) or "projectHash" in value)
    )


def is_header(value: object) -> bool:
    """Whether ``value`` is the first line of a JSONL session (a header without messages)."""
    return (
        isinstance(value, dict)
        and is_session(value)
        and not isinstance(value.get("messages"), list)
    )


def is_contents(value: object) -> bool:
    """Whether ``value`` is a saved chat: a list of Gemini API ``{role, parts}`` contents."""
    first = value[0] if isinstance(value, list) and value else None
    return (
        isinstance(first, dict)
        and first.get("role") in {"user", "model"}
        and isinstance(first.get("parts"), list)
    )


def _messages(value: object) -> tuple[dict[str, Any], list[Any]] | None:
    """The session header and its messages, from a session object or a JSONL record list."""
    if isinstance(value, dict):
        messages = value.get("messages")
        return (value, messages) if isinstance(messages, list) else None
    if not isinstance(value, list) or not value or not is_session(value[0]):
        return None
    header: dict[str, Any] = value[0]
    by_id: dict[str, Any] = {}
    loose: list[Any] = []
    for index, record in enumerate([*(header.get("messages") or []), *value[1:]]):
        if isinstance(record, dict) and "$set" in record:
            continue  # a header update (lastUpdated, ...)
        key = as_str(record.get("id")) if isinstance(record, dict) else None
        if key is None:
            loose.append((index, record))
        else:
            by_id[key] = (by_id[key][0] if key in by_id else index, record)
    ordered = sorted([*by_id.values(), *loose], key=lambda pair: pair[0])
    return header, [record for _, record in ordered]


def read_gemini_cli(value: object, context: ReadContext) -> Outcome:
    """Read one Gemini CLI session."""
    outcome = Outcome()
    if is_contents(value):
        return _read_contents(value, context)  # type: ignore[arg-type]
    found = _messages(value)
    if found is None:
        outcome.problems.append("expected a Gemini CLI session (an object with 'messages')")
        return outcome
    header, messages = found
    session = as_str(header.get("sessionId"))
    builder = context.builder(session or context.default_id(), session_id=session)
    for index, message in enumerate(messages):
        problem = _message(builder, message, context, outcome)
        if problem is not None:
            outcome.problems.append(f"message {index}: {problem}")
    outcome.add(builder)
    return outcome


def _message(  # noqa: C901, PLR0911 -- one dispatch over message types, kept whole
    builder: TraceBuilder, message: object, context: ReadContext, outcome: Outcome
) -> str | None:
    if not isinstance(message, dict):
        return f"message is {type(message).__name__}, not an object"
    kind = message.get("type")
    text = text_of(message.get("content"))
    if kind == "user":
        builder.add_user_text(text)
        return None
    if kind == "error":
        builder.add_system_text(f"[error] {text}", context=False)  # the CLI's, not the model's
        return None
    if kind in {"info", "warning"}:
        outcome.skipped += 1
        return None
    if kind not in {"gemini", "model", "assistant"}:
        return f"unknown message type {kind!r}"
    parts: list[Block] = []
    thoughts = message.get("thoughts")
    for thought in thoughts if isinstance(thoughts, list) else []:
        if isinstance(thought, dict):
            said = " ".join(
                x
                for x in (
                    as_str(thought.get("subject")),
                    as_str(thought.get("description")),
                    as_str(thought.get("summary")),
                )
                if x
            )
            if said:
                parts.append(Thinking(said))
    if text:
        parts.append(text)
    calls = message.get("toolCalls")
    calls = calls if isinstance(calls, list) else []
    results: list[ResultIn] = []
    for call in calls:
        call_id = as_str(call.get("id")) if isinstance(call, dict) else None
        name = as_str(call.get("name")) if isinstance(call, dict) else None
        if call_id is None or name is None or not isinstance(call, dict):
            return "tool call without 'id' and 'name'"
        parts.append(call_in(call_id, name, call.get("args"), context.limits))
        results.append(_result(call_id, call))
    builder.add_assistant(as_str(message.get("id")), parts)
    if results:
        builder.add_tool_results(results)
    return None


def _response_text(result: object) -> tuple[str, str | None]:
    """``(text, error)`` of a call's ``result``: function responses, or plain text."""
    if isinstance(result, str):
        return result, None
    if not isinstance(result, list):
        return ("" if result is None else orjson.dumps(result).decode()), None
    texts: list[str] = []
    error: str | None = None
    for part in result:
        response = None
        if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
            response = part["functionResponse"].get("response")
        if isinstance(response, dict):
            error = error or as_str(response.get("error"))
            output = response.get("output", response.get("error"))
            texts.append(output if isinstance(output, str) else orjson.dumps(response).decode())
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
    return join(texts, "\n"), error


def _result(call_id: str, call: dict[str, Any]) -> ResultIn:
    text, error = _response_text(call.get("result"))
    display = call.get("resultDisplay")
    if not text and isinstance(display, str):
        text = display
    status = call.get("status")
    if status == "error":
        shown = error or (display if isinstance(display, str) else None) or text
        return ResultIn(call_id, text or shown, is_error=True, error_text=shown)
    if status == "cancelled":
        return ResultIn(
            call_id, text or "[cancelled: interrupted by user]", is_error=True, interrupted=True
        )
    return ResultIn(call_id, text, is_error=False)


def _read_contents(contents: list[Any], context: ReadContext) -> Outcome:
    """Read a saved chat: Gemini API contents, calls answered by function responses."""
    outcome = Outcome()
    builder = context.builder(context.default_id())
    waiting: dict[str, list[str]] = {}  # tool name → ids of its unanswered calls, in order
    for index, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            outcome.problems.append(f"content {index}: no 'parts' list")
            continue
        parts = [p for p in parts if isinstance(p, dict)]
        if content.get("role") == "model":
            builder.add_assistant(None, _model_parts(parts, index, waiting, context))
        else:
            _user_parts(builder, parts, waiting)
    outcome.add(builder)
    return outcome


def _model_parts(
    parts: list[dict[str, Any]],
    index: int,
    waiting: dict[str, list[str]],
    context: ReadContext,
) -> list[Block]:
    said: list[Block] = []
    for number, part in enumerate(parts):
        call = part.get("functionCall")
        if isinstance(call, dict) and as_str(call.get("name")) is not None:
            name = str(call["name"])
            call_id = as_str(call.get("id")) or f"{name}-{index}-{number}"
            waiting.setdefault(name, []).append(call_id)
            said.append(call_in(call_id, name, call.get("args"), context.limits))
        elif isinstance(part.get("text"), str):
            thought = part.get("thought") is True
            said.append(Thinking(part["text"]) if thought else part["text"])
    return said


def _user_parts(
    builder: TraceBuilder, parts: list[dict[str, Any]], waiting: dict[str, list[str]]
) -> None:
    results: list[ResultIn] = []
    texts: list[str] = []
    for part in parts:
        response = part.get("functionResponse")
        if isinstance(response, dict):
            name = as_str(response.get("name")) or "?"
            queue = waiting.get(name) or []
            call_id = as_str(response.get("id")) or (queue[0] if queue else name)
            if call_id in queue:
                queue.remove(call_id)
            text, error = _response_text([part])
            results.append(ResultIn(call_id, text, error is not None, error_text=error))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    if results:
        builder.add_tool_results(results, texts)
    elif texts:
        builder.add_user_text(join(texts, "\n"))
