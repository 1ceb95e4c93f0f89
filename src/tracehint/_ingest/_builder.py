"""Format-agnostic trace assembly and error-site tagging.

A format parser (Claude Code, OpenAI messages) feeds a ``TraceBuilder`` with user text,
assistant messages (text and tool calls) and tool results. The builder pairs every result with
its call by id, classifies failures, counts consecutive failures per tool, and marks the
assistant message that comes right after one or more failed results as an error site.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from tracehint._kinds import ErrorKind, Role, TurnKind
from tracehint._limits import Limits, clamp, clamp_middle
from tracehint._records import ErrorSite, ToolCall, Trace, TraceSource, Turn

if TYPE_CHECKING:
    from tracehint._classify import Classification, Classifier

__all__ = ["ResultIn", "TraceBuilder", "tool_call"]

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


def tool_call(call_id: str, name: str, arguments: object, limits: Limits) -> ToolCall:
    """Make a ``ToolCall`` record from a call's parsed JSON arguments."""
    try:
        text = orjson.dumps(arguments).decode()
    except TypeError:
        text = str(arguments)
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
        if isinstance(value, str) and value.strip():
            return clamp(value, 2000)
    return None


@dataclass(frozen=True, slots=True)
class ResultIn:
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


@dataclass(slots=True)
class _Failure:
    result: ResultIn
    call: ToolCall | None
    found: Classification
    repeats: int
    earlier: tuple[str, ...]


@dataclass(slots=True)
class _Attempts:
    """The failures in a row of one action (same tool, same command or target)."""

    signature: tuple[object, ...]
    failing: int | None
    errors: list[str]


_FAILED_COUNT = re.compile(r"\b(\d+) (?:failed|errors?)\b")


def _failing_count(text: str) -> int | None:
    """How many tests or errors a runner reported (the last count in the output)."""
    counts = _FAILED_COUNT.findall(text[-3000:])
    return int(counts[-1]) if counts else None


@dataclass(slots=True)
class _Draft:
    role: Role
    kind: TurnKind
    parts: list[str]
    site: ErrorSite | None = None


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
    orphan_results: int = 0
    """Results whose ``tool_use_id`` matched no call in this conversation."""

    # -- user side ------------------------------------------------------------------------

    def add_user_text(
        self, text: str, *, compact_summary: bool = False, meta: bool = False
    ) -> None:
        """Add a user message.

        A real (non-meta) user message ends any pending failure: the assistant's next message
        answers the user, not the failure.
        """
        kind = TurnKind.COMPACT_SUMMARY if compact_summary else TurnKind.MESSAGE
        self._drafts.append(_Draft(Role.USER, kind, [text]))
        if not meta:
            self._pending.clear()
            self._attempts.clear()  # a user message starts a new attempt at everything

    def add_system_text(self, text: str) -> None:
        """Add a system prompt (OpenAI-style input)."""
        self._drafts.append(_Draft(Role.SYSTEM, TurnKind.MESSAGE, [text]))

    def add_tool_results(
        self, results: list[ResultIn], extra_text: list[str] | None = None
    ) -> None:
        """Add tool results (and any text sent with them) as one user turn.

        Consecutive result entries are merged into one turn, as the API sends them.
        """
        parts: list[str] = []
        for result in results:
            call = self._calls.get(result.tool_use_id)
            if call is None:
                self.orphan_results += 1
            name = call.name if call is not None else "?"
            tag = _ERROR_TAG if result.is_error else _RESULT_TAG
            parts.append(
                f"{tag} {name}: {result.text}" if call is not None else f"{tag} {result.text}"
            )
            self._record_outcome(result, call)
        parts.extend(extra_text or ())
        last = self._drafts[-1] if self._drafts else None
        if last is not None and last.role is Role.USER and last.kind is TurnKind.TOOL_RESULTS:
            last.parts.extend(parts)
        else:
            self._drafts.append(_Draft(Role.USER, TurnKind.TOOL_RESULTS, parts))

    def _record_outcome(self, result: ResultIn, call: ToolCall | None) -> None:
        name = call.name if call is not None else None
        action = _action(call)
        if not result.is_error:
            if action is not None:
                self._attempts.pop(action, None)
            return
        text = (
            f"<tool_use_error>{result.error_text}</tool_use_error>"
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
            self._non_mistakes[found.kind] += 1
            return
        repeats, earlier = self._repeat(action, found, result.text)
        self._pending.append(_Failure(result, call, found, repeats, earlier))

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
        error = clamp(text.strip(), _EARLIER_ERROR_CHARS)
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
        self, message_id: str | None, parts: list[str], *, api_error: bool = False
    ) -> None:
        """Add (part of) an assistant message.

        Parts of a message already seen (same ``message_id``) are appended to it: Claude Code
        writes one entry per content block. A new message right after failed results is an
        error site; a synthetic API-error entry is not a model message, so it leaves pending
        failures for the next real message.
        """
        if message_id is not None:
            index = self._message_index.get(message_id)
            if index is not None:
                self._drafts[index].parts.extend(parts)
                return
            self._message_index[message_id] = len(self._drafts)
        kind = TurnKind.API_ERROR if api_error else TurnKind.MESSAGE
        draft = _Draft(Role.ASSISTANT, kind, list(parts))
        if not api_error:
            draft.site = self._site_from_pending()
            self._pending.clear()
        self._drafts.append(draft)

    def _site_from_pending(self) -> ErrorSite | None:
        if not self._pending:
            return None
        first = self._pending[0]
        call = first.call
        tagged = f"{_ERROR_TAG} {first.result.text}"
        return ErrorSite(
            kind=first.found.kind,
            error_message=clamp_middle(first.result.text.strip(), self.limits.error_message_chars),
            tool_use_id=first.result.tool_use_id,
            tool_name=call.name if call is not None else None,
            tool_input=call.input_json if call is not None else None,
            tool_target=call.target if call is not None else None,
            source_content_excerpt=tagged[: self.limits.excerpt_chars],
            consecutive_failures=first.repeats + 1,
            failed_calls=len(self._pending),
            exit_code=first.found.exit_code,
            repeats=first.repeats,
            earlier_errors=first.earlier,
            facts=first.found.facts,
            command=call.command if call is not None else None,
        )

    # -- result ---------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """Whether nothing of the conversation was added."""
        return not self._drafts

    def build(self) -> Trace:
        """Freeze the conversation into a ``Trace``."""
        turns = tuple(Turn(d.role, "\n".join(d.parts), d.kind, d.site) for d in self._drafts)
        return Trace(
            trace_id=self.trace_id,
            turns=turns,
            source=self.source,
            tools_used=tuple(self._tools_used),
            non_mistakes=dict(self._non_mistakes),
        )
