"""Format-agnostic trace assembly and error-site tagging.

A format parser (Claude Code, OpenAI messages) feeds a ``TraceBuilder`` with user text,
assistant messages (text, thinking and tool calls) and tool results. The builder pairs every
result with its call by id, classifies failures, counts consecutive failures per tool, and marks
the assistant message that comes right after one or more failed results as an error site.

It builds two views of the same conversation at once: the seeds' ``turns`` (tool calls and
results flattened into text, consecutive results merged into one user turn) and the native
``messages`` a trainer's chat template expects (OpenAI chat messages: ``assistant`` messages with
``tool_calls``, one ``tool`` message per result, thinking as ``reasoning_content``). A site
records where it sits in both.

Besides failed tool results, the builder finds the user's own corrections (when the
classifier has ``corrections``, see ``tracehint._corrections``): a rejected call whose result
carries the user's words, or whose words the user typed right after it, and a user reply that
contradicts the agent's preceding message. Each is a ``user_correction`` site on the agent's
next assistant message, its ``mistake_message_index`` the message that made the rejected call
or the corrected claim.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import msgspec
import orjson

from tracehint._context import instruction_text, message_text
from tracehint._corrections import rejection_words
from tracehint._kinds import DetectedBy, ErrorKind, Role, TurnKind
from tracehint._limits import Limits, clamp, clamp_middle, clamp_middle_stripped, clamp_stripped
from tracehint._longstr import join
from tracehint._records import ErrorSite, Facts, ToolCall, Trace, TraceSource, Turn

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tracehint._classify import Classification, Classifier
    from tracehint._corrections import Correction
    from tracehint._records import ChatMessage

__all__ = [
    "Block",
    "CallIn",
    "ResultIn",
    "Thinking",
    "TraceBuilder",
    "call_in",
    "chat_tools",
    "tool_call",
]

_EARLIER_ERRORS = 3
"""Earlier attempts of a repeat kept on the site (the latest ones)."""
_EARLIER_ERROR_CHARS = 300


def _action(call: ToolCall | None) -> tuple[str, str] | None:
    """What makes two calls the same action: the tool and its normalised command or target."""
    if call is None:
        return None
    what = call.command or call.target or call.input_json
    return call.name, " ".join(what.split())


# Argument names that identify what a call acts on, most specific first.
_TARGET_KEYS = ("file_path", "notebook_path", "path", "command", "url", "pattern", "query")

_PATH_KEYS = ("file_path", "notebook_path", "path")

_ERROR_TAG = "[TOOL_RESULT (ERROR)]"
_RESULT_TAG = "[TOOL_RESULT]"


def _arguments_json(arguments: object) -> str:
    """Compact JSON of a call's arguments (their text when they are not JSON-serialisable)."""
    try:
        return orjson.dumps(arguments).decode()
    except TypeError:
        return str(arguments)


def tool_call(call_id: str, name: str, arguments: object, limits: Limits) -> ToolCall:
    """Make a ``ToolCall`` record from a call's parsed JSON arguments."""
    return _tool_call(call_id, name, arguments, _arguments_json(arguments), limits)


def _tool_call(call_id: str, name: str, arguments: object, text: str, limits: Limits) -> ToolCall:
    target: str | None = None
    command: str | None = None
    if isinstance(arguments, dict):
        for key in _TARGET_KEYS:
            value = arguments.get(key)
            if isinstance(value, str) and value:
                target = clamp(value, 300)
                break
        # an editor's ``command`` (``str_replace``, ``view``) acts on a path: not a shell command
        if not any(isinstance(arguments.get(key), str) for key in _PATH_KEYS):
            command = _command_of(arguments)
    return ToolCall(call_id, name, clamp(text, limits.tool_input_chars), target, command)


def _command_of(arguments: dict[str, object]) -> str | None:
    """The shell command in a call's arguments: ``command``/``cmd`` as text or argv."""
    for key in ("command", "cmd"):
        value = arguments.get(key)
        if isinstance(value, list) and all(isinstance(word, str) for word in value):
            words = [str(word) for word in value]
            # ["bash", "-lc", "pytest -q"] runs its last word
            value = words[-1] if len(words) >= 3 and words[1] in {"-c", "-lc"} else " ".join(words)
        if isinstance(value, str) and value and not value.isspace():
            return clamp(value, 2000)
    return None


