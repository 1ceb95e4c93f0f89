"""The judge prompts (version 2) and their cache key: pure and sync.

``build_prompt`` is the prompt for a failed tool call; ``build_correction_prompt`` the one for a
user correction (``CORRECTION_SYSTEM_PROMPT``: is the reply a correction, and the hint it
teaches). Both answer the same JSON (``RESPONSE_FORMAT``).

The prompt has two parts. The system message is fixed: byte-identical on every request and
sent first, so servers with prefix caching (vLLM, SGLang) reuse it; it holds the rules (the
leakage rule, the length, the JSON answer). The user message is the site: the user's task,
the agent's stated intent, the failing call (long heredocs and HTML shortened), its result
with the error lines first, the error kind, one line per earlier failed attempt, and the tools
the trace used, each bounded and redacted before anything leaves the machine. The agent's
next message is left out unless asked for (``show_next_action``): it is usually the student's
own recovery, and a teacher that sees it copies it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from tracehint._kinds import DetectedBy
from tracehint._limits import clamp, clamp_middle
from tracehint._redact import DEFAULT_REDACTOR, Redactor
from tracehint._redact_records import TextRedactor, redact_json_text

if TYPE_CHECKING:
    from tracehint._records import HintRequest

__all__ = [
    "CORRECTION_SYSTEM_PROMPT",
    "PROMPT_VERSION",
    "RESPONSE_FORMAT",
    "SYSTEM_PROMPT",
    "JudgePrompt",
    "PromptOptions",
    "build_correction_prompt",
    "build_prompt",
    "cache_key",
    "normalise",
    "reask_messages",
]

PROMPT_VERSION = 2
"""Bump when the prompt text changes, so cached hints written for the old prompt are not reused."""

_KEY_VERSION = 3
"""Bump when the key derivation itself changes. 3: the key is made from the site's fields and
the prompt's options, not from the built prompt (hints cached under version 2 are not reused)."""

SYSTEM_PROMPT: Final = (
    "You are the teacher for an autonomous coding agent. You are shown one step of its work "
    "where a tool call failed: the user's task, what the agent said it would do, the call it "
    "made and the result it got. Write the hint the agent should read at that step. The same "
    "hint is placed either right above the failing call or right after its error, so write it "
    'as an instruction for what to do at this step (for example "Read the file before you '
    'edit it."), not as a comment on what already happened.\n'
    "\n"
    "Rules:\n"
    "- Use only what the agent could know at that step plus the step's own result. Never "
    "state facts from later steps, and do not invent file contents, outputs or names you "
    "were not shown.\n"
    "- Direct the agent; do not solve the task for it. Say what to do or check, not the "
    "final code.\n"
    '- At most two sentences, addressed to the agent as "you", with no preamble, no quotes '
    "and no markdown headings.\n"
    "- Do not repeat the error text back; say what to do about it.\n"
    "- If the failure was not a mistake (the task or the agent's stated intent shows it ran "
    'a failing test or reproduced an error on purpose), give the verdict "not_a_mistake".\n'
    "\n"
    'Answer with one JSON object and nothing else: {"hint": "<the hint>", "verdict": '
    '"mistake"}, or {"hint": "", "verdict": "not_a_mistake"}.'
)
"""The fixed system message (the same bytes on every request)."""

CORRECTION_SYSTEM_PROMPT: Final = (
    "You are the teacher for an autonomous coding agent. You are shown one step of its work "
    "that its user answered: the user's task, the agent's message (and the tool call the user "
    "rejected, when there was one) and the user's reply. First decide whether the reply says "
    "the agent's message or call was wrong: a claim that turned out false, work that broke or "
    "lost something, a call the user did not want, a misunderstanding. A new request, a "
    "follow-up question, an answer to the agent's question or thanks is not a correction.\n"
    "\n"
    "For a correction, write the hint the agent should read right before it wrote that "
    "message: an instruction for what to do at that step that teaches what the user said, "
    "phrased with what the agent could know then (for example \"Run the page's tests before "
    "you say the redirect works.\"), not as a report of the user's later reply.\n"
    "\n"
    "Rules:\n"
    "- Keep the user's meaning; do not invent facts, file contents or names you were not shown.\n"
    "- Direct the agent; do not solve the task for it.\n"
    '- At most two sentences, addressed to the agent as "you", with no preamble, no quotes '
    "and no markdown headings.\n"
    "\n"
    'Answer with one JSON object and nothing else: {"hint": "<the hint>", "verdict": '
    '"mistake"}, or {"hint": "", "verdict": "not_a_mistake"} when the reply is not a '
    "correction."
)
"""The fixed system message of a user correction's request."""

