"""The JSON wire format: traces and input issues to and from JSON-ready data.

Output keeps the seeds' ``TraceExample`` shape so a trainer's collator reads it unchanged:
``{trace_id, turns: [{role, content, tool_error?, error_meta?, detected_by?, reader?, hint?,
hint_source?, message_index?, mistake_message_index?}], messages, final_reward, source}``;
``messages`` is the conversation as OpenAI chat messages. ``read_traces`` reads the output back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tracehint._exceptions import InputError
from tracehint._kinds import (
    DetectedBy,
    ErrorKind,
    HintSource,
    HintStatus,
    InputFormat,
    Role,
    TurnKind,
)
from tracehint._records import ErrorSite, Facts, Finding, Hint, Trace, TraceSource, Turn

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Mapping

    from tracehint._records import ChatMessage, InputIssue

__all__ = [
    "approx_size",
    "dump_issue",
    "dump_trace",
    "issue_to_dict",
    "read_traces",
    "trace_from_dict",
    "trace_to_dict",
    "without_reasoning",
]


def _error_meta(site: ErrorSite) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source_role": "user",
        "source_content_excerpt": site.source_content_excerpt,
        "error_message": site.error_message,
        "tool_name": site.tool_name,
        "tool_input": site.tool_input,
        "tool_use_id": site.tool_use_id,
        "consecutive_failures": site.consecutive_failures,
        "failed_calls": site.failed_calls,
    }
    if site.tool_target is not None:
        meta["tool_target"] = site.tool_target
    if site.command is not None:
        meta["command"] = site.command
    if site.exit_code is not None:
        meta["exit_code"] = site.exit_code
    if site.repeats:
        meta["repeats"] = site.repeats
        meta["earlier_errors"] = list(site.earlier_errors)
    facts = site.facts.as_dict()
    if facts:
        meta["facts"] = facts
    return meta


def _finding(finding: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": finding.kind.value,
        "message_index": finding.message_index,
        "quote": finding.quote,
        "hint": finding.hint,
    }
    if finding.model is not None:
        out["model"] = finding.model
    return out


def _turn(turn: Turn) -> dict[str, Any]:
    out: dict[str, Any] = {"role": turn.role.value, "content": turn.content}
    if turn.kind.value != "message":
        out["kind"] = turn.kind.value
    site = turn.site
    if site is not None:
        out["tool_error"] = site.kind.value
        out["error_meta"] = _error_meta(site)
        out["detected_by"] = site.detected_by.value
        if site.finding is not None:
            out["reader"] = _finding(site.finding)
        if site.message_index is not None:
            out["message_index"] = site.message_index
        if site.mistake_message_index is not None:
            out["mistake_message_index"] = site.mistake_message_index
        hint = turn.hint
        if hint is not None:
            out["hint"] = hint.text
            out["hint_source"] = hint.source.value if hint.source is not None else None
            out["hint_status"] = hint.status.value
            if hint.reason is not None:
                out["hint_reason"] = hint.reason
            if hint.model is not None:
                out["hint_model"] = hint.model
            if hint.judge_reason is not None:
                out["judge_reason"] = hint.judge_reason
    return out


def without_reasoning(messages: tuple[ChatMessage, ...] | list[ChatMessage]) -> list[ChatMessage]:
    """The messages with the assistants' thinking (``reasoning_content``) dropped."""
    return [
        {k: v for k, v in m.items() if k != "reasoning_content"} if "reasoning_content" in m else m
        for m in messages
    ]


def trace_to_dict(trace: Trace, *, reasoning: bool = True) -> dict[str, Any]:
    """A trace as JSON-ready data (one output line).

    ``reasoning=False`` drops the assistants' thinking from ``messages``.
    """
    source = trace.source
    src: dict[str, Any] = {"path": source.path, "format": source.format}
    for key in ("session_id", "agent_id", "agent_type", "description"):
        value = getattr(source, key)
        if value is not None:
            src[key] = value
    return {
        "trace_id": trace.trace_id,
        "turns": [_turn(turn) for turn in trace.turns],
        "messages": list(trace.messages) if reasoning else without_reasoning(trace.messages),
        **({"tools": list(trace.tools)} if trace.tools else {}),
        "final_reward": trace.final_reward,
        "source": src,
    }


def approx_size(trace: Trace) -> int:
    """About how many bytes ``dump_trace`` makes of ``trace``, without making them.

    Its turns' text, twice: the ``messages`` hold the same conversation.
    """
    return 2 * sum(len(turn.content) for turn in trace.turns)


def dump_trace(trace: Trace, *, reasoning: bool = True) -> bytes:
    """One output line (with its newline)."""
    return orjson.dumps(trace_to_dict(trace, reasoning=reasoning), option=orjson.OPT_APPEND_NEWLINE)


# -- reading the output back -------------------------------------------------------------------


def _str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InputError(f"'{key}' is {type(value).__name__}, not a string")


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise InputError(f"'{key}' is {type(value).__name__}, not an integer")


def _facts(data: object) -> Facts:
    if not isinstance(data, dict):
        return Facts()
    known = {name: data[name] for name in Facts.__slots__ if name in data}
    for name, value in known.items():
        if isinstance(value, list):
            known[name] = tuple(value)
    return Facts(**known)