class ResultIn(msgspec.Struct, frozen=True):
    """A tool result as a parser hands it to the builder.

    ``text`` is what the agent saw. The keyword fields carry what the format records in
    structure (Claude Code's ``toolUseResult``, OpenHands' ``exit_code``, Codex's ``Exit
    code: N`` header, ...): the classifier trusts them before any text rule.
    """

    tool_use_id: str
    text: str
    is_error: bool
    exit_code: int | None = None
    """The command's exit code when the format records it."""
    stdout: str | None = None
    """The command's standard output, when the format keeps it apart from stderr."""
    stderr: str | None = None
    """The command's standard error, when the format keeps it apart from stdout."""
    interrupted: bool = False
    """The format says the call was interrupted (by the user or a time limit)."""
    hook: str | None = None
    """The name of the hook that blocked the call, when the format records one."""
    error_text: str | None = None
    """The tool's own error message when the format wraps it (``<tool_use_error>``)."""


class Thinking(msgspec.Struct, frozen=True):
    """The model's thinking in an assistant message (``reasoning_content`` in ``messages``)."""

    text: str


class CallIn(msgspec.Struct, frozen=True):
    """A tool call inside an assistant message: the record, and its arguments as written."""

    call: ToolCall
    arguments: str
    """The arguments as a JSON string, unbounded (``function.arguments`` in ``messages``)."""


Block: TypeAlias = "str | Thinking | CallIn"
"""One piece of an assistant message, in order: text, thinking or a tool call."""


def call_in(call_id: str, name: str, arguments: object, limits: Limits) -> CallIn:
    """A tool call of an assistant message from its arguments.

    ``arguments`` is the parsed JSON object, or the JSON string the model wrote (OpenAI style),
    which ``messages`` keeps exactly as written.
    """
    if isinstance(arguments, str):
        try:
            parsed: object = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = arguments
        return CallIn(_tool_call(call_id, name, parsed, _arguments_json(parsed), limits), arguments)
    text = _arguments_json(arguments)
    return CallIn(_tool_call(call_id, name, arguments, text, limits), text)


@dataclass(slots=True)
class _Failure:
    result: ResultIn
    call: ToolCall | None
    found: Classification
    repeats: int
    earlier: tuple[str, ...]


@dataclass(slots=True)
class _Corrected:
    """A user correction waiting for the agent's next message (its site)."""

    correction: Correction
    mistake: int | None
    """The assistant message corrected: the rejected call's, or the claim's."""
    call: ToolCall | None = None
    """The rejected call, for a rejection."""


@dataclass(slots=True)
class _Attempts:
    """The failures in a row of one action (same tool, same command or target)."""

    signature: tuple[object, ...]
    failing: int | None
    errors: list[str]


_FAILED_COUNT = re.compile(r"\b(\d+) (?:failed|errors?)\b")


def _failing_count(text: str) -> int | None:
    """How many tests or errors a runner reported (the last count in the output)."""
    tail = text[-3000:]
    if "failed" not in tail and "error" not in tail:  # every count names one of them
        return None
    counts = _FAILED_COUNT.findall(tail)
    return int(counts[-1]) if counts else None


@dataclass(slots=True)
class _Draft:
    role: Role
    kind: TurnKind
    parts: list[str]
    site: ErrorSite | None = None
    native: int | None = None
    """The index of this turn's message in ``messages`` (assistant turns), if it has one."""


