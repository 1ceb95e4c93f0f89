"""Claude Code session JSONL (versions 1.0.24 to 2.1.x) → traces.

Knows the Claude Code format and nothing else: entry types, one-block-per-entry assistant
messages grouped by ``message.id``, ``tool_result`` blocks paired with their ``tool_use`` by
id, inline ``isSidechain`` sub-agents split by their ``parentUuid`` chains, ``agent-*.jsonl``
sub-agent files (with the ``.meta.json`` beside them), compaction summaries, and base64
images replaced by a placeholder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from tracehint._ingest._builder import Block, ResultIn, Thinking, TraceBuilder, call_in
from tracehint._ingest._files import open_regular
from tracehint._jsonparts import contains
from tracehint._jsonparts import loads as loads_json
from tracehint._kinds import InputFormat
from tracehint._longstr import join
from tracehint._records import InputIssue, TraceSource

if TYPE_CHECKING:
    from tracehint._classify import Classifier
    from tracehint._ingest._lines import Line
    from tracehint._limits import Limits
    from tracehint._records import Trace

__all__ = ["FORMAT", "AgentMeta", "ClaudeCodeParser", "FileRejectedError", "read_agent_meta"]

FORMAT = InputFormat.CLAUDE_CODE

# Entry types that carry conversation; every other type (progress, file-history-snapshot,
# queue-operation, attachment, permission-mode, last-prompt, and types not invented yet) is
# skipped without complaint.
_CONVERSATION_TYPES = frozenset({"user", "assistant"})
_CALL_BLOCKS = frozenset({"tool_use", "server_tool_use"})
_MAIN = "\x00main"


# ``progress`` entries are about half the lines of 2.1.x sessions (hook runs, a command's output
# as it streams, a sub-agent's messages as it works) and carry no conversation: only a
# PreToolUse hook's is read (``_progress``). The others are recognised from their top-level
# ``type`` alone (msgspec skips the rest without building it) and never decoded.
_PROGRESS = b'"progress"'


class _Head(msgspec.Struct):
    """An entry's type; every other field is skipped unread."""

    type: Any = None


_HEAD = msgspec.json.Decoder(_Head)


def _is_plain_progress(data: bytes) -> bool:
    """Whether a line is a ``progress`` entry that tells nothing (not a PreToolUse hook's).

    Any doubt (invalid JSON, another type, a line that names a PreToolUse hook's progress)
    says no: the line is then read as every other line is.
    """
    if b'"hook_progress"' in data and b'"PreToolUse"' in data:
        return False
    try:
        kind = _HEAD.decode(data).type
    except msgspec.MsgspecError:
        return False
    return isinstance(kind, str) and kind == "progress"


class FileRejectedError(Exception):
    """The whole file is not a Claude Code session (private: becomes an ``InputIssue``)."""


@dataclass(frozen=True, slots=True)
class AgentMeta:
    """What ``agent-*.meta.json`` says about a sub-agent."""

    agent_type: str | None = None
    description: str | None = None


def read_agent_meta(session_path: str) -> AgentMeta | None:
    """Read the ``.meta.json`` beside an ``agent-*.jsonl`` file, if there is a usable one."""
    meta_path = session_path.removesuffix(".jsonl") + ".meta.json"
    try:
        with open_regular(meta_path) as handle:  # a tiny file, read in a worker thread
            data = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    agent_type = data.get("agentType")
    description = data.get("description")
    return AgentMeta(
        agent_type if isinstance(agent_type, str) else None,
        description if isinstance(description, str) else None,
    )


def _image_placeholder(block: dict[str, Any]) -> str:
    source = block.get("source")
    if isinstance(source, dict):
        media = source.get("media_type", "image")
        data = source.get("data")
        if isinstance(data, str):
            return f"[image: {media}, {len(data) * 3 // 4} bytes omitted]"
        return f"[image: {media}]"
    return "[image]"


def _block_text(block: object) -> str:  # noqa: PLR0911 -- one return per block type
    """Render a content block that is not a tool call or result."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return str(block)
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return text if isinstance(text, str) else ""
    if kind == "image":
        return _image_placeholder(block)
    if kind == "tool_reference":
        return f"[tool_reference: {block.get('tool_name') or block.get('name') or '?'}]"
    if kind == "document":
        return "[document]"
    return f"[{kind} block]"


def _result_text(content: object) -> str:
    """The text of a ``tool_result``'s content (a string or a list of blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return join([_block_text(block) for block in content], "\n")
    return str(content)


