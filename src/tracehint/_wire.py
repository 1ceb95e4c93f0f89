"""The JSON wire format: traces and input issues to and from JSON-ready data.

Output keeps the seeds' ``TraceExample`` shape so a trainer's collator reads it unchanged:
``{trace_id, turns: [{role, content, tool_error?, error_meta?, hint?, hint_source?}],
final_reward, source}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from tracehint._records import ErrorSite, InputIssue, Trace, Turn

__all__ = ["dump_issue", "dump_trace", "issue_to_dict", "trace_to_dict"]


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
    if site.exit_code is not None:
        meta["exit_code"] = site.exit_code
    if site.repeats:
        meta["repeats"] = site.repeats
        meta["earlier_errors"] = list(site.earlier_errors)
    facts = site.facts.as_dict()
    if facts:
        meta["facts"] = facts
    return meta


def _turn(turn: Turn) -> dict[str, Any]:
    out: dict[str, Any] = {"role": turn.role.value, "content": turn.content}
    if turn.kind.value != "message":
        out["kind"] = turn.kind.value
    site = turn.site
    if site is not None:
        out["tool_error"] = site.kind.value
        out["error_meta"] = _error_meta(site)
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


def trace_to_dict(trace: Trace) -> dict[str, Any]:
    """A trace as JSON-ready data (one output line)."""
    source = trace.source
    src: dict[str, Any] = {"path": source.path, "format": source.format}
    for key in ("session_id", "agent_id", "agent_type", "description"):
        value = getattr(source, key)
        if value is not None:
            src[key] = value
    return {
        "trace_id": trace.trace_id,
        "turns": [_turn(turn) for turn in trace.turns],
        "final_reward": trace.final_reward,
        "source": src,
    }


def dump_trace(trace: Trace) -> bytes:
    """One output line (with its newline)."""
    return orjson.dumps(trace_to_dict(trace)) + b"\n"


def issue_to_dict(issue: InputIssue) -> dict[str, Any]:
    """An input issue as JSON-ready data (one ``--errors`` line)."""
    return {"path": issue.path, "line": issue.line, "reason": issue.reason}


def dump_issue(issue: InputIssue) -> bytes:
    """One ``--errors`` line (with its newline)."""
    return orjson.dumps(issue_to_dict(issue)) + b"\n"
