"""Typed records that cross stage boundaries: tool calls, error sites, hints, turns, traces.

Everything here is a frozen, slotted dataclass. Dicts exist only at the JSON edges
(``_ingest`` reading input, ``_wire`` writing output).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from tracehint._kinds import ErrorKind, HintSource, HintStatus, Role, TurnKind

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = [
    "ErrorSite",
    "Hint",
    "HintRequest",
    "InputIssue",
    "ToolCall",
    "Trace",
    "TraceSource",
    "Turn",
]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the assistant made, as far as a hint needs it."""

    id: str
    name: str
    input_json: str
    """The call's arguments as compact JSON, bounded (see ``Limits.tool_input_chars``)."""
    target: str | None = None
    """The main argument when there is one: a file path, a command, a URL or a pattern."""


@dataclass(frozen=True, slots=True)
class ErrorSite:
    """Why an assistant turn is an error site: the failed tool call right before it."""

    kind: ErrorKind
    error_message: str
    """The real error text, bounded (head and tail kept)."""
    tool_use_id: str
    tool_name: str | None
    """``None`` only when the result had no matching ``tool_use`` in the transcript."""
    tool_input: str | None
    tool_target: str | None
    source_content_excerpt: str
    underlying_kind: ErrorKind | None = None
    """For ``repeated_failure``: what the latest failure itself was."""
    consecutive_failures: int = 1
    """How many times in a row this tool has now failed."""
    failed_calls: int = 1
    """How many failed tool results (mistakes) precede this turn."""
    exit_code: int | None = None
    repeats: int = 0
    """How many earlier attempts of the same action failed right before this one (0: none)."""
    earlier_errors: tuple[str, ...] = ()
    """The errors of those earlier attempts, oldest first, each bounded."""


@dataclass(frozen=True, slots=True)
class Hint:
    """The outcome of asking the hint layers about one site."""

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
    format: str
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
