"""A straightforward synchronous port of the seeds' path, as a baseline for ``bench_ingest``.

The seeds (``/work/shared/seeds/000_*.txt``) convert ``ClaudeCodeIngester`` states (OpenAI-style
``messages`` with tool results serialized as ``[TOOL_RESULT (ERROR)] …``) to ``TraceExample``
dicts, marking the assistant turn after an error-tagged user turn as an error site with a
regex-classified kind. The ingester itself is not in the seeds, so it is written here the
plain way: ``open()`` each file, parse each line, keep ``user``/``assistant`` entries, merge
consecutive assistant entries that share ``message.id``, serialize content blocks to text with
the seeds' tag. Then the seeds' adapter, ported as is (walk back over user turns, look for the
tag, classify by regex). One trace per file; no id pairing, no sub-agent split, no output
written: it does less than tracehint, which is the point of a baseline.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

TOOL_ERROR_TAG = "[TOOL_RESULT (ERROR)]"

_ERROR_KIND_PATTERNS = [
    ("command_not_found", re.compile(r"(?i)command not found")),
    (
        "file_not_found",
        re.compile(r"(?i)\b(file does not exist|no such file or directory|file not found)\b"),
    ),
    ("permission_denied", re.compile(r"(?i)permission denied")),
    ("syntax_error", re.compile(r"(?i)syntax\s*error")),
    ("connection_error", re.compile(r"(?i)\b(connection|network|timeout) (error|refused)\b")),
]


def default_classify_error(content: str) -> str:
    """The seeds' keyword classifier."""
    for kind, pattern in _ERROR_KIND_PATTERNS:
        if pattern.search(content):
            return kind
    return "tool_error"


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return ""


def _user_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "tool_result":
            tag = TOOL_ERROR_TAG if block.get("is_error") else "[TOOL_RESULT]"
            parts.append(f"{tag} {_result_text(block.get('content'))}")
        elif kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "image":
            parts.append("[image]")
    return "\n".join(parts)


def _assistant_text(content: Any, dumps: Callable[[Any], str]) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "thinking":
            parts.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            parts.append(f"[TOOL_CALL {block.get('name')}] {dumps(block.get('input'))}")
    return "\n".join(parts)


def ingest_file(
    path: Path,
    loads: Callable[[bytes], Any],
    dumps: Callable[[Any], str],
) -> tuple[dict[str, Any], int, int]:
    """One session file → a ``TraceState``-like dict; also (lines, bytes) read."""
    messages: list[dict[str, str]] = []
    last_id: object = None
    lines = 0
    size = 0
    with path.open("rb") as handle:
        for raw in handle:
            size += len(raw)
            if not raw.strip():
                continue
            lines += 1
            try:
                entry = loads(raw)
            except ValueError:
                continue
            if not isinstance(entry, dict) or entry.get("type") not in {"user", "assistant"}:
                continue
            message = entry.get("message")
            if not isinstance(message, dict):
                continue
            if entry["type"] == "assistant":
                text = _assistant_text(message.get("content"), dumps)
                message_id = message.get("id")
                if message_id is not None and message_id == last_id and messages:
                    messages[-1]["content"] += "\n" + text
                else:
                    messages.append({"role": "assistant", "content": text})
                    last_id = message_id
            else:
                messages.append({"role": "user", "content": _user_text(message.get("content"))})
                last_id = None
    return {"state_id": path.stem, "messages": messages}, lines, size


def _flatten(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(c.get("text", c)) if isinstance(c, dict) else str(c) for c in content)
    return str(content)


def claude_states_to_trace_examples(
    states: Iterable[Mapping[str, Any]],
    *,
    error_kind_fn: Callable[[str], str] = default_classify_error,
    final_reward: float = 0.0,
) -> list[dict[str, Any]]:
    """The seeds' adapter, ported as is."""
    examples: list[dict[str, Any]] = []
    for state in states:
        msgs = state.get("messages", [])
        turns: list[dict[str, Any]] = []
        for i, msg in enumerate(msgs):
            content = _flatten(msg.get("content", ""))
            role = msg.get("role", "")
            turn: dict[str, Any] = {"role": role, "content": content}
            if role == "assistant" and i > 0:
                kind: str | None = None
                source: str | None = None
                for j in range(i - 1, -1, -1):
                    prev = msgs[j]
                    if prev.get("role") != "user":
                        break
                    prev_content = _flatten(prev.get("content", ""))
                    if TOOL_ERROR_TAG in prev_content:
                        kind = error_kind_fn(prev_content)
                        source = prev_content
                        break
                if kind:
                    turn["tool_error"] = kind
                    turn["error_meta"] = {
                        "source_role": "user",
                        "source_content_excerpt": (source or "")[:200],
                    }
            turns.append(turn)
        if turns:
            examples.append(
                {
                    "trace_id": str(state.get("state_id", "")),
                    "turns": turns,
                    "final_reward": float(final_reward),
                },
            )
    return examples


def run(paths: Iterable[Path], *, parser: str = "json") -> dict[str, int]:
    """The seeds' path over ``paths`` (``parser``: ``json`` or ``orjson``); counts."""
    if parser == "orjson":
        import orjson  # noqa: PLC0415 -- only for this variant

        loads: Callable[[bytes], Any] = orjson.loads

        def dumps(value: Any) -> str:
            return orjson.dumps(value).decode()

    else:
        loads = json.loads

        def dumps(value: Any) -> str:
            return json.dumps(value)

    counts = {"files": 0, "lines": 0, "bytes": 0, "traces": 0, "turns": 0, "sites": 0}
    for path in paths:
        state, lines, size = ingest_file(path, loads, dumps)
        counts["files"] += 1
        counts["lines"] += lines
        counts["bytes"] += size
        for example in claude_states_to_trace_examples([state]):
            counts["traces"] += 1
            counts["turns"] += len(example["turns"])
            counts["sites"] += sum(1 for turn in example["turns"] if "tool_error" in turn)
    return counts
