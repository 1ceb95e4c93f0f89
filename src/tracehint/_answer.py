"""Reading and checking a judge's answer before it becomes a hint: pure and sync.

``check_answer`` turns the text a judge sent into an ``Answer`` (a hint, or the verdict that
the failure was not a mistake) or a ``Rejected`` with a stable reason. In order:

1. ``finish_reason == "length"``: the answer was cut off by ``max_tokens`` → ``cut_off``.
2. ``<think>…</think>`` blocks are removed (and anything before a lone ``</think>``); an
   unterminated ``<think>`` → ``unterminated_think``.
3. Nothing left → ``empty``.
4. JSON (``{"hint": …, "verdict": …}``), also inside a fenced code block or after a line of
   prose, is read; JSON that does not hold a string ``hint`` → ``malformed_json``. A verdict
   ``not_a_mistake`` is an ``Answer`` with no hint. Text that is not JSON is the hint itself.
5. The hint: a leading ``Hint:`` label and surrounding quotes are dropped; then it is
   rejected when it echoes the prompt (``Corrective hint:``, a section heading) → ``echo``,
   is JSON itself → ``malformed_json``, is shorter than ``min_chars`` → ``too_short``, longer
   than ``max_chars`` → ``too_long``, has more than ``max_sentences`` sentences or lines →
   ``too_many_sentences``, mostly repeats the error text → ``echo``, or says nothing but
   generic advice → ``generic``.

Generic advice is a hint that, once the phrases in ``GENERIC_PHRASES`` and common function
words are taken out, has fewer than three words left ("Be careful and try again.",
"Make sure to double-check your work.").

``pick_answer`` chooses one hint among several valid samples: the one with the highest mean
word overlap (Jaccard) with the others, the earliest on a tie (the answer closest to the
consensus).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import orjson

from tracehint._plaintext import plain_text

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "GENERIC_PHRASES",
    "Answer",
    "Rejected",
    "Rejection",
    "Verdict",
    "check_answer",
    "pick_answer",
    "strip_thinking",
]


class Verdict(StrEnum):
    """What the judge said about the site."""

    MISTAKE = "mistake"
    NOT_A_MISTAKE = "not_a_mistake"


class Rejection(StrEnum):
    """Why an answer is not kept as a hint (stable strings, counted in the judge stats)."""

    CUT_OFF = "cut_off"
    UNTERMINATED_THINK = "unterminated_think"
    EMPTY = "empty"
    MALFORMED_JSON = "malformed_json"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    TOO_MANY_SENTENCES = "too_many_sentences"
    ECHO = "echo"
    GENERIC = "generic"


@dataclass(frozen=True, slots=True)
class Answer:
    """A usable answer: a hint, or the verdict that the failure was not a mistake."""

    verdict: Verdict
    hint: str | None
    """The hint (``None`` for ``not_a_mistake``)."""
    note: str | None = None
    """For ``not_a_mistake``: what the judge said about why, when it said anything."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """An answer that is not kept, and why."""

    reason: Rejection
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value} ({self.detail})"


GENERIC_PHRASES: tuple[str, ...] = (
    "be more careful",
    "be careful",
    "pay closer attention",
    "pay attention",
    "double-check",
    "double check",
    "make sure to",
    "make sure",
    "ensure that",
    "try again",
    "retry",
    "think carefully",
    "think step by step",
    "carefully",
    "check your work",
    "review your",
    "reconsider",
    "fix the error",
    "fix the issue",
    "fix the problem",
    "avoid this mistake",
    "avoid mistakes",
    "in the future",
    "next time",
)
"""Phrases that carry no correction on their own (the de-templating list)."""

_FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "so",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "by",
        "from",
        "as",
        "is",
        "are",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "you",
        "your",
        "yours",
        "i",
        "we",
        "our",
        "please",
        "should",
        "would",
        "could",
        "can",
        "will",
        "just",
        "before",
        "after",
        "again",
        "then",
        "than",
        "when",
        "if",
        "not",
        "no",
        "do",
        "does",
        "did",
        "any",
        "all",
        "more",
        "most",
        "very",
        "also",
        "sure",
        "error",
        "errors",
        "issue",
        "issues",
        "problem",
        "mistake",
        "mistakes",
        "step",
        "steps",
    ]
)

_THINK_BLOCK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)\n?```", re.DOTALL)
_LABEL = re.compile(r"^(?:\*\*)?(?:hint|corrective hint)(?:\*\*)?\s*:\s*", re.IGNORECASE)
_VERDICT_LABEL = re.compile(
    r"[\s(]*(?:\*\*)?verdict(?:\*\*)?\s*[:=]\s*\"?mistake\"?\)?\.?\s*$", re.IGNORECASE
)
_PROMPT_ECHOES = (
    "corrective hint",
    "## the failing call",
    "## user's task",
    "## its result",
    "write the hint for this step",
    '"verdict"',
)
# A sentence ends at . ! or ? followed by space and a capital, a quote, a backtick or a bracket;
# dots inside paths, versions and "e.g." do not end one.
# The lookbehinds come after the first mark (the one they end with), so the regex engine looks
# for a mark instead of trying them at every position.
_SENTENCE_END = re.compile(
    r"[.!?](?<!\be\.g[.!?])(?<!\bi\.e[.!?])(?<!\betc[.!?])(?<!\bvs[.!?])[.!?]*\s+"
    r"(?=[A-Z`\"'(\[*])"
)
_WORD = re.compile(r"[a-z0-9][a-z0-9_\-./]*", re.IGNORECASE)


def strip_thinking(text: str) -> str | None:
    """``text`` without reasoning blocks, or ``None`` when one is never closed."""
    if "<" not in text:  # every tag starts with it
        return text
    text = _THINK_BLOCK.sub("", text)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:  # servers that strip the opening tag leave "reasoning…</think>answer"
        text = text[closes[-1].end() :]
    if _THINK_OPEN.search(text):
        return None
    return text


@dataclass(frozen=True, slots=True)
class _Json:
    """What JSON an answer holds: ``found`` when it looks like JSON, ``value`` when it parses."""

    found: bool
    value: dict[str, object] | None = None


def _json_object(text: str) -> _Json:
    """The JSON object ``text`` holds (whole, fenced, or after a line of prose)."""
    candidates: list[str] = []
    fenced = _FENCE.search(text) if "```" in text else None
    if fenced and fenced.group(1).strip().startswith("{"):
        candidates.append(fenced.group(1).strip())
    stripped = text.strip()
    if stripped.startswith("{"):
        candidates.append(stripped)
    start, end = stripped.find("{"), stripped.rfind("}")
    if start >= 0 and end > start and '"hint"' in stripped:  # JSON with prose around it
        candidates.append(stripped[start : end + 1])
    for candidate in candidates:
        try:
            value = orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return _Json(found=True, value=value)
    return _Json(found=bool(candidates))


def count_sentences(text: str) -> int:
    """Sentences in ``text``: each non-empty line counts at least one."""
    return sum(
        len(_SENTENCE_END.findall(line.strip().rstrip(".!?"))) + 1
        for line in text.splitlines()
        if line.strip()
    )


def _words(text: str) -> list[str]:
    return [w.strip(".-/").lower() for w in _WORD.findall(text)]


def _is_generic(hint: str) -> bool:
    lowered = hint.lower()
    found = False
    for phrase in GENERIC_PHRASES:
        if phrase in lowered:
            found = True
            lowered = lowered.replace(phrase, " ")
    if not found:
        return False
    rest = [w for w in _words(lowered) if w and w not in _FUNCTION_WORDS]
    return len(rest) < 3


_ECHO_SHARE = 0.8
"""A hint whose words are this share of the error's words or more is an echo."""


