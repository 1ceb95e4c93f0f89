"""Classify a failed tool result into an ``ErrorKind``: pure, sync and table-driven.

The rules were written from the real errors in the shared Claude Code corpus and the messages
Claude Code itself emits. They are tried in order; the first that matches wins, so the
non-mistakes (rejections, interruptions, sibling cancellations) come first and the broad
per-tool fallbacks last. Pass your own ``Classifier(rules=...)`` to extend or replace them;
nothing here is global or mutable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

try:  # CPython's regex parser, to find the literal text a pattern requires (a prefilter)
    from re import _constants, _parser  # type: ignore[attr-defined]

    _LITERAL, _BRANCH, _SUBPATTERN = _constants.LITERAL, _constants.BRANCH, _constants.SUBPATTERN
except ImportError:  # pragma: no cover -- other Pythons: no prefilter
    _parser = None
    _LITERAL = _BRANCH = _SUBPATTERN = object()

from tracehint._kinds import ErrorKind

__all__ = ["DEFAULT_RULES", "Classification", "Classifier", "Rule"]

# Tools that ask the user for permission in Claude Code; a rejection with feedback from the
# user arrives as the failed result of one of these.
_PERMISSIONED_TOOLS = frozenset(
    {"Bash", "Edit", "MultiEdit", "Write", "NotebookEdit", "WebFetch", "WebSearch"},
)
_SHELL_TOOLS = frozenset({"Bash", "BashOutput", "KillShell", "KillBash", "PowerShell"})
_WEB_TOOLS = frozenset({"WebFetch", "WebSearch"})

_EXIT_CODE = re.compile(r"\bExit code:? (\d+)")


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the classification table.

    Matches when ``pattern`` is found in the error text and, if ``tools`` is given, the
    failing tool's name is one of them. ``max_chars`` limits the rule to short texts (used by
    the user-feedback rule, which would otherwise catch any long, marker-free output).
    """

    kind: ErrorKind
    pattern: re.Pattern[str]
    tools: frozenset[str] | None = None
    max_chars: int | None = None
    lowercase: bool = False
    """``pattern`` is written in lower case and searched in the lower-cased text (a fast
    case-insensitive match: ``re.IGNORECASE`` is several times slower on long outputs)."""
    needles: tuple[str, ...] | None = None
    """Substrings one of which every match contains (in the text ``pattern`` is searched
    in): a plain ``in`` test that skips the regex for most texts. ``None``: always search."""

    def matches(
        self,
        text: str,
        tool_name: str | None,
        length: int | None = None,
        lowered: str | None = None,
    ) -> bool:
        """Whether this rule applies to ``text`` from a call to ``tool_name``.

        ``length`` is the length of the whole error text when ``text`` is only a window of it;
        ``lowered`` is ``text.lower()`` when the caller already has it.
        """
        if self.tools is not None and tool_name not in self.tools:
            return False
        if self.max_chars is not None and (length or len(text)) > self.max_chars:
            return False
        if self.lowercase:
            text = lowered if lowered is not None else text.lower()
        if self.needles is not None and not any(needle in text for needle in self.needles):
            return False
        return self.pattern.search(text) is not None


def _rule(
    kind: ErrorKind,
    pattern: str,
    *,
    tools: frozenset[str] | None = None,
    max_chars: int | None = None,
) -> Rule:
    compiled = re.compile(_lower_pattern(pattern))
    return Rule(
        kind, compiled, tools, max_chars, lowercase=True, needles=required_substrings(compiled)
    )


_MIN_NEEDLE = 3


def _literal_run(items: list[tuple[Any, Any]]) -> str:
    """The longest run of consecutive literal characters in a parsed sequence."""
    best, run = "", ""
    for op, value in items:
        if op is _LITERAL:
            run += chr(value)
            continue
        if len(run) > len(best):
            best = run
        run = ""
    return run if len(run) > len(best) else best


