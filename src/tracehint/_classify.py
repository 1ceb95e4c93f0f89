"""Classify a failed tool result into an ``ErrorKind``: pure, sync and table-driven.

The rules were written from the real errors in the shared Claude Code corpus and the messages
Claude Code itself emits. They are tried in order; the first that matches wins, so the
non-mistakes (rejections, interruptions, sibling cancellations) come first and the broad
per-tool fallbacks last. Pass your own ``Classifier(rules=...)`` to extend or replace them;
nothing here is global or mutable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from tracehint._command import analyse_command, programs_of, split_exit_header
from tracehint._corrections import DEFAULT_CORRECTIONS, Corrections
from tracehint._kinds import ErrorKind
from tracehint._needles import required_substrings
from tracehint._records import NO_FACTS, Facts

__all__ = [
    "DEFAULT_RULES",
    "SHELL_TOOLS",
    "Classification",
    "Classifier",
    "Rule",
    "RuleScope",
    "required_substrings",
]

# Tools that ask the user for permission in Claude Code; a rejection with feedback from the
# user arrives as the failed result of one of these.
_PERMISSIONED_TOOLS = frozenset(
    {"Bash", "Edit", "MultiEdit", "Write", "NotebookEdit", "WebFetch", "WebSearch"},
)
SHELL_TOOLS = frozenset(
    {
        "Bash",
        "BashOutput",
        "PowerShell",
        "bash",
        "shell",
        "execute_bash",
        "exec_command",
        "run_shell_command",
        "terminal",
        "run",
        "execute_command",
        "local_shell",
        "container.exec",
    },
)
"""Tool names whose result is a shell command's output (Claude Code, Codex, OpenHands, ...)."""
_WEB_TOOLS = frozenset({"WebFetch", "WebSearch"})


class RuleScope(StrEnum):
    """Which texts a rule may look at."""

    HARNESS = "harness"
    """The agent harness's own messages (rejections, permission prompts), on any tool."""
    TOOL = "tool"
    """A non-shell tool's error message (Edit, Read, WebFetch, ...)."""
    ANY = "any"
    """Any error text, including a shell command's output (your own rules default here)."""
    FEEDBACK = "feedback"
    """A rejection's typed feedback: tried last, when nothing else explained the text."""


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
    scope: RuleScope = RuleScope.ANY

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
        if self.needles is not None and not any(map(text.__contains__, self.needles)):
            return False
        return self.pattern.search(text) is not None


def _rule(
    kind: ErrorKind,
    pattern: str,
    *,
    tools: frozenset[str] | None = None,
    max_chars: int | None = None,
    scope: RuleScope,
) -> Rule:
    compiled = re.compile(_lower_pattern(pattern))
    return Rule(
        kind,
        compiled,
        tools,
        max_chars,
        lowercase=True,
        needles=required_substrings(compiled),
        scope=scope,
    )


def _lower_pattern(pattern: str) -> str:
    r"""Lower-case a regex's literals, leaving escapes (``\A``, ``\D``, ``\S``) alone."""
    out: list[str] = []
    escaped = False
    for char in pattern:
        out.append(char if escaped else char.lower())
        escaped = not escaped and char == "\\"
    return "".join(out)


# Words that mark tool output as an error report; text with any of them is never taken for
# the user's typed feedback on a rejected call.
_ERROR_MARKERS = (
    r"error|fail|denied|not found|no such|exit code|traceback|exception|cannot|can't|unable|"
    r"invalid|warn|refused|timed? ?out|usage:|fatal|abort|panic|permission|missing|"
    r"unexpected|undefined|not (?:a|an) |does not|doesn't exist|errno|killed|segmentation|"
    r"incorrect|unauthori[sz]ed|forbidden|err!|\bE\d{3}\b|\bcode\b"
)
# Words of a person talking to the agent ("please add X first", "wait, we need Y"): a program's
# error message does not address the reader in the first person or ask it to do something.
_CONVERSATIONAL = (
    r"\b(?:please|we|we're|let's|lets|i|i'm|i'd|i've|my|wait|instead|actually|should|shouldn't|"
    r"don't|dont|why|could you|can you|would)\b"
)

