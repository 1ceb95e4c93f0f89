"""Typed records that cross stage boundaries: tool calls, error sites, hints, turns, traces.

Everything here is a frozen, slotted dataclass. Dicts exist only at the JSON edges
(``_ingest`` reading input, ``_wire`` writing output).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeAlias

from tracehint._kinds import (
    DetectedBy,
    ErrorKind,
    HintSource,
    HintStatus,
    InputFormat,
    Role,
    TurnKind,
)
from tracehint._plaintext import plain_text

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = [
    "ChatMessage",
    "ErrorSite",
    "Facts",
    "Finding",
    "Hint",
    "HintRequest",
    "InputIssue",
    "ToolCall",
    "Trace",
    "TraceSource",
    "Turn",
]


ChatMessage: TypeAlias = "dict[str, Any]"
"""One OpenAI chat message (``role``, ``content``, ``tool_calls``, ``tool_call_id``, ...).

The conversation in the shape a trainer's chat template takes: JSON data by nature (the input's
own messages are kept as they are), so a dict rather than a record. Treat it as read-only.
"""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the assistant made, as far as a hint needs it."""

    id: str
    name: str
    input_json: str
    """The call's arguments as compact JSON, bounded (see ``Limits.tool_input_chars``)."""
    target: str | None = None
    """The main argument when there is one: a file path, a command, a URL or a pattern."""
    command: str | None = None
    """The shell command the call ran, when it ran one (bounded)."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What the failure itself shows, read from its structure: the grounds of a template.

    Every field is taken from the site (the call's input or the error's own lines), never
    guessed; a template states only what is here and abstains when what it needs is missing.
    """

    path: str | None = None
    """The path the error names as missing, refused or a directory."""
    paths: tuple[str, ...] = ()
    """Files a checker named (for example those a formatter would change)."""
    program: str | None = None
    """The program that was not found or could not be executed."""
    tests: tuple[str, ...] = ()
    """The failing tests a test runner named (at most three)."""
    exception: str | None = None
    """``Type: message`` of the exception a script raised."""
    frame: str | None = None
    """The innermost frame of that exception (``file:line in function``)."""
    parameter: str | None = None
    """The parameter a schema validation error names."""
    problem: str | None = None
    """A known problem, in words (``the branch has no upstream branch``)."""
    location: str | None = None
    """``file:line`` of the first build or lint error."""
    codes: tuple[str, ...] = ()
    """Error or rule codes (``TS2322``, ``E501``)."""
    key_line: str | None = None
    """The output's most telling error line, bounded."""
    hook: str | None = None
    """The hook (or the hook's failing checks) that blocked the call."""
    status: int | None = None
    """The HTTP status of a failed fetch."""

    def as_dict(self) -> dict[str, object]:
        """The facts that are set, for the output (the JSON edge)."""
        out: dict[str, object] = {}
        for spec in fields(self):
            name = spec.name
            value = getattr(self, name)
            if value is None or value == ():
                continue
            out[name] = list(value) if isinstance(value, tuple) else value
        return out


NO_FACTS = Facts()


@dataclass(frozen=True, slots=True)
class Finding:
    """A mistake the reader pass found in a trace, after validation (``--detect reader``).

    Every finding names an assistant message of the trace, quotes the trace verbatim, and
    carries a hint that passed the same checks as judge hints.
    """

    kind: ErrorKind
    """One of ``READER_KINDS``."""
    message_index: int
    """Index in ``Trace.messages`` of the assistant message that was the mistake."""
    quote: str
    """The evidence: text that occurs verbatim in the trace."""
    hint: str
    model: str | None = None
    """The judge model that read the trace."""


@dataclass(frozen=True, slots=True)
class ErrorSite:
    """Why an assistant turn is an error site: the mistake right before it.

    ``detected_by`` says what found it: a failed tool call (``tool_error``: the tool fields
    describe the call), the user's correction (``user``: ``error_message`` holds the user's
    words; the tool fields describe the rejected call, when the correction was a rejection), or
    the reader pass (``reader``: ``error_message`` holds the finding's quote; see ``finding``).
    Every site sits on the turn of the agent's next assistant message after the evidence.
    """

    kind: ErrorKind
    error_message: str
    """The real error text, bounded (head and tail kept)."""
    tool_use_id: str
    tool_name: str | None
    """``None`` only when the result had no matching ``tool_use`` in the transcript."""
    tool_input: str | None
    tool_target: str | None
    source_content_excerpt: str
    consecutive_failures: int = 1
    """How many times in a row this same action has now failed (``repeats + 1``)."""
    failed_calls: int = 1
    """How many failed tool results (mistakes) precede this turn."""
    exit_code: int | None = None
    repeats: int = 0
    """How many earlier attempts of the same action failed right before this one (0: none)."""
    earlier_errors: tuple[str, ...] = ()
    """The errors of those earlier attempts, oldest first, each bounded."""
    facts: Facts = NO_FACTS
    """What the failure shows (the missing path, the failing tests, ...)."""
    command: str | None = None
    """The shell command the failing call ran, when it ran one."""
    message_index: int | None = None
    """Index in ``Trace.messages`` of the assistant message right after the failed result
    (where the seeds' collator puts the hint: the agent's recovery)."""
    mistake_message_index: int | None = None
    """Index in ``Trace.messages`` of the assistant message whose call failed (the mistake);
    ``None`` when the result answers no call of the conversation."""
    detected_by: DetectedBy = DetectedBy.TOOL_ERROR
    finding: Finding | None = None
    """The reader's finding about the mistake message: the site's own (``detected_by`` is
    ``reader``), or merged into a tool-error or user site on the same message."""


