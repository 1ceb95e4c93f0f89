"""Anthropic Messages API conversations (rollouts saved as ``{"messages": [...]}``) → traces.

Knows the Messages API shape and nothing else: ``system`` (a string or text blocks) and
``messages`` whose ``content`` is a string or a list of blocks. The assistant's ``tool_use``
blocks (``id``, ``name``, ``input``) are answered by ``tool_result`` blocks (``tool_use_id``,
``content``, ``is_error``) in the next user message. A result failed when ``is_error`` is
true. One trace per record, named by the record's ``trace_id`` or ``id`` when it has one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracehint._ingest._builder import Block, ResultIn, Thinking, call_in, chat_tools
from tracehint._ingest._document import Outcome, as_str, text_of
from tracehint._kinds import InputFormat
from tracehint._longstr import join

if TYPE_CHECKING:
    from tracehint._ingest._builder import TraceBuilder
    from tracehint._ingest._document import ReadContext

__all__ = ["FORMAT", "is_record", "read_anthropic"]

FORMAT = InputFormat.ANTHROPIC

_TOOL_BLOCKS = frozenset({"tool_use", "tool_result", "server_tool_use"})


def is_record(value: object) -> bool:
    """Whether ``value`` is a ``{"messages": [...]}`` record with Messages API tool blocks."""
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        return False
    for message in value["messages"][:50]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") in _TOOL_BLOCKS for block in content
        ):
            return True
    return False


def read_anthropic(value: object, context: ReadContext) -> Outcome:
    """Read one Messages API conversation."""
    outcome = Outcome()
    if not isinstance(value, dict) or not isinstance(value.get("messages"), list):
        outcome.problems.append("expected an object with a 'messages' list")
        return outcome
    given = value.get("trace_id", value.get("id"))
    trace_id = str(given) if isinstance(given, (str, int)) else context.default_id()
    builder = context.builder(trace_id)
    builder.tools = chat_tools(value.get("tools"))
    system = value.get("system")
    if system:
        builder.add_system_text(text_of(system))
    for index, message in enumerate(value["messages"]):
        problem = _message(builder, message, context)
        if problem is not None:
            outcome.problems.append(f"message {index}: {problem}")
    outcome.add(builder)
    return outcome


def _message(builder: TraceBuilder, message: object, context: ReadContext) -> str | None:
    if not isinstance(message, dict):
        return f"message is {type(message).__name__}, not an object"
    role = message.get("role")
    content = message.get("content")
    blocks: list[Any] = content if isinstance(content, list) else [content]
    if role == "user":
        return _user(builder, blocks)
    if role == "assistant":
        return _assistant(builder, blocks, context)
    if role == "system":
        builder.add_system_text(text_of(content))
        return None
    return f"unknown role {role!r}"


def _user(builder: TraceBuilder, blocks: list[Any]) -> str | None:
    results: list[ResultIn] = []
    texts: list[str] = []
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            use_id = as_str(block.get("tool_use_id"))
            if use_id is None:
                return "tool_result block has no string 'tool_use_id'"
            text = text_of(block.get("content"))
            failed = block.get("is_error") is True
            results.append(ResultIn(use_id, text, failed, error_text=text if failed else None))
        else:
            texts.append(text_of([block]) if isinstance(block, dict) else text_of(block))
    if results:
        builder.add_tool_results(results, texts)
    else:
        builder.add_user_text(join(texts, "\n"))
    return None


def _assistant(builder: TraceBuilder, blocks: list[Any], context: ReadContext) -> str | None:
    parts: list[Block] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if isinstance(block, dict) and kind in {"tool_use", "server_tool_use"}:
            use_id, name = as_str(block.get("id")), as_str(block.get("name"))
            if use_id is None or name is None:
                return "tool_use block has no string 'id' and 'name'"
            parts.append(call_in(use_id, name, block.get("input"), context.limits))
        elif isinstance(block, dict) and kind == "thinking":
            thinking = as_str(block.get("thinking"))
            if thinking is not None:
                parts.append(Thinking(thinking))
        elif kind != "redacted_thinking":
            parts.append(text_of([block]) if isinstance(block, dict) else text_of(block))
    builder.add_assistant(None, parts)
    return None