def _needles_of(items: list[tuple[Any, Any]]) -> set[str] | None:
    run = _literal_run(items)
    if len(run) >= _MIN_NEEDLE:
        return {run}
    for op, value in items:
        branch = value if op is _BRANCH else None
        if (
            op is _SUBPATTERN
            and not value[1] & re.IGNORECASE
            and len(value[-1]) == 1
            and value[-1][0][0] is _BRANCH
        ):
            branch = value[-1][0][1]
        if branch is None:
            continue
        found: set[str] = set()
        for alternative in branch[1]:
            needles = _needles_of(list(alternative))
            if needles is None:
                break
            found |= needles
        else:
            return found
    return None


def required_substrings(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Literal substrings one of which every match of ``pattern`` contains, if found.

    Read from the parsed pattern: a run of at least three literal characters, or one such run
    in every alternative of an alternation. ``None`` when there is none (or the pattern has
    flags that make literals match more than themselves).
    """
    if pattern.flags & re.IGNORECASE or _parser is None:
        return None
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 -- a private parser: no prefilter rather than a crash
        return None
    needles = _needles_of(list(parsed))
    return tuple(sorted(needles)) if needles else None


def _lower_pattern(pattern: str) -> str:
    r"""Lower-case a regex's literals, leaving escapes (``\A``, ``\D``, ``\S``) alone."""
    out: list[str] = []
    escaped = False
    for char in pattern:
        out.append(char if escaped else char.lower())
        escaped = not escaped and char == "\\"
    return "".join(out)


# Words that mark tool output as an error report; text without any of them, returned as the
# failed result of a permissioned tool, is the user's typed feedback on a rejected call.
_ERROR_MARKERS = (
    r"error|fail|denied|not found|no such|exit code|traceback|exception|cannot|can't|unable|"
    r"invalid|warn|refused|timed? ?out|usage:|fatal|abort|panic|permission|missing|"
    r"unexpected|undefined|not (?:a|an) |does not|doesn't exist|errno|killed|segmentation"
)

DEFAULT_RULES: tuple[Rule, ...] = (
    # -- not the agent's mistake: first, so nothing below can claim them --------------------
    _rule(
        ErrorKind.USER_REJECTED,
        r"user doesn't want to proceed with this tool use|user rejected tool use|"
        r"tool use was rejected",
    ),
    _rule(
        ErrorKind.INTERRUPTED,
        r"\[Request interrupted by user|interrupted by user|"
        r"user doesn't want to take this action right now",
    ),
    _rule(
        ErrorKind.SIBLING_CANCELLED,
        r"Sibling tool call errored|Cancelled: parallel tool call",
    ),
    # -- hooks and permissions ------------------------------------------------------------
    _rule(
        ErrorKind.HOOK_BLOCKED,
        r"\bhook\b.{0,40}\b(?:blocked|denied|error|failed)|blocked by (?:a |the )?hook|"
        r"Pre(?:ToolUse)?:?\w* hook",
    ),
    _rule(
        ErrorKind.PERMISSION_DENIED,
        r"permission denied|\bEACCES\b|\bEPERM\b|operation not permitted|"
        r"requested permissions? to|haven't granted|requires approval|was blocked|"
        r"permission to use .{0,60}(?:denied|not been granted)|not allowed",
    ),
    # -- Claude Code tool-use errors --------------------------------------------------------
    _rule(ErrorKind.FILE_NOT_READ, r"File has not been read yet"),
    _rule(
        ErrorKind.FILE_MODIFIED_SINCE_READ,
        r"File has been (?:unexpectedly )?modified since (?:it was )?read",
    ),
    _rule(ErrorKind.STRING_NOT_UNIQUE, r"Found \d+ matches of the string to replace"),
    _rule(ErrorKind.STRING_NOT_FOUND, r"String to replace not found"),
    _rule(
        ErrorKind.UNKNOWN_TOOL,
        r"No such tool available|\bunknown tool\b|tool .{0,60}(?:does not exist|not found)",
    ),
    _rule(
        ErrorKind.INPUT_VALIDATION,
        r"InputValidationError|(?:required|unexpected) parameter|"
        r"invalid (?:tool )?(?:parameters|arguments|input)",
    ),
    _rule(
        ErrorKind.OUTPUT_TOO_LARGE,
        r"exceeds (?:the )?maximum allowed|too large|output (?:was )?truncated|"
        r"exceeds? (?:the )?(?:token|size|character) limit",
    ),
    _rule(
        ErrorKind.JSON_DECODE,
        r"JSONDecodeError|not valid JSON|Unexpected token .{0,40} in JSON|"
        r"Expecting (?:value|property name)|Unterminated string|json\.decoder",
    ),
    _rule(
        ErrorKind.TIMEOUT,
        r"\btimed out\b|\btimeout (?:of|after|exceeded)\b|\bETIMEDOUT\b|deadline exceeded",
    ),
    # -- file system and shell --------------------------------------------------------------
    _rule(ErrorKind.IS_A_DIRECTORY, r"\bEISDIR\b|Is a directory|illegal operation on a directory"),
    _rule(
        ErrorKind.COMMAND_NOT_FOUND,
        r"command not found|Exit code:? 127\b|not recognized as an internal or external command",
    ),
    _rule(
        ErrorKind.FILE_NOT_FOUND,
        r"no such file or directory|file does not exist|file not found|\bENOENT\b|"
        r"cannot find the (?:file|path)|path does not exist|directory not found|"
        r"file or directory not found",
    ),
    _rule(
        ErrorKind.WEB_FETCH_FAILED,
        r"Request failed with status code \d+|\bENOTFOUND\b|\bECONNREFUSED\b|getaddrinfo|"
        r"failed to fetch",
    ),
    _rule(ErrorKind.WEB_FETCH_FAILED, r".", tools=_WEB_TOOLS),
    # -- a rejection whose feedback the user typed (Claude Code 2.0.x IDE sessions) ----------
    _rule(
        ErrorKind.USER_REJECTED,
        # no error marker anywhere, at most three lines, at least three words
        rf"\A(?!(?s:.*)(?:{_ERROR_MARKERS}))(?!(?s:.*?\n.*?\n.*?\n))(?=(?:\S+\s+){{2}}\S)"
        r"\S(?s:.*)\Z",
        tools=_PERMISSIONED_TOOLS,
        max_chars=600,
    ),
    # -- broad fallbacks --------------------------------------------------------------------
    _rule(ErrorKind.COMMAND_FAILED, r"\bExit code:? \d+"),
    _rule(ErrorKind.COMMAND_FAILED, r".", tools=_SHELL_TOOLS),
)


@dataclass(frozen=True, slots=True)
class Classification:
    """The kind of a failure, plus the exit code when the text reports one."""

    kind: ErrorKind
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class Classifier:
    """Table-driven classifier: the first matching rule wins, else ``fallback``.

    >>> Classifier().classify("File has not been read yet.", "Edit").kind
    <ErrorKind.FILE_NOT_READ: 'file_not_read'>
    """

    rules: tuple[Rule, ...] = DEFAULT_RULES
    fallback: ErrorKind = ErrorKind.TOOL_ERROR

    def with_rules(self, *rules: Rule) -> Classifier:
        """Return a classifier that tries ``rules`` before this one's."""
        return Classifier(rules=(*rules, *self.rules), fallback=self.fallback)

    def classify(self, text: str, tool_name: str | None = None) -> Classification:
        """Classify the error ``text`` returned by a call to ``tool_name``."""
        stripped = _strip_wrapper(text)
        window = _window(stripped)
        lowered = window.lower()
        length = len(stripped)
        kind = next(
            (rule.kind for rule in self.rules if rule.matches(window, tool_name, length, lowered)),
            self.fallback,
        )
        match = _EXIT_CODE.search(window)
        return Classification(kind, int(match.group(1)) if match else None)


# What an error says is at its start (the message, ``Exit code N``) or its end (the last lines
# of a traceback); rules look at both ends of a long output, not at megabytes of log between.
_HEAD_CHARS = 3000
_TAIL_CHARS = 1000


def _window(text: str) -> str:
    if len(text) <= _HEAD_CHARS + _TAIL_CHARS:
        return text
    return f"{text[:_HEAD_CHARS]}\n…\n{text[-_TAIL_CHARS:]}"


_WRAPPER = re.compile(r"\A\s*<tool_use_error>(.*)</tool_use_error>\s*\Z", re.DOTALL)


def _strip_wrapper(text: str) -> str:
    """Drop Claude Code's ``<tool_use_error>`` wrapper so rules see the message itself."""
    match = _WRAPPER.match(text)
    return (match.group(1) if match else text).strip()