DEFAULT_RULES: tuple[Rule, ...] = (
    # -- not the agent's mistake: Claude Code's own wording, first ---------------------------
    _rule(
        ErrorKind.USER_REJECTED,
        r"\A\s*(?:the user doesn't want to proceed with this tool use|user rejected tool use|"
        r"the tool use was rejected)",
        scope=RuleScope.HARNESS,
    ),
    _rule(
        ErrorKind.INTERRUPTED,
        r"\A\s*(?:\[Request interrupted by user|interrupted by user|"
        r"the user doesn't want to take this action right now)",
        scope=RuleScope.HARNESS,
    ),
    _rule(
        ErrorKind.SIBLING_CANCELLED,
        r"Sibling tool call errored|Cancelled: parallel tool call",
        scope=RuleScope.HARNESS,
    ),
    # -- the harness's hooks and permission system ------------------------------------------
    _rule(
        ErrorKind.HOOK_BLOCKED,
        r"\bPre(?:ToolUse)?:\w+ hook|blocked by (?:a |the )?(?:\w+ )?hook|"
        r"\bhook\b.{0,40}\b(?:blocked|denied) ",
        scope=RuleScope.HARNESS,
    ),
    _rule(
        ErrorKind.PERMISSION_DENIED,
        r"requested permissions? to|haven't granted|requires approval|"
        r"was blocked\. for security|permission to use .{0,60}(?:denied|not been granted)|"
        r"\A\s*permission denied by (?:the )?user",
        scope=RuleScope.HARNESS,
    ),
    _rule(
        ErrorKind.TIMEOUT,
        r"\A\s*(?:Command timed out after|Timeout: command)",
        scope=RuleScope.HARNESS,
    ),
    # -- tool-use errors (a tool's own message, not a command's output) ----------------------
    _rule(ErrorKind.FILE_NOT_READ, r"File has not been read yet", scope=RuleScope.TOOL),
    _rule(
        ErrorKind.FILE_MODIFIED_SINCE_READ,
        r"File has been (?:unexpectedly )?modified since (?:it was )?read",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.STRING_NOT_UNIQUE,
        r"Found \d+ matches of the string to replace|Multiple occurrences of old_str",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.STRING_NOT_FOUND,
        r"String to replace not found|did not appear verbatim|No replacement was performed|"
        r"No exact match found in",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.EDIT_REJECTED,
        r"Your proposed edit has introduced new syntax error",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.UNKNOWN_TOOL,
        r"No such tool available|\bunknown tool\b|tool .{0,60}(?:does not exist|not found)",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.INPUT_VALIDATION,
        r"InputValidationError|(?:required|unexpected) parameter|parameter .{0,40} is required|"
        r"invalid (?:tool )?(?:parameters|arguments|input)|"
        r"parameter .{0,60}(?:is expected|expected as|must be)",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.JSON_DECODE,
        r"(?:arguments?|input|parameters?) (?:is|are) not valid JSON|"
        r"failed to parse (?:tool )?(?:call )?arguments|invalid JSON in (?:tool )?arguments",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.OUTPUT_TOO_LARGE,
        r"exceeds (?:the )?maximum allowed|file content .{0,40} exceeds|"
        r"exceeds? (?:the )?(?:token|size|character) limit|too large to read",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.TIMEOUT, r"\btimed out\b|\bETIMEDOUT\b|deadline exceeded", scope=RuleScope.TOOL
    ),
    _rule(
        ErrorKind.IS_A_DIRECTORY,
        r"\bEISDIR\b|Is a directory|illegal operation on a directory|is a directory",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.FILE_NOT_FOUND,
        r"no such file or directory|file does not exist|file not found|\bENOENT\b|"
        r"cannot find the (?:file|path)|path does not exist|directory not found|"
        r"file or directory not found|does not exist\. |\A\s*path .{0,200} does not exist",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.PERMISSION_DENIED,
        r"permission denied|\bEACCES\b|\bEPERM\b|operation not permitted|not allowed",
        scope=RuleScope.TOOL,
    ),
    _rule(
        ErrorKind.WEB_FETCH_FAILED,
        r"Request failed with status code \d+|\bENOTFOUND\b|\bECONNREFUSED\b|getaddrinfo|"
        r"failed to fetch",
        scope=RuleScope.TOOL,
    ),
    _rule(ErrorKind.WEB_FETCH_FAILED, r".", tools=_WEB_TOOLS, scope=RuleScope.TOOL),
    # -- a rejection whose feedback the user typed (Claude Code 2.0.x IDE sessions): short,
    # no error marker, and worded as a person talking to the agent --------------------------
    _rule(
        ErrorKind.USER_REJECTED,
        rf"\A(?!(?s:.*)(?:{_ERROR_MARKERS}))(?!(?s:.*?\n.*?\n.*?\n))(?=(?:\S+\s+){{2}}\S)"
        rf"(?=(?s:.*){_CONVERSATIONAL})\S(?s:.*)\Z",
        tools=_PERMISSIONED_TOOLS,
        max_chars=600,
        scope=RuleScope.FEEDBACK,
    ),
)


