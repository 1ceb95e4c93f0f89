"""Closed sets of the wire format: error kinds, hint sources, roles, turn kinds.

One ``ErrorKind`` enum serves the classifier *and* the templates, so a kind the classifier
emits always has a template that answers it (the seeds' kinds never met). The string values
are the stable wire format written to ``tool_error``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "READER_KINDS",
    "DetectedBy",
    "ErrorKind",
    "HintSource",
    "HintStatus",
    "InputFormat",
    "LayerName",
    "Role",
    "TurnKind",
]


class ErrorKind(StrEnum):
    """Why a tool call failed.

    Agent mistakes make an error site; the three *non-mistake* kinds (``user_rejected``,
    ``interrupted``, ``sibling_cancelled``) are counted but never make a site, because the
    agent did nothing wrong and a hint there would teach the wrong lesson.
    """

    # -- file-system mistakes -------------------------------------------------------------
    FILE_NOT_READ = "file_not_read"
    """Edit/Write on a file the agent has not read in this session."""
    FILE_MODIFIED_SINCE_READ = "file_modified_since_read"
    """The file changed on disk after the agent read it."""
    FILE_NOT_FOUND = "file_not_found"
    """A path that does not exist."""
    IS_A_DIRECTORY = "is_a_directory"
    """A file operation on a directory (EISDIR)."""
    STRING_NOT_FOUND = "string_not_found"
    """Edit's ``old_string`` is not in the file."""
    STRING_NOT_UNIQUE = "string_not_unique"
    """Edit's ``old_string`` matches several places and ``replace_all`` is false."""
    EDIT_REJECTED = "edit_rejected"
    """The edit tool refused an edit that would break the file (e.g. SWE-agent's linter)."""
    OUTPUT_TOO_LARGE = "output_too_large"
    """A file read or a command output above the tool's size limit."""
    # -- shell mistakes -------------------------------------------------------------------
    COMMAND_NOT_FOUND = "command_not_found"
    """The shell could not find the program (exit code 127)."""
    COMMAND_FAILED = "command_failed"
    """A command ran and exited non-zero, and nothing more specific is known."""
    TEST_FAILED = "test_failed"
    """A test run (pytest, jest/vitest, go test, cargo test, ...) reported failing tests."""
    BUILD_FAILED = "build_failed"
    """A compiler or type checker reported errors."""
    LINT_FAILED = "lint_failed"
    """A linter reported findings and exited non-zero."""
    FORMAT_FAILED = "format_failed"
    """A formatter in check mode found files it would change."""
    GIT_FAILED = "git_failed"
    """A git command failed (no upstream, conflict, nothing to commit, rejected push, ...)."""
    SCRIPT_ERROR = "script_error"
    """Code the agent ran raised an exception (a traceback or an uncaught error)."""
    TIMEOUT = "timeout"
    """The tool call ran past its time limit."""
    # -- permissions ----------------------------------------------------------------------
    PERMISSION_DENIED = "permission_denied"
    """The OS or Claude Code's permission system refused the operation."""
    HOOK_BLOCKED = "hook_blocked"
    """A user-configured hook blocked the tool call."""
    # -- call shape -----------------------------------------------------------------------
    INPUT_VALIDATION = "input_validation"
    """The tool's arguments did not match its schema."""
    JSON_DECODE = "json_decode"
    """Arguments or data that should be JSON were not."""
    UNKNOWN_TOOL = "unknown_tool"
    """A call to a tool that does not exist."""
    # -- remote ---------------------------------------------------------------------------
    WEB_FETCH_FAILED = "web_fetch_failed"
    """An HTTP fetch or web request failed (4xx/5xx, DNS, refused)."""
    # -- patterns and fallback ------------------------------------------------------------
    TOOL_ERROR = "tool_error"
    """A failure no rule recognises (the generic fallback)."""
    # -- mistakes no tool reported: the user's correction, the reader's findings ----------
    USER_CORRECTION = "user_correction"
    """The user rejected the call with words, or contradicted the agent's claim ("still
    doesn't work", "we lost X")."""
    FALSE_CLAIM = "false_claim"
    """The agent said something was done or works, and it was not (the reader)."""
    UNVERIFIED_CLAIM = "unverified_claim"
    """The agent claimed success without running what would show it (the reader)."""
    TEST_WEAKENED = "test_weakened"
    """A failing test made to pass by weakening it (the reader)."""
    CHECK_BYPASSED = "check_bypassed"
    """A hook, linter or check skipped or silenced (``--no-verify``, ``# noqa``) (the reader)."""
    INSTRUCTION_IGNORED = "instruction_ignored"
    """The agent did something other than what the user asked (the reader)."""
    WASTED_EFFORT = "wasted_effort"
    """Work that did not move the task on: loops, redoing, needless detours (the reader)."""
    OTHER_MISTAKE = "other"
    """Another mistake the reader found (its hint says which)."""
    # -- not mistakes ---------------------------------------------------------------------
    USER_REJECTED = "user_rejected"
    """The user declined the tool call (with or without feedback)."""
    INTERRUPTED = "interrupted"
    """The user interrupted the call."""
    SIBLING_CANCELLED = "sibling_cancelled"
    """A parallel call was cancelled because another one failed."""

    @property
    def family(self) -> str:
        """The kind's family: ``command`` for every command-failure subkind, else the kind."""
        return "command" if self in _COMMAND_FAMILY else self.value

    @property
    def is_mistake(self) -> bool:
        """Whether a failure of this kind is the agent's mistake (and so an error site)."""
        return self not in _NON_MISTAKES

    @property
    def is_tool_error(self) -> bool:
        """Whether the kind is a failed tool result's (a template or the raw text may answer)."""
        return self is not ErrorKind.USER_CORRECTION and self not in READER_KINDS