RESPONSE_FORMAT: Final[dict[str, Any]] = {
    "type": "json_schema",
    "json_schema": {
        "name": "corrective_hint",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "hint": {"type": "string"},
                "verdict": {"type": "string", "enum": ["mistake", "not_a_mistake"]},
            },
            "required": ["hint", "verdict"],
            "additionalProperties": False,
        },
    },
}
"""The ``response_format`` sent with every request (servers that ignore it still get asked for
JSON by the system message)."""

_CLOSING = "Write the hint for this step as the JSON object."
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1[^\n]*\n(.*?)\n\s*\2\b", re.DOTALL)
_HTML = re.compile(r"<(?:!doctype|html|head|body|div|table|script|style)\b", re.IGNORECASE)
_ERROR_LINE = re.compile(
    r"error|exception|traceback|failed|failure|fatal|denied|not found|no such|cannot|"
    r"can't|unable|invalid|refused|timed out|exit code|panic",
    re.IGNORECASE,
)
_ERROR_LINES = 8
_LINE_CHARS = 240
_EARLIER_LINES = 5
_EARLIER_CHARS = 160


@dataclass(frozen=True, slots=True)
class JudgePrompt:
    """The chat messages sent to the judge."""

    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        """OpenAI-style chat messages (the JSON edge): the fixed system message first."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user},
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptOptions:
    """How ``build_prompt`` turns a site into a prompt, and their part of the cache key."""

    redactor: Redactor = DEFAULT_REDACTOR
    show_next_action: bool = False
    error_chars: int = 2000
    input_chars: int = 1000
    instruction_chars: int = 1200
    intent_chars: int = 800
    action_chars: int = 1000
    fingerprint: str = field(init=False, repr=False, compare=False)
    """A digest of every option (the redaction patterns too): a prompt built with other
    options is another cache key."""

    def __post_init__(self) -> None:
        patterns = [
            [
                secret.kind,
                secret.pattern.pattern,
                secret.pattern.flags,
                secret.group,
                secret.lowercase,
                secret.behind,
                None if secret.check is None else secret.check.__qualname__,
            ]
            for secret in self.redactor.patterns
        ]
        blob = orjson.dumps(
            [
                self.show_next_action,
                self.error_chars,
                self.input_chars,
                self.instruction_chars,
                self.intent_chars,
                self.action_chars,
                patterns,
            ],
        )
        object.__setattr__(self, "fingerprint", hashlib.sha256(blob).hexdigest())

    def build(self, request: HintRequest) -> JudgePrompt:
        """``build_prompt`` with these options."""
        return build_prompt(
            request,
            self.redactor,
            show_next_action=self.show_next_action,
            error_chars=self.error_chars,
            input_chars=self.input_chars,
            instruction_chars=self.instruction_chars,
            intent_chars=self.intent_chars,
            action_chars=self.action_chars,
        )


def _shorten_value(value: str, limit: int) -> str:
    """One argument of the call: heredoc bodies and HTML replaced by their size, then bounded."""

    def heredoc(match: re.Match[str]) -> str:
        body = match.group(3)
        if len(body) <= limit // 2:
            return match.group(0)
        opener = match.group(0)[: match.start(3) - match.start(0)]
        lines = body.count("\n") + 1
        return f"{opener}[heredoc body: {lines} lines, {len(body)} chars]\n{match.group(2)}"

    value = _HEREDOC.sub(heredoc, value)
    if len(value) > limit and _HTML.search(value):
        return f"[HTML, {len(value)} chars] {clamp(value, limit // 3)}"
    return clamp_middle(value, limit)


def _format_call(tool: str, tool_input: str, limit: int) -> str:
    """The failing call: its tool, then one line per argument (long values shortened)."""
    try:
        arguments = orjson.loads(tool_input)
    except orjson.JSONDecodeError:
        arguments = None  # cut to Limits.tool_input_chars: show the text as it is
    if not isinstance(arguments, dict):
        return f"Tool: {tool}\nInput: {clamp_middle(tool_input, limit)}"
    per_value = max(limit // max(len(arguments), 1), 200)
    lines = [f"Tool: {tool}"]
    for name, value in arguments.items():
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        lines.append(f"{name}: {_shorten_value(text, per_value)}")
    return clamp("\n".join(lines), limit + 200)


def _error_first(text: str, limit: int) -> str:
    """The result, with its error lines first when it is long, then bounded.

    Error lines are a traceback's last line, a compiler's ``error:`` lines and the like; the
    whole result follows, head and tail kept.
    """
    text = text.strip() or "(no message)"
    if len(text) <= limit // 2:
        return text
    found = [
        clamp(line.strip(), _LINE_CHARS)
        for line in text.splitlines()
        if line.strip() and _ERROR_LINE.search(line)
    ]
    if not found or text.startswith(found[0]):  # no error lines, or they already come first
        return clamp_middle(text, limit)
    if len(found) > _ERROR_LINES:  # the last ones say most (a traceback ends with its error)
        found = [*found[:2], "…", *found[-(_ERROR_LINES - 3) :]]
    head = "Error lines:\n" + "\n".join(found)
    rest = clamp_middle(text, max(limit // 2, limit - len(head)))
    return f"{head}\n\nFull result (shortened):\n{rest}"


@dataclass(frozen=True, slots=True)
class _Shown:
    """The texts a prompt shows, redacted as ``redact_request`` does."""

    error_message: str
    tool_input: str | None
    earlier_errors: tuple[str, ...]
    first_instruction: str
    latest_instruction: str
    intent: str
    mistake_text: str
    next_action: str


def _redact_shown(
    request: HintRequest, redactor: TextRedactor, *, correction: bool, next_action: bool
) -> _Shown:
    """The texts of ``request`` its prompt shows, redacted as ``redact_request`` does.

    The other texts of the site (its facts, excerpt, target) are not in the prompt: they are
    left alone rather than redacted for nothing.
    """
    text = redactor.redact
    site = request.site
    return _Shown(
        error_message=text(site.error_message),
        tool_input=redact_json_text(site.tool_input, redactor) if site.tool_input else None,
        earlier_errors=()
        if correction
        else tuple(text(error) for error in site.earlier_errors[-_EARLIER_LINES:]),
        first_instruction=text(request.first_instruction),
        latest_instruction="" if correction else text(request.latest_instruction),
        intent=text(request.intent),
        mistake_text=text(request.mistake_text) if correction else "",
        next_action=text(request.next_action) if next_action else "",
    )


def _kind(request: HintRequest) -> str:
    site = request.site
    kind = site.kind.value
    if site.repeats:
        kind = f"{kind} (the same action has now failed {site.repeats + 1} times in a row)"
    if site.exit_code is not None:
        kind += f", exit code {site.exit_code}"
    return kind


def build_prompt(
    request: HintRequest,
    redactor: TextRedactor | None = None,
    *,
    show_next_action: bool = False,
    error_chars: int = 2000,
    input_chars: int = 1000,
    instruction_chars: int = 1200,
    intent_chars: int = 800,
    action_chars: int = 1000,
) -> JudgePrompt:
    """Build the judge prompt for one site: every field bounded, every secret redacted.

    The system message is always ``SYSTEM_PROMPT``; the user message is the site. With
    ``show_next_action`` the agent's next message is added, marked as not to be copied.
    ``redactor``: a ``Redactor`` (the default patterns when ``None``), or anything with its
    ``redact(text)`` (the judge layer passes one that remembers a trace's texts).
    """
    # Every text is redacted before it is clamped: a secret cut in half by a clamp would no
    # longer be recognisable.
    shown = _redact_shown(
        request, redactor or DEFAULT_REDACTOR, correction=False, next_action=show_next_action
    )
    site = request.site
    sections: list[tuple[str, str]] = []
    task = shown.first_instruction.strip()
    sections.append(("User's task", clamp(task, instruction_chars) if task else "(none)"))
    latest = shown.latest_instruction.strip()
    if latest and latest != task:
        sections.append(("Latest user instruction", clamp(latest, instruction_chars)))
    intent = shown.intent.strip()
    sections.append(
        (
            "What the agent said it would do",
            clamp(intent, intent_chars) if intent else "(nothing stated)",
        ),
    )
    call = _format_call(site.tool_name or "(unknown)", shown.tool_input or "{}", input_chars)
    sections.append(("The failing call", call))
    sections.append(("Its result (error first)", _error_first(shown.error_message, error_chars)))
    sections.append(("Error kind", _kind(request)))
    if shown.earlier_errors:
        earlier = [
            f"{number}. {clamp(' '.join(error.split()), _EARLIER_CHARS)}"
            for number, error in enumerate(shown.earlier_errors, 1)
        ]
        title = f"Earlier failed attempts of the same action ({site.repeats} before this one)"
        sections.append((title, "\n".join(earlier)))
    tools = ", ".join(request.tools_used) or "(unknown)"
    sections.append(("Tools the agent has used in this session", tools))
    if show_next_action:
        action = shown.next_action.strip() or "(none)"
        sections.append(
            (
                "The agent's next message (for context only; do not copy it into the hint)",
                clamp(action, action_chars),
            ),
        )
    user = "\n\n".join(f"## {title}\n{body}" for title, body in sections)
    return JudgePrompt(SYSTEM_PROMPT, f"{user}\n\n{_CLOSING}")


_CORRECTION_CLOSING = "Decide whether the reply is a correction, and answer as the JSON object."


def build_correction_prompt(
    request: HintRequest,
    redactor: TextRedactor | None = None,
    *,
    message_chars: int = 1500,
    input_chars: int = 1000,
    instruction_chars: int = 1200,
    reply_chars: int = 1200,
) -> JudgePrompt:
    """Build the judge prompt for a user correction: bounded and redacted.

    The agent's message is the corrected one (``HintRequest.mistake_text``, or its stated intent
    for a rejected call), the reply is the user's words (``site.error_message``).
    """
    # Redacted before clamped, as in ``build_prompt``: a clamp never cuts a secret in half.
    shown = _redact_shown(request, redactor or DEFAULT_REDACTOR, correction=True, next_action=False)
    site = request.site
    sections: list[tuple[str, str]] = []
    task = shown.first_instruction.strip()
    sections.append(("User's task", clamp(task, instruction_chars) if task else "(none)"))
    said = (shown.mistake_text or shown.intent).strip()
    sections.append(
        (
            "The agent's message",
            clamp_middle(said, message_chars) if said else "(only tool calls)",
        ),
    )
    if site.tool_name is not None:
        call = _format_call(site.tool_name, shown.tool_input or "{}", input_chars)
        sections.append(("The tool call the user rejected", call))
    reply = shown.error_message.strip() or "(nothing)"
    sections.append(("The user's reply", clamp_middle(reply, reply_chars)))
    user = "\n\n".join(f"## {title}\n{body}" for title, body in sections)
    return JudgePrompt(CORRECTION_SYSTEM_PROMPT, f"{user}\n\n{_CORRECTION_CLOSING}")


def reask_messages(prompt: JudgePrompt, answer: str, problem: str) -> list[dict[str, str]]:
    """The messages that ask once more after a rejected answer.

    The prompt, the rejected answer (when there was one, bounded) and what was wrong with it;
    the system message stays first.
    """
    messages = prompt.messages()
    if answer.strip():
        messages.append({"role": "assistant", "content": clamp(answer.strip(), 600)})
    messages.append(
        {
            "role": "user",
            "content": f"That answer cannot be used: {problem}. Answer again with the JSON "
            "object only; the hint is at most two sentences, addressed to the agent, and says "
            "what to do at this step.",
        },
    )
    return messages


# The volatile parts of a text, each with what replaces it. A leading ``\b`` keeps the regex
# engine from skipping ahead to the first character that can start a match, so word boundaries
# before a digit are written as a lookbehind after it: ``\d(?<!\w\d)``.
_HEX = re.compile(r"0(?<!\w0)x[0-9a-fA-F]+\b")
_DATETIME = re.compile(
    r"\d(?<!\w\d)\d{3}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\b"
)
_CLOCK_TIME = re.compile(r"\d(?<!\w\d)\d:\d{2}:\d{2}(?:\.\d+)?\b")
_TEMP_PATH = re.compile(
    r"(?:/private)?/var/folders/[^\s'\"]+|/tmp/[^\s'\"]+|"
    r"[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp\\[^\s'\"]+",
)
_TEMP_FOLDERS = ("/tmp/", "/var/folders/", "\\AppData\\Local\\Temp\\")  # noqa: S108 -- patterns
_ELAPSED = re.compile(r"\b(?:in|after|took) \d+(?:\.\d+)?\s?(?:ms|s|sec|seconds)\b")

# Cheap tests that every match passes, each starting with a literal (the regex engine then
# skips to that literal instead of trying a match at every position; a lookbehind after the
# literal checks what comes before it).
_HHMMSS = re.compile(r":(?<=\d\d:)\d\d:\d\d")
"""``hh:mm:ss``, which both time patterns contain."""
_IN_NUMBER = re.compile(r" \d(?<=in \d|ok \d|er \d)")
"""``in 5``, ``took 5``, ``after 5``, which a duration contains."""


def normalise(text: str) -> str:
    """Strip the volatile parts of a text (addresses, timestamps, temp paths, durations).

    Two sites that differ only in these get the same cache key and the same hint.
    """
    if not text:
        return text
    if "0x" in text:
        text = _HEX.sub("0xADDR", text)
    if _HHMMSS.search(text) is not None:
        text = _DATETIME.sub("<TIME>", text)
        if _HHMMSS.search(text) is not None:
            text = _CLOCK_TIME.sub("<TIME>", text)
    if any(folder in text for folder in _TEMP_FOLDERS):
        text = _TEMP_PATH.sub("<TMP>", text)
    if _IN_NUMBER.search(text) is not None:
        text = _ELAPSED.sub("<DURATION>", text)
    return text


def cache_key(
    model: str, request: HintRequest, *, options: PromptOptions | None = None, answer: str = ""
) -> str:
    """A versioned hash of what the judge's answer for ``request`` depends on.

    The model, the prompt version, the prompt's ``options`` (budgets, whether the next action
    is shown, the redaction patterns), ``answer`` (whatever else changes the answer: sampling
    options, the number of samples) and the site itself: every field the prompt is built from,
    normalised (``normalise``), so the same mistake in another session is the same key. The
    prompt is not built: a cached site costs no prompt building and no redaction. The key is a
    SHA-256 digest; no text of the site can be read back from it.
    """
    options = options or _DEFAULT_OPTIONS
    site = request.site
    earlier = [normalise(error) for error in site.earlier_errors[-_EARLIER_LINES:]]
    blob = orjson.dumps(
        [
            _KEY_VERSION,
            PROMPT_VERSION,
            model,
            answer,
            options.fingerprint,
            # A user correction gets its own prompt, built from the corrected message too.
            site.detected_by is DetectedBy.USER,
            normalise(request.mistake_text),
            site.kind.value,
            site.exit_code,
            site.repeats,
            request.tools_used,
            site.tool_name,
            normalise(site.tool_input) if site.tool_input is not None else None,
            normalise(site.error_message),
            earlier,
            normalise(request.first_instruction),
            normalise(request.latest_instruction),
            normalise(request.intent),
            normalise(request.next_action) if options.show_next_action else None,
        ],
    )
    return hashlib.sha256(blob).hexdigest()


_DEFAULT_OPTIONS: Final = PromptOptions()