@dataclass(frozen=True, slots=True)
class Classification:
    """The kind of a failure, the exit code when known, and the facts it shows."""

    kind: ErrorKind
    exit_code: int | None = None
    facts: Facts = NO_FACTS


_STATUS = re.compile(r"status code (\d{3})|\b(\d{3}) (?:Not Found|Forbidden|Unauthorized)")
_PARAMETER = re.compile(
    r"parameter [`'\"]?(?P<name>[\w.\[\]]+)[`'\"]? (?:is missing|is required|was provided|"
    r"type is expected|is expected|must be)|(?:required|unexpected) parameter [`'\"]?"
    r"(?P<name2>[\w.\[\]]+)",
)
_NO_MATCH_IN = re.compile(r"No exact match found in (?P<path>\S+) for")
_DENIED_PATH = re.compile(
    r"(?:permission denied|EACCES|operation not permitted)[:,]? (?:\w+ )?'?(?P<path>[/~][^\s']+)",
    re.IGNORECASE,
)
_UNKNOWN_TOOL_NAME = re.compile(r"No such tool available: (?P<name>[\w.:-]+)")


@dataclass(frozen=True, slots=True)
class Classifier:
    """Classifies a failed tool call: structure first, then the error's own lines.

    The order: what the format records (an interruption, a hook that blocked the call, the
    exit code), then the agent harness's own messages (rejections, permission prompts), then
    for shell tools the command's output read by ``tracehint._command`` (a test runner's
    verdict, a missing path a program named, a traceback), and for other tools their error
    message against the rule table. ``rules`` are tried first (each within its ``scope``);
    ``with_rules`` adds your own. ``corrections`` reads the user's replies (a rejection's words,
    a reply that contradicts the agent: ``user_correction`` sites); ``None`` turns that off, and
    rejections are then never sites.

    >>> Classifier().classify("File has not been read yet.", "Edit").kind
    <ErrorKind.FILE_NOT_READ: 'file_not_read'>
    """

    rules: tuple[Rule, ...] = DEFAULT_RULES
    fallback: ErrorKind = ErrorKind.TOOL_ERROR
    shell_tools: frozenset[str] = SHELL_TOOLS
    corrections: Corrections | None = DEFAULT_CORRECTIONS
    _by_scopes: dict[frozenset[RuleScope], tuple[Rule, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # The rules each lookup may use, in order (none at all for a shell command's output
        # with the default rules: that lookup then costs nothing).
        by_scopes = {
            scopes: tuple(rule for rule in self.rules if rule.scope in scopes)
            for scopes in (_HARNESS_SCOPES, _TOOL_SCOPES, _OUTPUT_SCOPES, _FEEDBACK_SCOPES)
        }
        object.__setattr__(self, "_by_scopes", by_scopes)

    def with_rules(self, *rules: Rule) -> Classifier:
        """Return a classifier that tries ``rules`` before this one's."""
        return replace(self, rules=(*rules, *self.rules))

    def _first(
        self, scopes: frozenset[RuleScope], text: str, tool_name: str | None, length: int
    ) -> ErrorKind | None:
        rules = self._by_scopes[scopes]
        if not rules:
            return None
        lowered = text.lower()
        for rule in rules:
            if rule.matches(text, tool_name, length, lowered):
                return rule.kind
        return None

    def classify(
        self,
        text: str,
        tool_name: str | None = None,
        *,
        command: str | None = None,
        exit_code: int | None = None,
        stderr: str | None = None,
        hook: str | None = None,
        interrupted: bool = False,
    ) -> Classification:
        """Classify the error ``text`` returned by a call to ``tool_name``.

        The keyword arguments are what the format records in structure: the shell command
        the call ran, its exit code, its stderr when kept apart, the hook that blocked it,
        an interruption. Each is trusted before any text rule.
        """
        text, stderr = _bounded(text), _bounded(stderr) if stderr is not None else None
        wrapped, message = _strip_wrapper(text)
        header_code, body = split_exit_header(message)
        code = exit_code if exit_code is not None else header_code
        window = _window(message)
        if interrupted:
            return Classification(ErrorKind.INTERRUPTED, code)
        if hook is not None:
            return Classification(ErrorKind.HOOK_BLOCKED, code, Facts(hook=hook))
        shell = (tool_name in self.shell_tools or command is not None) and not wrapped
        if code is None or not shell:
            # The harness speaks before a command runs: its messages carry no exit code.
            kind = self._first(_HARNESS_SCOPES, window, tool_name, len(message))
            if kind is not None:
                return Classification(kind, code, _facts_of(kind, message, tool_name))
        if shell:
            return self._shell(body, command, code, stderr, tool_name)
        kind = (
            self._first(_TOOL_SCOPES, window, tool_name, len(message))
            or self._first(_FEEDBACK_SCOPES, window, tool_name, len(message))
            or self.fallback
        )
        return Classification(kind, code, _facts_of(kind, message, tool_name))

    def _shell(
        self,
        body: str,
        command: str | None,
        code: int | None,
        stderr: str | None,
        tool_name: str | None,
    ) -> Classification:
        custom = self._first(_OUTPUT_SCOPES, _window(body), tool_name, len(body))
        if custom is not None:
            return Classification(custom, code)
        report = analyse_command(body, command, stderr=stderr)
        if report.kind is not None:
            return Classification(report.kind, code, report.facts)
        if code is None:
            feedback = self._first(_FEEDBACK_SCOPES, _window(body), tool_name, len(body))
            if feedback is not None:
                return Classification(feedback, code)
        if code == _NOT_FOUND_EXIT:
            program = _program(command)
            return Classification(ErrorKind.COMMAND_NOT_FOUND, code, Facts(program=program))
        return Classification(ErrorKind.COMMAND_FAILED, code, report.facts)


_NOT_FOUND_EXIT = 127
_HARNESS_SCOPES = frozenset({RuleScope.HARNESS, RuleScope.ANY})
_TOOL_SCOPES = frozenset({RuleScope.TOOL, RuleScope.ANY})
_OUTPUT_SCOPES = frozenset({RuleScope.ANY})
_FEEDBACK_SCOPES = frozenset({RuleScope.FEEDBACK})


def _program(command: str | None) -> str | None:
    if not command:
        return None
    programs = programs_of(command)
    return programs[0][0] if programs else None


def _facts_of(kind: ErrorKind, message: str, tool_name: str | None) -> Facts:  # noqa: C901, PLR0911 -- one case per kind
    """What a tool's own error message grounds, by kind."""
    if kind is ErrorKind.INPUT_VALIDATION:
        match = _PARAMETER.search(message)
        if match is not None:
            return Facts(parameter=match.group("name") or match.group("name2"))
    elif kind is ErrorKind.WEB_FETCH_FAILED:
        match = _STATUS.search(message)
        if match is not None:
            return Facts(status=int(match.group(1) or match.group(2)))
    elif kind is ErrorKind.UNKNOWN_TOOL:
        match = _UNKNOWN_TOOL_NAME.search(message)
        return Facts(program=match.group("name") if match else tool_name)
    elif kind is ErrorKind.STRING_NOT_FOUND:
        match = _NO_MATCH_IN.search(message)
        if match is not None:
            return Facts(path=match.group("path"))
    elif kind is ErrorKind.PERMISSION_DENIED:
        match = _DENIED_PATH.search(message)
        if match is not None:
            return Facts(path=match.group("path"))
    elif kind is ErrorKind.HOOK_BLOCKED:
        match = re.search(r"\b(Pre(?:ToolUse)?:\w+)", message)
        return Facts(hook=match.group(1) if match else None)
    return NO_FACTS


# What an error says is at its start (the message, ``Exit code N``) or its end (the last lines
# of a traceback); rules look at both ends of a long output, not at megabytes of log between.
_HEAD_CHARS = 3000
_TAIL_CHARS = 1000


# Of a longer text only the two ends are read: the bound makes classifying a 50 MB output cost
# what a 512 KB one does (its regexes ran for seconds, holding the GIL). The bound is far above
# what agents show a model (Claude Code cuts a tool's output to 30,000 characters).
_BOUND_CHARS = 256 * 1024


def _bounded(text: str) -> str:
    if len(text) <= 2 * _BOUND_CHARS:
        return text
    return f"{text[:_BOUND_CHARS]}\n…\n{text[-_BOUND_CHARS:]}"


def _window(text: str) -> str:
    if len(text) <= _HEAD_CHARS + _TAIL_CHARS:
        return text
    return f"{text[:_HEAD_CHARS]}\n…\n{text[-_TAIL_CHARS:]}"


_WRAPPER = re.compile(r"\A\s*<tool_use_error>(.*)</tool_use_error>\s*\Z", re.DOTALL)


def _strip_wrapper(text: str) -> tuple[bool, str]:
    """Drop Claude Code's ``<tool_use_error>`` wrapper: ``(was wrapped, the message)``."""
    match = _WRAPPER.match(text)
    return (True, match.group(1).strip()) if match else (False, text.strip())