def _site(out: Mapping[str, Any]) -> ErrorSite:
    meta = out.get("error_meta")
    if not isinstance(meta, dict):
        raise InputError("a turn with 'tool_error' has no 'error_meta' object")
    return ErrorSite(
        kind=ErrorKind(out["tool_error"]),
        error_message=_str(meta, "error_message") or "",
        tool_use_id=_str(meta, "tool_use_id") or "",
        tool_name=_str(meta, "tool_name"),
        tool_input=_str(meta, "tool_input"),
        tool_target=_str(meta, "tool_target"),
        source_content_excerpt=_str(meta, "source_content_excerpt") or "",
        consecutive_failures=_int(meta, "consecutive_failures") or 1,
        failed_calls=_int(meta, "failed_calls") or (0 if "failed_calls" in meta else 1),
        exit_code=_int(meta, "exit_code"),
        repeats=_int(meta, "repeats") or 0,
        earlier_errors=tuple(str(e) for e in meta.get("earlier_errors") or ()),
        facts=_facts(meta.get("facts")),
        command=_str(meta, "command"),
        message_index=_int(out, "message_index"),
        mistake_message_index=_int(out, "mistake_message_index"),
        detected_by=DetectedBy(out.get("detected_by") or DetectedBy.TOOL_ERROR.value),
        finding=_finding_from(out.get("reader")),
    )


def _finding_from(data: object) -> Finding | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise InputError(f"'reader' is {type(data).__name__}, not an object")
    index = _int(data, "message_index")
    if index is None:
        raise InputError("'reader' has no integer 'message_index'")
    return Finding(
        kind=ErrorKind(str(data.get("kind"))),
        message_index=index,
        quote=_str(data, "quote") or "",
        hint=_str(data, "hint") or "",
        model=_str(data, "model"),
    )


def _hint(out: Mapping[str, Any]) -> Hint | None:
    if "hint_status" not in out and "hint" not in out:
        return None
    source = _str(out, "hint_source")
    return Hint(
        text=_str(out, "hint"),
        source=HintSource(source) if source is not None else None,
        status=HintStatus(out.get("hint_status") or HintStatus.OK.value),
        reason=_str(out, "hint_reason"),
        model=_str(out, "hint_model"),
        judge_reason=_str(out, "judge_reason"),
    )


def _turn_from(out: object) -> Turn:
    if not isinstance(out, dict):
        raise InputError(f"a turn is {type(out).__name__}, not an object")
    role = Role(str(out.get("role")))
    content = _str(out, "content") or ""
    kind = TurnKind(out.get("kind") or TurnKind.MESSAGE.value)
    if "tool_error" not in out:
        return Turn(role, content, kind)
    return Turn(role, content, kind, _site(out), _hint(out))


def _source_format(source: Mapping[str, Any]) -> InputFormat:
    name = _str(source, "format")
    try:
        return InputFormat(name or "")
    except ValueError:
        known = ", ".join(f.value for f in InputFormat if f is not InputFormat.AUTO)
        raise InputError(f"source format {name!r} is not one of {known}") from None


def trace_from_dict(data: Mapping[str, Any]) -> Trace:
    """A trace from one output line's data (what ``trace_to_dict`` wrote).

    Raises ``InputError`` saying what is wrong with it.
    """
    trace_id = data.get("trace_id")
    turns = data.get("turns")
    if not isinstance(trace_id, str) or not isinstance(turns, list):
        raise InputError("expected an object with a string 'trace_id' and a 'turns' list")
    messages = data.get("messages", [])
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise InputError("'messages' is not a list of objects")
    tools = data.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise InputError("'tools' is not a list of objects")
    source = data.get("source")
    source = source if isinstance(source, dict) else {}
    reward = data.get("final_reward", 0.0)
    return Trace(
        trace_id=trace_id,
        turns=tuple(_turn_from(turn) for turn in turns),
        source=TraceSource(
            path=_str(source, "path") or "",
            format=_source_format(source),
            session_id=_str(source, "session_id"),
            agent_id=_str(source, "agent_id"),
            agent_type=_str(source, "agent_type"),
            description=_str(source, "description"),
        ),
        final_reward=float(reward) if isinstance(reward, (int, float)) else 0.0,
        messages=tuple(messages),
        tools=tuple(tools),
    )


def _object(data: object) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, got {type(data).__name__}")
    return data


def read_traces(path: str | os.PathLike[str]) -> Iterator[Trace]:
    """Read the traces of an output JSONL file (``tracehint annotate -o``), one at a time.

    Raises ``InputError`` naming the file and line of a line that is not a trace.
    """
    name = str(path)
    try:
        handle = Path(path).open("rb")  # noqa: SIM115 -- closed below, a generator
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                trace = trace_from_dict(_object(orjson.loads(line)))
            except (InputError, ValueError, KeyError, TypeError) as exc:
                reason = str(exc) or type(exc).__name__
                raise InputError(
                    f"{name}:{number}: not a tracehint output trace ({reason}); "
                    "read the -o file of `tracehint annotate`"
                ) from exc
            yield trace


def issue_to_dict(issue: InputIssue) -> dict[str, Any]:
    """An input issue as JSON-ready data (one ``--errors`` line)."""
    return {"path": issue.path, "line": issue.line, "reason": issue.reason}


def dump_issue(issue: InputIssue) -> bytes:
    """One ``--errors`` line (with its newline)."""
    return orjson.dumps(issue_to_dict(issue), option=orjson.OPT_APPEND_NEWLINE)