def shares_run(a: str, b: str, size: int) -> bool:
    """Whether ``a`` and ``b`` have a common substring of at least ``size`` characters.

    Exact, and far cheaper than the longest common substring (``difflib``): every run of
    ``size`` characters of ``a`` holds a whole block ``a[k * step : (k + 1) * step]`` with
    ``step = (size + 1) // 2``, so only the places where such a block occurs in ``b`` (found by
    the C substring search) are extended both ways.
    """
    if size <= 0:
        return True
    if len(a) < size or len(b) < size:
        return False
    step = (size + 1) // 2
    for start in range(0, len(a) - step + 1, step):
        block = a[start : start + step]
        found = b.find(block)
        while found >= 0:
            left = 0
            while left < start and left < found and a[start - left - 1] == b[found - left - 1]:
                left += 1
            right = step
            while start + right < len(a) and found + right < len(b):
                if a[start + right] != b[found + right]:
                    break
                right += 1
            if left + right >= size:
                return True
            found = b.find(block, found + 1)
    return False


def _echoes(hint: str, source: str) -> bool:
    """Whether ``hint`` is mostly a copy of ``source`` (the error text)."""
    if not source.strip():
        return False
    a, b = hint.lower(), source.lower()
    if len(a) >= 20 and a.rstrip(".") in b:
        return True
    if shares_run(a, b, max(30, int(0.8 * len(a)))):  # nearly all of it copied
        return True
    hint_words = {w for w in _words(a) if len(w) > 2}
    if len(hint_words) < 5:
        return False
    if b.isascii() and sum(w in b for w in hint_words) / len(hint_words) < _ECHO_SHARE:
        return False  # a word of the source is a substring of it: too few could be shared
    source_words = set(_words(b))
    return len(hint_words & source_words) / len(hint_words) >= _ECHO_SHARE