@dataclass(frozen=True, slots=True)
class Hint:
    """The outcome of asking the hint layers about one site.

    Every layer's hint is a ``Hint``, and so is a cached one read back: its text (and the
    reasons) are made plain text here (``plain_text``: newlines kept, terminal escapes, bidi
    overrides and other control characters removed) before anything caches or writes them.
    """

    text: str | None
    source: HintSource | None
    status: HintStatus
    reason: str | None = None
    """Why there is no hint (``status`` other than ``ok``)."""
    model: str | None = None
    """For judge hints: the model that wrote it."""
    cached: bool = False
    judge_reason: str | None = None
    """Why the judge did not answer, when it was asked and a later layer answered instead."""

    def __post_init__(self) -> None:
        for name in ("text", "reason", "judge_reason"):
            value = getattr(self, name)
            if value is not None:
                clean = plain_text(value)
                if clean is not value:
                    object.__setattr__(self, name, clean)


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a trace."""

    role: Role
    content: str
    kind: TurnKind = TurnKind.MESSAGE
    site: ErrorSite | None = None
    hint: Hint | None = None


@dataclass(frozen=True, slots=True)
class TraceSource:
    """Where a trace came from."""

    path: str
    format: InputFormat
    session_id: str | None = None
    agent_id: str | None = None
    agent_type: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Trace:
    """One conversation (a session or one sub-agent of it) with its error sites tagged."""

    trace_id: str
    turns: tuple[Turn, ...]
    source: TraceSource
    final_reward: float = 0.0
    tools_used: tuple[str, ...] = ()
    """Names of the tools this trace actually called, in first-use order."""
    non_mistakes: Mapping[ErrorKind, int] = field(default_factory=dict)
    """Failed tool results that are not the agent's mistake, by kind (never sites)."""
    issues: tuple[InputIssue, ...] = ()
    """Problems met reading this conversation (``Annotator.annotate_many``: a malformed
    rollout is a trace with no turns and its problem here)."""
    messages: tuple[ChatMessage, ...] = ()
    """The conversation as OpenAI chat messages, as the trainer's chat template takes them:
    the input's own messages for OpenAI-style input, else built from the format (assistant
    ``tool_calls``, one ``tool`` message per result, thinking as ``reasoning_content``)."""
    tools: tuple[ChatMessage, ...] = ()
    """The tool definitions the agent was given, in the OpenAI ``tools`` shape, when the input
    records them (OpenAI, Anthropic and Responses API records; agent transcripts do not)."""

    def sites(self) -> Iterator[tuple[int, Turn, ErrorSite]]:
        """Yield ``(index, turn, site)`` for every error site, in order."""
        for index, turn in enumerate(self.turns):
            if turn.site is not None:
                yield index, turn, turn.site

    @property
    def site_count(self) -> int:
        """Number of error sites in this trace."""
        return sum(1 for turn in self.turns if turn.site is not None)

    def with_hints(self, hints: Mapping[int, Hint]) -> Trace:
        """Return a copy with ``hints[index]`` set on the turn at each index."""
        if not hints:
            return self
        turns = tuple(
            replace(turn, hint=hints[i]) if i in hints else turn
            for i, turn in enumerate(self.turns)
        )
        return replace(self, turns=turns)


@dataclass(frozen=True, slots=True)
class HintRequest:
    """Everything a hint layer may use for one site (the context crosses into the hint stage)."""

    site: ErrorSite
    next_action: str = ""
    """The assistant's message at the site (what it did after the failure), bounded.

    The judge sees it only when asked to (``AnnotatorConfig.judge_show_next_action``): it is
    often the student's own recovery, and showing it biases the teacher toward the student.
    """
    tools_used: tuple[str, ...] = ()
    """The tools this trace actually called, in first-use order."""
    first_instruction: str = ""
    """The trace's first real user instruction, bounded (``""`` when there is none)."""
    latest_instruction: str = ""
    """The latest real user instruction before the site, bounded; ``""`` when it is the first."""
    intent: str = ""
    """The agent's own text right before the failing call (its stated intent), bounded;
    thinking and tool-call lines dropped."""
    mistake_text: str = ""
    """For a user correction: the text of the assistant message the user corrected (the claim),
    bounded, without thinking; ``""`` for other sites."""


@dataclass(frozen=True, slots=True)
class InputIssue:
    """A problem with the input that was recorded instead of stopping the run."""

    path: str
    line: int | None
    """1-based line number, or ``None`` when the problem concerns the whole file."""
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"