@dataclass(slots=True)
class TraceBuilder:
    """Accumulates one conversation and tags its error sites."""

    trace_id: str
    source: TraceSource
    classifier: Classifier
    limits: Limits
    _drafts: list[_Draft] = field(default_factory=list)
    _calls: dict[str, ToolCall] = field(default_factory=dict)
    _message_index: dict[str, int] = field(default_factory=dict)
    _pending: list[_Failure] = field(default_factory=list)
    _attempts: dict[tuple[str, str], _Attempts] = field(default_factory=dict)
    _tools_used: dict[str, None] = field(default_factory=dict)
    _non_mistakes: Counter[ErrorKind] = field(default_factory=Counter)
    _messages: list[ChatMessage] = field(default_factory=list)
    _call_message: dict[str, int] = field(default_factory=dict)
    """Call id → the index in ``_messages`` of the assistant message that made the call."""
    _corrected: _Corrected | None = None
    _awaiting: ToolCall | None = None
    """A call rejected without words: the user's next message may say why."""
    _claim: int | None = None
    """The last assistant message with text since the last user message (what a reply may
    correct), as an index in ``_messages``."""
    orphan_results: int = 0
    """Results whose ``tool_use_id`` matched no call in this conversation."""
    user_text_corrections: bool = True
    """Read user messages as possible corrections (off for formats whose ``user`` messages
    are the environment's observations, not a person's words)."""
    tools: tuple[ChatMessage, ...] = ()
    """The tool definitions the input records (see ``chat_tools``)."""

    # -- user side ------------------------------------------------------------------------

    def add_user_text(
        self,
        text: str,
        *,
        compact_summary: bool = False,
        meta: bool = False,
        native: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a user message (``native``: the input's own message, kept as it is).

        A real (non-meta) user message ends any pending failure: the assistant's next message
        answers the user, not the failure. A compaction summary is the user message the agent
        was given in place of the compacted conversation, and is kept as that.
        """
        kind = TurnKind.COMPACT_SUMMARY if compact_summary else TurnKind.MESSAGE
        self._drafts.append(_Draft(Role.USER, kind, [text]))
        self._messages.append(dict(native) if native is not None else _message("user", text))
        if not meta:
            self._pending.clear()
            self._attempts.clear()  # a user message starts a new attempt at everything
            if not compact_summary:
                self._read_reply(text)

    def _read_reply(self, text: str) -> None:
        """Read a real user message as a correction, when it is one.

        It is the words of a call rejected right before, or a reply that contradicts the
        agent's last message.
        """
        corrections = self.classifier.corrections
        words = instruction_text(text)
        if words is None:  # an interruption marker, a command echo: the words may follow
            return
        claim, self._claim = self._claim, None
        if corrections is None or self._corrected is not None:
            return
        if self._awaiting is not None:
            call, self._awaiting = self._awaiting, None
            found = corrections.after_rejection(words)
            if found is None:
                self._non_mistakes[ErrorKind.USER_REJECTED] += 1
                return
            self._corrected = _Corrected(found, self._call_message.get(call.id), call)
            return
        if claim is None or not self.user_text_corrections:
            return
        found = corrections.match(words, message_text(self._messages[claim]))
        if found is not None:
            self._corrected = _Corrected(found, claim)

    def add_system_text(
        self, text: str, *, native: Mapping[str, Any] | None = None, context: bool = True
    ) -> None:
        """Add a system message.

        ``context=False`` marks a note the format records about the run (``run ended with an
        error``) that the model never saw: it is a turn, but not one of the ``messages``.
        """
        self._drafts.append(_Draft(Role.SYSTEM, TurnKind.MESSAGE, [text]))
        if context:
            self._messages.append(dict(native) if native is not None else _message("system", text))

    def add_tool_results(
        self,
        results: list[ResultIn],
        extra_text: list[str] | None = None,
        *,
        native: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Add tool results (and any text sent with them) as one user turn.

        Consecutive result entries are merged into one turn, as the API sends them. In
        ``messages`` each result is a ``tool`` message answering its call (``native``: the
        input's own messages, one per result), and the text sent with them a ``user`` message
        after them. A result whose call is in no assistant message of this conversation is a
        ``user`` message (a ``tool`` message must answer a call).
        """
        parts: list[str] = []
        for position, result in enumerate(results):
            call = self._calls.get(result.tool_use_id)
            if call is None:
                self.orphan_results += 1
            name = call.name if call is not None else "?"
            tag = _ERROR_TAG if result.is_error else _RESULT_TAG
            prefix = f"{tag} {name}: " if call is not None else f"{tag} "
            parts.append(join((prefix, result.text)))
            self._record_outcome(result, call)
            if native is not None:
                self._messages.append(dict(native[position]))
            elif result.tool_use_id in self._call_message:
                self._messages.append(
                    {"role": "tool", "tool_call_id": result.tool_use_id, "content": result.text}
                )
            else:
                self._messages.append(_message("user", result.text))
        if extra_text:
            self._messages.append(_message("user", join(extra_text, "\n")))
        parts.extend(extra_text or ())
        last = self._drafts[-1] if self._drafts else None
        if last is not None and last.role is Role.USER and last.kind is TurnKind.TOOL_RESULTS:
            last.parts.extend(parts)
        else:
            self._drafts.append(_Draft(Role.USER, TurnKind.TOOL_RESULTS, parts))

    def _record_outcome(self, result: ResultIn, call: ToolCall | None) -> None:
        if not result.is_error:
            if self._attempts:  # a success ends its action's run of failures
                action = _action(call)
                if action is not None:
                    self._attempts.pop(action, None)
            return
        name = call.name if call is not None else None
        action = _action(call)
        text = (
            join(("<tool_use_error>", result.error_text, "</tool_use_error>"))
            if result.error_text
            else result.text
        )
        found = self.classifier.classify(
            text,
            name,
            command=call.command if call is not None else None,
            exit_code=result.exit_code,
            stderr=result.stderr,
            hook=result.hook,
            interrupted=result.interrupted,
        )
        if not found.kind.is_mistake:
            if not self._rejection(found.kind, text, call):
                self._non_mistakes[found.kind] += 1
            return
        repeats, earlier = self._repeat(action, found, result.text)
        self._pending.append(_Failure(result, call, found, repeats, earlier))

    def _rejection(self, kind: ErrorKind, text: str, call: ToolCall | None) -> bool:
        """Take a rejected call as a user correction (its words) or wait for its words."""
        corrections = self.classifier.corrections
        if kind is not ErrorKind.USER_REJECTED or corrections is None or call is None:
            return False
        if self._corrected is not None:
            return False
        words = rejection_words(text)
        if words is not None:
            self._corrected = _Corrected(
                corrections.rejected(words), self._call_message.get(call.id), call
            )
            return True
        if self._awaiting is None:
            self._awaiting = call  # counted as a rejection if no words follow
            return True
        return False

    def _repeat(
        self, action: tuple[str, str] | None, found: Classification, text: str
    ) -> tuple[int, tuple[str, ...]]:
        """How many times this same action failed the same way right before, and how.

        A repeat is the same tool with the same command or target failing with the same kind
        and the same grounded facts. Progress (fewer failing tests) or a different error starts
        a new count; so does a success of the action or a user message.
        """
        if action is None:
            return 0, ()
        signature = (found.kind, found.facts.path, found.facts.program, found.facts.exception)
        failing = _failing_count(text)
        error = clamp_stripped(text, _EARLIER_ERROR_CHARS)
        before = self._attempts.get(action)
        if (
            before is None
            or before.signature != signature
            or (failing is not None and before.failing is not None and failing < before.failing)
        ):  # a first failure, another error, or progress: a new count
            self._attempts[action] = _Attempts(signature, failing, [error])
            return 0, ()
        earlier = tuple(before.errors[-_EARLIER_ERRORS:])
        before.errors.append(error)
        before.failing = failing
        return len(before.errors) - 1, earlier

    # -- assistant side -------------------------------------------------------------------

    def register_call(self, call: ToolCall) -> None:
        """Remember a tool call so its result can be paired with it."""
        self._calls[call.id] = call
        self._tools_used.setdefault(call.name, None)

    def add_assistant(
        self,
        message_id: str | None,
        blocks: Sequence[Block],
        *,
        api_error: bool = False,
        native: Mapping[str, Any] | None = None,
    ) -> None:
        """Add (part of) an assistant message: its text, thinking and tool calls in order.

        Blocks of a message already seen (same ``message_id``) are appended to it: Claude Code
        writes one entry per content block. A new message right after failed results is an
        error site; a synthetic API-error entry is not a model message (and not one of the
        ``messages``), so it leaves pending failures for the next real message. ``native`` is
        the input's own message, kept as it is.
        """
        parts = [self._part(block) for block in blocks]
        if message_id is not None:
            index = self._message_index.get(message_id)
            if index is not None:
                draft = self._drafts[index]
                draft.parts.extend(parts)
                if draft.native is not None:
                    self._extend_message(draft.native, blocks)
                    self._note_claim(draft.native)
                return
            self._message_index[message_id] = len(self._drafts)
        kind = TurnKind.API_ERROR if api_error else TurnKind.MESSAGE
        draft = _Draft(Role.ASSISTANT, kind, parts)
        if not api_error:
            draft.native = len(self._messages)
            if native is not None:
                self._messages.append(dict(native))
            else:
                self._messages.append({"role": "assistant", "content": ""})
                self._extend_message(draft.native, blocks)
            for block in blocks:
                if isinstance(block, CallIn):
                    self._call_message[block.call.id] = draft.native
            draft.site = self._site_from_pending(draft.native)
            self._pending.clear()
            self._corrected = None
            if self._awaiting is not None:  # the agent went on: the rejection had no words
                self._non_mistakes[ErrorKind.USER_REJECTED] += 1
                self._awaiting = None
            self._note_claim(draft.native)
        self._drafts.append(draft)

    def _note_claim(self, index: int) -> None:
        """Remember the message at ``index`` as what a user reply may correct (if it has text)."""
        text = message_text(self._messages[index])
        if text and not text.isspace():  # ``text.strip()``, without copying the text
            self._claim = index

    def _part(self, block: Block) -> str:
        """A block as the seeds' turn text shows it (registering a tool call)."""
        if isinstance(block, str):
            return block
        if isinstance(block, Thinking):
            return f"[THINKING]\n{block.text}"
        self.register_call(block.call)
        return f"[TOOL_CALL {block.call.name}] {block.call.input_json}"

    def _extend_message(self, index: int, blocks: Sequence[Block]) -> None:
        """Add blocks to the native assistant message at ``index``."""
        message = self._messages[index]
        for block in blocks:
            if isinstance(block, CallIn):
                self._call_message[block.call.id] = index
                calls = message.setdefault("tool_calls", [])
                calls.append(
                    {
                        "id": block.call.id,
                        "type": "function",
                        "function": {"name": block.call.name, "arguments": block.arguments},
                    }
                )
            elif isinstance(block, Thinking):
                before = message.get("reasoning_content")
                message["reasoning_content"] = f"{before}\n{block.text}" if before else block.text
            elif block:
                before = message["content"]
                message["content"] = f"{before}\n{block}" if before else block

    def _site_from_pending(self, message_index: int) -> ErrorSite | None:
        if self._corrected is not None:
            return self._user_site(self._corrected, message_index)
        if not self._pending:
            return None
        first = self._pending[0]
        call = first.call
        excerpt = self.limits.excerpt_chars
        tagged = f"{_ERROR_TAG} {first.result.text[:excerpt]}"  # all an excerpt can hold
        return ErrorSite(
            kind=first.found.kind,
            error_message=clamp_middle_stripped(first.result.text, self.limits.error_message_chars),
            tool_use_id=first.result.tool_use_id,
            tool_name=call.name if call is not None else None,
            tool_input=call.input_json if call is not None else None,
            tool_target=call.target if call is not None else None,
            source_content_excerpt=tagged[:excerpt],
            consecutive_failures=first.repeats + 1,
            failed_calls=len(self._pending),
            exit_code=first.found.exit_code,
            repeats=first.repeats,
            earlier_errors=first.earlier,
            facts=first.found.facts,
            command=call.command if call is not None else None,
            message_index=message_index,
            mistake_message_index=self._call_message.get(first.result.tool_use_id),
        )

    def _user_site(self, corrected: _Corrected, message_index: int) -> ErrorSite:
        """The site of a user correction: the user's words are its evidence."""
        correction = corrected.correction
        call = corrected.call
        words = correction.words
        return ErrorSite(
            kind=ErrorKind.USER_CORRECTION,
            error_message=clamp_middle(words, self.limits.error_message_chars),
            tool_use_id=call.id if call is not None else "",
            tool_name=call.name if call is not None else None,
            tool_input=call.input_json if call is not None else None,
            tool_target=call.target if call is not None else None,
            source_content_excerpt=f"[USER] {words}"[: self.limits.excerpt_chars],
            failed_calls=len(self._pending),
            facts=Facts(
                problem=correction.problem, codes=(correction.rule,), key_line=correction.evidence
            ),
            command=call.command if call is not None else None,
            message_index=message_index,
            mistake_message_index=corrected.mistake,
            detected_by=DetectedBy.USER,
        )

    # -- result ---------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """Whether nothing of the conversation was added."""
        return not self._drafts

    def build(self) -> Trace:
        """Freeze the conversation into a ``Trace``."""
        turns = tuple(Turn(d.role, join(d.parts, "\n"), d.kind, d.site) for d in self._drafts)
        non_mistakes = Counter(self._non_mistakes)
        if self._awaiting is not None:  # the conversation ended on a rejection without words
            non_mistakes[ErrorKind.USER_REJECTED] += 1
        return Trace(
            trace_id=self.trace_id,
            turns=turns,
            source=self.source,
            tools_used=tuple(self._tools_used),
            non_mistakes=dict(non_mistakes),
            messages=tuple(self._messages),
            tools=self.tools,
        )


def chat_tools(raw: object) -> tuple[ChatMessage, ...]:
    """Tool definitions in the OpenAI chat ``tools`` shape, from any API's shape.

    Chat Completions entries (``{"type": "function", "function": {...}}``) are kept as they
    are; Responses API entries (``{"type": "function", "name", "parameters"}``) and Anthropic
    ones (``{"name", "description", "input_schema"}``) are rewritten; anything else (a
    provider's built-in tool) is left out.
    """
    if not isinstance(raw, list):
        return ()
    tools: list[ChatMessage] = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("function"), dict):
            tools.append(entry)
            continue
        name = entry.get("name")
        schema = entry.get("parameters", entry.get("input_schema"))
        if not isinstance(name, str) or not isinstance(schema, dict):
            continue
        function: ChatMessage = {"name": name}
        if isinstance(entry.get("description"), str):
            function["description"] = entry["description"]
        function["parameters"] = schema
        tools.append({"type": "function", "function": function})
    return tuple(tools)


def _message(role: str, text: str) -> ChatMessage:
    return {"role": role, "content": text}
