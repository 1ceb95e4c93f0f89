"""ATIF trajectories (Agent Trajectory Interchange Format: Harbor, Terminal-Bench) → a trace.

Knows the ATIF format and nothing else. One JSON object: ``schema_version`` (``ATIF-v1.x``),
``session_id``, ``agent``, and ``steps``, each from ``system``, ``user`` or ``agent``. An agent
step carries its ``message``, ``reasoning_content``, ``tool_calls[]`` (``tool_call_id``,
``function_name``, ``arguments``) and an ``observation`` whose ``results[]`` answer them by
``source_call_id``. Agents that type into a terminal (terminus) have no tool calls: their
step's observation answers the step itself, under the id ``step-<step_id>``. A continuation
file (``.cont-N``, after context summarisation) is read as its own trace.

ATIF has no error flag: a result failed when its text shows it ("Previous response had
parsing errors", a traceback, ``command not found``, ``No such file``, an editor's ``ERROR:``,
a non-zero exit code line), or when a converter marked it (``is_error`` on the result or in
its ``extra``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tracehint._ingest._builder import Block, ResultIn, Thinking, call_in, tool_call
from tracehint._ingest._document import Outcome, as_int, as_str, shell_failed, text_of
from tracehint._kinds import InputFormat
from tracehint._longstr import strip

if TYPE_CHECKING:
    from tracehint._ingest._builder import TraceBuilder
    from tracehint._ingest._document import ReadContext

__all__ = ["FORMAT", "is_trajectory", "read_atif"]

FORMAT = InputFormat.ATIF

_PARSE_ERROR = "Previous response had parsing errors"
# What converted agents' tool errors look like in text: an editor's ``ERROR:`` opening, an
# exit-code line that is not 0.
_TOOL_ERROR = re.compile(
    r"\A\s*(?:ERROR:|<tool_use_error>)|\b[Ee]xit code:? [1-9]\d*\b|"
    r"\[The command completed with exit code [1-9]\d*\.\]"
)
_STEP_CALL = "agent_step"
"""The tool name of a step whose observation answers no tool call (terminal keystrokes)."""


def is_trajectory(value: object) -> bool:
    """Whether ``value`` looks like an ATIF trajectory."""
    if not isinstance(value, dict):
        return False
    version = value.get("schema_version")
    return isinstance(version, str) and version.upper().startswith("ATIF")


def _trace_id(value: dict[str, Any], context: ReadContext) -> str:
    session = as_str(value.get("session_id")) or context.default_id()
    agent = value.get("agent")
    extra = agent.get("extra") if isinstance(agent, dict) else None
    continuation = as_int(extra.get("continuation_index")) if isinstance(extra, dict) else None
    return f"{session}/cont-{continuation}" if continuation else session


def read_atif(value: object, context: ReadContext) -> Outcome:
    """Read one ATIF trajectory."""
    outcome = Outcome()
    if not isinstance(value, dict) or not isinstance(value.get("steps"), list):
        outcome.problems.append("expected an ATIF trajectory (an object with 'steps')")
        return outcome
    session = as_str(value.get("session_id"))
    builder = context.builder(_trace_id(value, context), session_id=session)
    for index, step in enumerate(value["steps"]):
        problem = _step(builder, step, context)
        if problem is not None:
            outcome.problems.append(f"step {index}: {problem}")
    outcome.add(builder)
    return outcome


def _step(  # noqa: C901, PLR0911 -- one dispatch over sources, kept whole
    builder: TraceBuilder, step: object, context: ReadContext
) -> str | None:
    if not isinstance(step, dict):
        return f"step is {type(step).__name__}, not an object"
    source = step.get("source")
    text = text_of(step.get("message"))
    if source == "system":
        builder.add_system_text(text)
        return None
    if source == "user":
        builder.add_user_text(text)
        return None
    if source != "agent":
        return f"unknown source {source!r}"
    parts: list[Block] = []
    reasoning = as_str(step.get("reasoning_content"))
    if reasoning is not None:
        parts.append(Thinking(reasoning))
    if text:
        parts.append(text)
    calls = step.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        call_id = as_str(call.get("tool_call_id")) if isinstance(call, dict) else None
        name = as_str(call.get("function_name")) if isinstance(call, dict) else None
        if call_id is None or name is None or not isinstance(call, dict):
            return "tool call without 'tool_call_id' and 'function_name'"
        parts.append(call_in(call_id, name, call.get("arguments"), context.limits))
    observation = step.get("observation")
    results = observation.get("results") if isinstance(observation, dict) else None
    results = results if isinstance(results, list) else []
    step_id = step.get("step_id")
    own_id = f"step-{step_id}"
    if any(isinstance(r, dict) and as_str(r.get("source_call_id")) is None for r in results):
        # The observation answers the step itself (keystrokes in the message).
        builder.register_call(tool_call(own_id, _STEP_CALL, {}, context.limits))
    builder.add_assistant(None, parts)
    answered: list[ResultIn] = []
    for result in results:
        if not isinstance(result, dict):
            return "observation result is not an object"
        call_id = as_str(result.get("source_call_id")) or own_id
        answered.append(_result(call_id, result))
    if answered:
        builder.add_tool_results(answered)
    return None


def _result(call_id: str, result: dict[str, Any]) -> ResultIn:
    text = text_of(result.get("content"))
    ref = result.get("subagent_trajectory_ref")
    if not text and ref is not None:
        text = f"[sub-trajectory: {ref}]"
    if _PARSE_ERROR in text:
        return ResultIn(call_id, text, is_error=True, error_text=strip(text))
    extra = result.get("extra")
    extra = extra if isinstance(extra, dict) else {}
    if result.get("is_error") is True or extra.get("is_error") is True:
        return ResultIn(call_id, text, is_error=True)
    failed = shell_failed(text) or _TOOL_ERROR.search(text) is not None
    return ResultIn(call_id, text, is_error=failed)
