"""SWE-agent trajectories (``*.traj``: one JSON object per run) → a trace.

Knows the SWE-agent format and nothing else. A run holds ``trajectory`` (steps: the model's
``thought`` and ``action``, the environment's ``observation``), ``history`` (the chat the
model saw, demonstrations marked ``is_demo``) and ``info`` (``exit_status``, ``submission``).
Each step is one tool call, answered by its observation, under the id ``step-<i>`` (its index
in ``trajectory``); the system prompt and task come from the history before the first action.
A file with only ``history`` (function calling: OpenAI-style ``tool_calls``, answered by
``role: tool`` messages naming ``tool_call_ids``) is read message by message under the calls'
own ids.

SWE-agent has no error flag: a result failed when its text shows it — the edit linter's
rejection ("Your proposed edit has introduced new syntax error(s)", the file is left
unchanged), a Python traceback, ``command not found``, ``No such file``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from tracehint._ingest._builder import Block, ResultIn, call_in
from tracehint._ingest._document import Outcome, as_str, shell_failed, text_of
from tracehint._kinds import InputFormat
from tracehint._longstr import strip

if TYPE_CHECKING:
    from tracehint._ingest._builder import TraceBuilder
    from tracehint._ingest._document import ReadContext

__all__ = ["FORMAT", "is_trajectory", "read_swe_agent"]

FORMAT = InputFormat.SWE_AGENT

_LINT_REJECTED = "Your proposed edit has introduced new syntax error(s)"


def is_trajectory(value: object) -> bool:
    """Whether ``value`` looks like a SWE-agent run."""
    if not isinstance(value, dict):
        return False
    if isinstance(value.get("trajectory"), list):
        return True
    history = value.get("history")
    if not isinstance(history, list) or "instance_id" in value:
        return False
    if "info" in value or "environment" in value:
        return True
    # A history-only file: SWE-agent marks each message with its agent and message type.
    first = next((m for m in history if isinstance(m, dict)), None)
    return first is not None and "message_type" in first and "role" in first


def _result(call_id: str, text: str) -> ResultIn:
    if _LINT_REJECTED in text:
        return ResultIn(call_id, text, is_error=True, error_text=strip(text))
    return ResultIn(call_id, text, is_error=shell_failed(text))


def _command_name(action: str) -> str:
    words = action.strip().split(maxsplit=1)
    return words[0] if words else "command"


def read_swe_agent(value: object, context: ReadContext) -> Outcome:
    """Read one SWE-agent run."""
    outcome = Outcome()
    if not isinstance(value, dict):
        outcome.problems.append("expected a SWE-agent run (an object with 'trajectory')")
        return outcome
    builder = context.builder(context.default_id(), session_id=context.default_id())
    builder.user_text_corrections = False  # its "user" messages are mostly observations
    history = value.get("history")
    history = history if isinstance(history, list) else []
    steps = value.get("trajectory")
    if isinstance(steps, list) and steps:
        _preamble(builder, history, outcome)
        for index, step in enumerate(steps):
            problem = _step(builder, step, index, context)
            if problem is not None:
                outcome.problems.append(f"trajectory step {index}: {problem}")
    else:
        for index, message in enumerate(history):
            problem = _message(builder, message, context, outcome)
            if problem is not None:
                outcome.problems.append(f"history message {index}: {problem}")
    info = value.get("info")
    status = as_str(info.get("exit_status")) if isinstance(info, dict) else None
    if status is not None and status != "submitted":
        builder.add_system_text(f"[run ended: {status}]", context=False)
    outcome.add(builder)
    return outcome


def _preamble(builder: TraceBuilder, history: list[Any], outcome: Outcome) -> None:
    """The system prompt and task: the history before the model's first action."""
    for message in history:
        if not isinstance(message, dict):
            continue
        if message.get("is_demo") is True:
            outcome.skipped += 1
            continue
        role = message.get("role")
        if role == "assistant":
            return
        text = text_of(message.get("content"))
        if role == "system":
            builder.add_system_text(text)
        elif role == "user":
            builder.add_user_text(text)


def _step(builder: TraceBuilder, step: object, index: int, context: ReadContext) -> str | None:
    if not isinstance(step, dict):
        return f"step is {type(step).__name__}, not an object"
    action = step.get("action")
    if not isinstance(action, str):
        return "step has no string 'action'"
    call_id = f"step-{index}"
    name = _command_name(action)
    response = as_str(step.get("response"))
    thought = as_str(step.get("thought")) or response or ""
    parts: list[Block] = [thought] if thought else []
    parts.append(call_in(call_id, name, {"command": action}, context.limits))
    # The model wrote text (its thought and the command) and was shown the observation as a
    # user message: that is its context, not a function call.
    said = response or "\n".join(x for x in (thought, action) if x)
    builder.add_assistant(None, parts, native={"role": "assistant", "content": said})
    observation = text_of(step.get("observation"))
    builder.add_tool_results(
        [_result(call_id, observation)], native=[{"role": "user", "content": observation}]
    )
    return None


def _calls(raw: object) -> list[Any]:
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return []
    return raw if isinstance(raw, list) else []


def _message(
    builder: TraceBuilder, message: object, context: ReadContext, outcome: Outcome
) -> str | None:
    if not isinstance(message, dict):
        return f"message is {type(message).__name__}, not an object"
    if message.get("is_demo") is True:
        outcome.skipped += 1
        return None
    role = message.get("role")
    text = text_of(message.get("content"))
    if role == "system":
        builder.add_system_text(text)
    elif role == "user":
        builder.add_user_text(text)
    elif role == "assistant":
        parts: list[Block] = [text] if text else []
        for call in _calls(message.get("tool_calls")):
            function = call.get("function") if isinstance(call, dict) else None
            call_id = as_str(call.get("id")) if isinstance(call, dict) else None
            name = as_str(function.get("name")) if isinstance(function, dict) else None
            if call_id is None or name is None or not isinstance(function, dict):
                return "tool call without 'id' and 'function.name'"
            parts.append(call_in(call_id, name, function.get("arguments"), context.limits))
        builder.add_assistant(None, parts)
    elif role == "tool":
        ids = message.get("tool_call_ids")
        ids = ids if isinstance(ids, list) else [message.get("tool_call_id")]
        found = [i for i in ids if isinstance(i, str)]
        if not found:
            return "tool message names no tool call ('tool_call_ids')"
        builder.add_tool_results([_result(call_id, text) for call_id in found])
    else:
        return f"unknown role {role!r}"
    return None