def check_answer(  # noqa: C901, PLR0911, PLR0912 -- one ordered list of checks, kept together
    text: str,
    *,
    finish_reason: str | None = None,
    error: str = "",
    min_chars: int = 20,
    max_chars: int = 600,
    max_sentences: int = 2,
) -> Answer | Rejected:
    """Read and check one judge answer (see the module docstring for the rules, in order).

    ``error`` is the site's error text: a hint that mostly repeats it is an echo.
    """
    if finish_reason == "length":
        return Rejected(Rejection.CUT_OFF, "the answer hit max_tokens")
    body = strip_thinking(text)
    if body is None:
        return Rejected(Rejection.UNTERMINATED_THINK, "a <think> block is never closed")
    # Checked as what would be kept: plain text (``Hint`` keeps nothing else).
    body = plain_text(body).strip()
    if not body:
        return Rejected(Rejection.EMPTY, "no text besides reasoning" if text.strip() else "empty")
    found = _json_object(body)
    if found.value is not None:
        verdict, value = found.value.get("verdict"), found.value.get("hint")
        hint = plain_text(value).strip() if isinstance(value, str) else None
        if verdict == Verdict.NOT_A_MISTAKE.value:
            return Answer(Verdict.NOT_A_MISTAKE, None, hint or None)
        if hint is None:
            return Rejected(Rejection.MALFORMED_JSON, 'JSON without a string "hint"')
        body = hint
        if not body:
            return Rejected(Rejection.EMPTY, 'an empty "hint"')
    elif found.found:
        return Rejected(Rejection.MALFORMED_JSON, "JSON that does not parse")
    elif re.fullmatch(r"[\W_]*not[ _]a[ _]mistake[\W_]*", body, re.IGNORECASE):
        return Answer(Verdict.NOT_A_MISTAKE, None)
    lowered = body.lower()
    for echo in _PROMPT_ECHOES:
        if echo in lowered:
            return Rejected(Rejection.ECHO, "repeats the prompt")
    body = _LABEL.sub("", body)
    if "verdict" in lowered or not lowered.isascii():  # the label's word, in any case
        body = _VERDICT_LABEL.sub("", body)
    body = body.strip().strip('"').strip()
    if body.startswith(("{", "[")):
        return Rejected(Rejection.MALFORMED_JSON, "the hint is JSON itself")
    if len(body) < min_chars:
        return Rejected(Rejection.TOO_SHORT, f"{len(body)} characters, fewer than {min_chars}")
    if len(body) > max_chars:
        return Rejected(Rejection.TOO_LONG, f"{len(body)} characters, more than {max_chars}")
    sentences = count_sentences(body)
    if sentences > max_sentences:
        return Rejected(
            Rejection.TOO_MANY_SENTENCES, f"{sentences} sentences, more than {max_sentences}"
        )
    if _echoes(body, error):
        return Rejected(Rejection.ECHO, "repeats the error text")
    if _is_generic(body):
        return Rejected(Rejection.GENERIC, "generic advice only")
    return Answer(Verdict.MISTAKE, body)


def pick_answer(hints: Sequence[str]) -> str:
    """The hint closest to the others: highest mean word overlap (Jaccard), earliest on a tie."""
    if not hints:
        raise ValueError("pick_answer needs at least one hint")
    if len(hints) == 1:
        return hints[0]
    bags = [set(_words(hint)) for hint in hints]

    def overlap(a: set[str], b: set[str]) -> float:
        return len(a & b) / len(a | b) if a | b else 1.0

    scores = [
        sum(overlap(bag, other) for j, other in enumerate(bags) if j != i) / (len(bags) - 1)
        for i, bag in enumerate(bags)
    ]
    best = max(scores)
    return hints[scores.index(best)]