_COMMAND_FAMILY = frozenset(
    {
        ErrorKind.COMMAND_FAILED,
        ErrorKind.TEST_FAILED,
        ErrorKind.BUILD_FAILED,
        ErrorKind.LINT_FAILED,
        ErrorKind.FORMAT_FAILED,
        ErrorKind.GIT_FAILED,
        ErrorKind.SCRIPT_ERROR,
    },
)

_NON_MISTAKES = frozenset(
    {ErrorKind.USER_REJECTED, ErrorKind.INTERRUPTED, ErrorKind.SIBLING_CANCELLED},
)

READER_KINDS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.FALSE_CLAIM,
        ErrorKind.UNVERIFIED_CLAIM,
        ErrorKind.TEST_WEAKENED,
        ErrorKind.CHECK_BYPASSED,
        ErrorKind.INSTRUCTION_IGNORED,
        ErrorKind.WASTED_EFFORT,
        ErrorKind.OTHER_MISTAKE,
    },
)
"""The closed set of kinds the reader pass may report (``--detect reader``)."""


class DetectedBy(StrEnum):
    """Which detector found a site (``detected_by`` on the output turn)."""

    TOOL_ERROR = "tool_error"
    """A failed tool result (the classifier)."""
    USER = "user"
    """The user's own correction: a rejection with words, or a reply contradicting a claim."""
    READER = "reader"
    """The reader pass: the judge read the trace (``--detect reader``)."""


class HintSource(StrEnum):
    """Which layer produced a site's hint."""

    TEMPLATE = "template"
    RAW = "raw"
    JUDGE = "judge"
    USER = "user"
    """The user's own words (a user correction, offline)."""
    READER = "reader"
    """The reader pass's hint, written with its finding (``--detect reader``)."""


class HintStatus(StrEnum):
    """What happened when the hint layers were asked for a site's hint."""

    OK = "ok"
    """A layer answered."""
    NO_HINT = "no_hint"
    """Every layer deferred (for example the raw layer with no error text)."""
    FAILED = "failed"
    """A layer that should have answered failed (for example the judge after retries)."""
    NOT_A_MISTAKE = "not_a_mistake"
    """The judge found the failure deliberate (e.g. a bug reproduced on purpose): the site is
    kept in the output with no hint and is not for training."""


class Role(StrEnum):
    """Role of a turn in the output (the trainer's collator reads these)."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class TurnKind(StrEnum):
    """What a turn is, beyond its role."""

    MESSAGE = "message"
    """Ordinary text (and for assistants, tool calls)."""
    TOOL_RESULTS = "tool_results"
    """One or more tool results returned to the assistant."""
    COMPACT_SUMMARY = "compact_summary"
    """A summary Claude Code wrote when it compacted the context."""
    API_ERROR = "api_error"
    """A synthetic assistant entry recording an API error, not model output."""


class LayerName(StrEnum):
    """A hint layer (``--layers``), asked in the order given; the first answer wins."""

    TEMPLATE = "template"
    """A grounded template for the site's kind (abstains without grounds)."""
    JUDGE = "judge"
    """The LLM judge."""
    RAW = "raw"
    """The failed result's own error text, bounded and redacted."""

    @classmethod
    def parse(cls, names: Iterable[str]) -> tuple[LayerName, ...]:
        """Layer names as given (``template,raw`` split), checked: known, each once, some.

        Raises ``ConfigError`` naming the problem.
        """
        from tracehint._exceptions import ConfigError  # noqa: PLC0415 -- no import cycle

        found: list[LayerName] = []
        for raw in names:
            name = raw.strip()
            if not name:
                continue
            try:
                layer = cls(name)
            except ValueError:
                known = ", ".join(layer.value for layer in cls)
                raise ConfigError(f"unknown hint layer {name!r}; choose from: {known}") from None
            if layer in found:
                raise ConfigError(f"hint layer {name!r} is listed twice in --layers")
            found.append(layer)
        if not found:
            raise ConfigError("--layers is empty; give at least one of: template, judge, raw")
        return tuple(found)


class InputFormat(StrEnum):
    """Formats ``tracehint annotate`` reads (``--format``), and ``TraceSource.format``.

    ``auto`` is only an option: it lets each file's content decide; a trace's source names
    the format it was read in.
    """

    AUTO = "auto"
    CLAUDE_CODE = "claude_code"
    OPENAI = "openai"
    CODEX = "codex"
    SWE_AGENT = "swe_agent"
    OPENHANDS = "openhands"
    ATIF = "atif"
    GEMINI_CLI = "gemini_cli"
    ANTHROPIC = "anthropic"
    OPENAI_RESPONSES = "openai_responses"