@dataclass(slots=True)
class ClaudeCodeParser:
    """Incremental parser for one Claude Code session file.

    ``feed`` takes one line at a time and returns an ``InputIssue`` when the line is
    malformed (the line is skipped, the file goes on); ``finish`` returns the traces: the main
    conversation and one per sub-agent.
    """

    path: str
    classifier: Classifier
    limits: Limits
    agent_meta: AgentMeta | None = None
    skipped_entries: int = 0
    duplicate_entries: int = 0
    good_lines: int = 0
    _seen: set[str] = field(default_factory=set)
    _stem: str = ""
    _is_agent_file: bool = False
    _builders: dict[str, TraceBuilder] = field(default_factory=dict)
    _chain: dict[str, str] = field(default_factory=dict)
    _sidechains: int = 0
    _session_id: str | None = None
    _first_line: bool = True
    _pre_hooks: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stem = os.path.basename(self.path).removesuffix(".jsonl")  # noqa: PTH119 -- str paths
        self._is_agent_file = self._stem.startswith("agent-")

    # -- lines ----------------------------------------------------------------------------

    def feed(self, line: Line) -> InputIssue | None:
        """Parse one line; return an issue if it is malformed.

        Raises ``FileRejectedError`` when the first line shows the file is not JSONL at all.
        """
        data = line.data
        if self._first_line:
            self._first_line = False
            if data.lstrip()[:1] == b"[":
                raise FileRejectedError(
                    "file is a JSON array, not JSONL (one JSON object per line); "
                    "convert it with `jq -c '.[]' FILE > FILE.jsonl`",
                )
        if contains(data, _PROGRESS) and _is_plain_progress(data):
            self.skipped_entries += 1
            self.good_lines += 1
            return None
        try:
            entry = loads_json(data)
        except orjson.JSONDecodeError as exc:
            return InputIssue(self.path, line.number, _json_reason(data, exc))
        if not isinstance(entry, dict):
            return InputIssue(
                self.path,
                line.number,
                f"expected a JSON object, got {type(entry).__name__}",
            )
        reason = self._entry(entry)
        if reason is not None:
            return InputIssue(self.path, line.number, reason)
        self.good_lines += 1
        return None

    def _entry(self, entry: dict[str, Any]) -> str | None:
        kind = entry.get("type")
        if not isinstance(kind, str):
            return "entry has no string 'type' field"
        if kind not in _CONVERSATION_TYPES:
            if kind == "progress":
                self._progress(entry)
            self.skipped_entries += 1
            return None
        message = entry.get("message")
        if not isinstance(message, dict):
            return f"'{kind}' entry has no 'message' object"
        content = message.get("content")
        if not isinstance(content, (str, list)):
            return f"'{kind}' message content is {type(content).__name__}, not a string or list"
        if self._is_duplicate(entry):
            return None
        if self._session_id is None:
            session = entry.get("sessionId")
            if isinstance(session, str):
                self._session_id = session
        builder = self._builder_for(entry)
        return (
            self._user(builder, entry, content)
            if kind == "user"
            else self._assistant(builder, entry, message, content)
        )

    def _progress(self, entry: dict[str, Any]) -> None:
        """Remember the PreToolUse hooks that ran for a call (tied to it by ``toolUseID``)."""
        data = entry.get("data")
        if not isinstance(data, dict) or data.get("type") != "hook_progress":
            return
        if data.get("hookEvent") != "PreToolUse":
            return
        name = data.get("hookName")
        hook = name if isinstance(name, str) and name else "PreToolUse"
        for key in ("toolUseID", "parentToolUseID"):
            use_id = entry.get(key)
            if isinstance(use_id, str):
                self._pre_hooks[use_id] = hook

    def _is_duplicate(self, entry: dict[str, Any]) -> bool:
        """Whether this entry's ``uuid`` was seen before (a line written twice), counting it."""
        uuid = entry.get("uuid")
        if not isinstance(uuid, str):
            return False
        if uuid in self._seen:
            self.duplicate_entries += 1
            return True
        self._seen.add(uuid)
        return False

    def _user(
        self, builder: TraceBuilder, entry: dict[str, Any], content: str | list[Any]
    ) -> str | None:
        if isinstance(content, str):
            builder.add_user_text(
                content,
                compact_summary=entry.get("isCompactSummary") is True,
                meta=entry.get("isMeta") is True,
            )
            return None
        results: list[ResultIn] = []
        texts: list[str] = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                use_id = block.get("tool_use_id")
                if not isinstance(use_id, str):
                    return "tool_result block has no string 'tool_use_id'"
                results.append(self._result(entry, use_id, block))
            else:
                texts.append(_block_text(block))
        if results:
            builder.add_tool_results(results, texts)
        else:
            builder.add_user_text(
                join(texts, "\n"),
                compact_summary=entry.get("isCompactSummary") is True,
                meta=entry.get("isMeta") is True,
            )
        return None

    def _result(self, entry: dict[str, Any], use_id: str, block: dict[str, Any]) -> ResultIn:
        """A ``tool_result`` with what the entry records in structure beside its text."""
        text = _result_text(block.get("content"))
        is_error = block.get("is_error") is True
        if not is_error:
            return ResultIn(use_id, text, is_error)
        detail = entry.get("toolUseResult")
        stderr: str | None = None
        interrupted = False
        if isinstance(detail, dict):
            found = detail.get("stderr")
            stderr = found if isinstance(found, str) and found and not found.isspace() else None
            interrupted = detail.get("interrupted") is True
        hook = self._pre_hooks.get(use_id)
        if hook is not None and not _command_ran(text, hook):
            return ResultIn(use_id, text, is_error, stderr=stderr, hook=hook)
        return ResultIn(use_id, text, is_error, stderr=stderr, interrupted=interrupted)

    def _assistant(
        self,
        builder: TraceBuilder,
        entry: dict[str, Any],
        message: dict[str, Any],
        content: str | list[Any],
    ) -> str | None:
        blocks: list[Any] = (
            [{"type": "text", "text": content}] if isinstance(content, str) else content
        )
        parts: list[Block] = []
        for block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind in _CALL_BLOCKS:
                use_id, name = block.get("id"), block.get("name")
                if not isinstance(use_id, str) or not isinstance(name, str):
                    return "tool_use block has no string 'id' and 'name'"
                parts.append(call_in(use_id, name, block.get("input"), self.limits))
            elif kind == "thinking":
                thinking = block.get("thinking")
                if isinstance(thinking, str) and thinking and not thinking.isspace():
                    parts.append(Thinking(thinking))
            elif kind != "redacted_thinking":
                parts.append(_block_text(block))
        message_id = message.get("id")
        api_error = entry.get("isApiErrorMessage") is True or message.get("model") == "<synthetic>"
        builder.add_assistant(
            message_id if isinstance(message_id, str) else None,
            parts,
            api_error=api_error,
        )
        return None

    # -- conversations --------------------------------------------------------------------

    def _builder_for(self, entry: dict[str, Any]) -> TraceBuilder:
        if self._is_agent_file or entry.get("isSidechain") is not True:
            return self._get(_MAIN, entry)
        parent = entry.get("parentUuid")
        key = self._chain.get(parent) if isinstance(parent, str) else None
        if key is None:
            agent_id = entry.get("agentId")
            self._sidechains += 1
            # An agent id seen before (a resumed sub-agent) keeps feeding the same trace.
            key = (
                f"agent-{agent_id}"
                if isinstance(agent_id, str)
                else f"sidechain-{self._sidechains}"
            )
        uuid = entry.get("uuid")
        if isinstance(uuid, str):
            self._chain[uuid] = key
        return self._get(key, entry)

    def _get(self, key: str, entry: dict[str, Any]) -> TraceBuilder:
        builder = self._builders.get(key)
        if builder is not None:
            return builder
        session = self._session_id or self._stem
        agent_id: str | None = None
        if key == _MAIN and self._is_agent_file:
            found = entry.get("agentId")
            agent_id = found if isinstance(found, str) else self._stem.removeprefix("agent-")
            session = self._session_id or _parent_session(self.path) or self._stem
            trace_id = f"{session}/agent-{agent_id}"
        elif key == _MAIN:
            session = self._stem
            trace_id = session
        else:
            session = self._stem
            agent_id = key.removeprefix("agent-")
            trace_id = f"{session}/{key}"
        meta = self.agent_meta if self._is_agent_file else None
        source = TraceSource(
            path=self.path,
            format=FORMAT,
            session_id=session,
            agent_id=agent_id,
            agent_type=meta.agent_type if meta else None,
            description=meta.description if meta else None,
        )
        builder = TraceBuilder(trace_id, source, self.classifier, self.limits)
        self._builders[key] = builder
        return builder

    def drain(self) -> list[Trace]:
        """Traces complete so far: none before the end of the file (sub-agents interleave)."""
        return []

    def finish(self) -> list[Trace]:
        """Return the file's traces (conversations with at least one turn)."""
        return [b.build() for b in self._builders.values() if not b.is_empty]

    @property
    def orphan_results(self) -> int:
        """Tool results that matched no tool call, over all conversations of the file."""
        return sum(b.orphan_results for b in self._builders.values())


def _command_ran(text: str, hook: str) -> bool:
    """Whether a failed result is the call's own output rather than its PreToolUse hook's.

    A hook that blocks the call answers for it: its message names no exit code of the command
    (Claude Code writes ``Exit code N`` before a command's own output) or names the hook.
    """
    head = text.lstrip()[:300]
    if hook in head or "hook" in head.lower():
        return False
    return head.startswith(("Exit code", "Error: Exit code"))


def _parent_session(path: str) -> str | None:
    """``<session>/subagents/agent-x.jsonl`` → ``<session>``."""
    parent = os.path.dirname(path)  # noqa: PTH120 -- str paths
    if os.path.basename(parent) == "subagents":  # noqa: PTH119 -- str paths
        return os.path.basename(os.path.dirname(parent)) or None  # noqa: PTH119, PTH120
    return None


def _json_reason(data: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    if len(data) > 60:
        return f"invalid JSON ({exc}); line starts {data[:60]!r}"
    return f"invalid JSON ({exc})"
