"""The judge prompt and its cache key: pure and sync.

The prompt keeps the seeds' intent (a short corrective hint for this step only, at most two
sentences) and gives the judge what it needs: the error kind, the real error text, the failing
tool and its input, and the agent's next action, each bounded and redacted before anything
leaves the machine.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from tracehint._limits import clamp, clamp_middle
from tracehint._redact import Redactor

if TYPE_CHECKING:
    from tracehint._records import HintRequest

__all__ = ["PROMPT_VERSION", "JudgePrompt", "build_prompt", "cache_key", "normalise"]

PROMPT_VERSION = 1
"""Bump when the prompt text changes, so cached hints written for the old prompt are not reused."""

_KEY_VERSION = 1
"""Bump when the key derivation itself changes."""

SYSTEM_PROMPT = (
    "You write short corrective hints for an autonomous coding agent. A hint is inserted right "
    "above the agent's mistaken message, so it must say what the agent should have done at "
    "this step, in at most two sentences, addressed to the agent. Reply with the hint only."
)

_TEMPLATE = """\
An autonomous coding agent made a mistake at one step of a trajectory. Write a SHORT (at most \
2 sentences) corrective hint that, had the agent seen it, would steer it to the right behaviour \
for THIS step only. Do not solve the whole task; correct only the local mistake.

Error kind: {kind}
Failing tool: {tool}
Tool input:
{tool_input}

Error message:
{error}

Agent's next action (the message the hint goes above):
{next_action}

Corrective hint:"""


@dataclass(frozen=True, slots=True)
class JudgePrompt:
    """The chat messages sent to the judge, and the key its answer is cached under."""

    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        """OpenAI-style chat messages (the JSON edge)."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user},
        ]


def build_prompt(
    request: HintRequest,
    redactor: Redactor | None = None,
    *,
    error_chars: int = 2000,
    input_chars: int = 1000,
    action_chars: int = 1000,
) -> JudgePrompt:
    """Build the judge prompt for one site: every field bounded, every secret redacted."""
    redact = (redactor or Redactor()).redact
    site = request.site
    kind = site.kind.value
    if site.repeats:
        kind = f"{kind} (the same action has now failed {site.repeats + 1} times in a row)"
    if site.exit_code is not None:
        kind += f", exit code {site.exit_code}"
    user = _TEMPLATE.format(
        kind=kind,
        tool=site.tool_name or "(unknown)",
        tool_input=redact(clamp(site.tool_input or "(none)", input_chars)),
        error=redact(clamp_middle(site.error_message or "(no message)", error_chars)),
        next_action=redact(clamp(request.next_action or "(none)", action_chars)),
    )
    return JudgePrompt(SYSTEM_PROMPT, user)


# Each volatile part: its pattern, what replaces it, and substrings one of which any match
# contains (a plain ``in`` test skips the regex for most prompts). A leading ``\b`` keeps the
# regex engine from skipping ahead to the first character that can start a match, so word
# boundaries before a digit are written as a lookbehind after it: ``\d(?<!\w\d)``.
_VOLATILE: tuple[tuple[re.Pattern[str], str, tuple[str, ...] | None], ...] = (
    (re.compile(r"0(?<!\w0)x[0-9a-fA-F]+\b"), "0xADDR", ("0x",)),
    (
        re.compile(
            r"\d(?<!\w\d)\d{3}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
            r"(?:Z|[+-]\d{2}:?\d{2})?\b",
        ),
        "<TIME>",
        (":",),
    ),
    (re.compile(r"\d(?<!\w\d)\d:\d{2}:\d{2}(?:\.\d+)?\b"), "<TIME>", (":",)),
    (
        re.compile(
            r"(?:/private)?/var/folders/[^\s'\"]+|/tmp/[^\s'\"]+|"
            r"[A-Za-z]:\\Users\\[^\\\s]+\\AppData\\Local\\Temp\\[^\s'\"]+",
        ),
        "<TMP>",
        ("/var/folders/", "/tmp/", "\\AppData\\Local\\Temp\\"),  # noqa: S108 -- a pattern, not a file
    ),
    (
        re.compile(r"\b(?:in|after|took) \d+(?:\.\d+)?\s?(?:ms|s|sec|seconds)\b"),
        "<DURATION>",
        ("in ", "after ", "took "),
    ),
)


def normalise(text: str) -> str:
    """Strip the volatile parts of a prompt (addresses, timestamps, temp paths, durations).

    Two sites that differ only in these get the same cache key and the same hint.
    """
    for pattern, replacement, needles in _VOLATILE:
        if needles is None or any(needle in text for needle in needles):
            text = pattern.sub(replacement, text)
    return text


def cache_key(model: str, prompt: JudgePrompt) -> str:
    """A versioned hash of the model, the prompt version and the normalised prompt."""
    blob = orjson.dumps(
        [_KEY_VERSION, PROMPT_VERSION, model, normalise(prompt.system), normalise(prompt.user)],
    )
    return hashlib.sha256(blob).hexdigest()
