"""The user's own corrections: which user replies say the agent was wrong. Pure, sync, table-driven.

Two kinds of evidence make a ``user_correction`` site:

- **A rejection with words.** The user declined a tool call and said why: Claude Code's
  ``The user provided the following reason for the rejection: use pnpm``, a rejection whose
  whole text is the user's feedback (2.0.x IDE sessions), or a bare rejection followed by the
  words the user typed next (1.0.x: ``[Request interrupted by user for tool use]``, then the
  message). ``rejection_words`` reads the words out of the harness's boilerplate.
- **A reply that contradicts the agent.** The user's message right after an assistant message
  says it was wrong: "still doesn't work", "we lost the navigation", "are you sure…",
  "no, I meant…", "it was clean before", or pastes the error output of what the agent had just
  called done. ``Corrections.match`` tries ``CorrectionRule`` rows in order.

Precision comes before recall: a wrong site teaches a wrong lesson. So every rule is about a
class of reply (never one session's words), is looked for in the opening of the user's words
(where a correction is said; a pasted log is the exception), and states what the agent's
message must be for the rule to apply: any message, a statement (a "no" that answers the
agent's question is not a correction), or a claim of success or completion (a failure pasted
after a plan or a question is a new task, not a refutation). A reply that opens by thanking
or agreeing is never a correction. Pass your own ``Corrections(rules=...)`` (on
``Classifier.corrections``) to change them; nothing here is global or mutable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from tracehint._limits import clamp
from tracehint._needles import AnyMatch, case_free_substrings, required_substrings

__all__ = [
    "DEFAULT_CORRECTION_RULES",
    "Correction",
    "CorrectionRule",
    "Corrections",
    "NeedsClaim",
    "clean_words",
    "rejection_words",
    "user_hint",
]


class NeedsClaim(StrEnum):
    """What the agent's message before the reply must be for a rule to apply."""

    ANY = "any"
    """Any assistant message."""
    STATEMENT = "statement"
    """A message that does not end by asking the user something (a "no" answers a question)."""
    SUCCESS = "success"
    """A message that claims success or completion ("Done", "fixed", "all tests pass")."""


class Where(StrEnum):
    """Where in the user's words a rule looks."""

    OPENING = "opening"
    """The first ``Corrections.opening_chars`` characters (a correction is said first)."""
    ANYWHERE = "anywhere"
    """All of it (pasted output can come after a line of prose)."""


@dataclass(frozen=True, slots=True)
class CorrectionRule:
    """One row of the correction table: a class of reply that says the agent was wrong."""

    name: str
    """Stable name, written as the site's ``facts.problem`` prefix and counted in tests."""
    pattern: re.Pattern[str]
    problem: str
    """What the reply shows, in words (``the user says it still does not work``)."""
    needs: NeedsClaim = NeedsClaim.SUCCESS
    where: Where = Where.OPENING
    needles: tuple[str, ...] | None = None
    """Substrings one of which every match holds (lower-cased when ``pattern`` ignores case,
    then checked in ASCII texts only): a plain ``in`` test skips the regex for most replies.
    ``None``: always search."""
    _matcher: AnyMatch = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_matcher", AnyMatch.of(self.pattern))

    def search(self, text: str, lowered: str | None) -> bool:
        """Whether ``pattern`` is found in ``text`` (``lowered``: its lower case, if ASCII)."""
        needles = self.needles
        if needles is not None:
            folded = self.pattern.flags & re.IGNORECASE
            haystack = lowered if folded else text
            if haystack is not None and not any(map(haystack.__contains__, needles)):
                return False
        return self._matcher.found_in(text, lowered)


def _rule(
    name: str,
    pattern: str,
    problem: str,
    *,
    needs: NeedsClaim,
    where: Where = Where.OPENING,
    flags: int = re.IGNORECASE,
) -> CorrectionRule:
    compiled = re.compile(pattern, flags)
    needles = (
        case_free_substrings(compiled) if flags & re.IGNORECASE else required_substrings(compiled)
    )
    return CorrectionRule(name, compiled, problem, needs, where, needles)


_NOT = (
    r"(?:doesn'?t|does not|didn'?t|did not|isn'?t|is not|won'?t|will not|can'?t|cannot|"
    r"still not)"
)

DEFAULT_CORRECTION_RULES: tuple[CorrectionRule, ...] = (
    # "Still doesn't work", "the redirection doesn't work", "it no longer builds".
    _rule(
        "still_broken",
        rf"\bstill {_NOT}\b|\bstill (?:broken|failing|fails|the same|getting|seeing|no luck)\b|"
        rf"\b{_NOT} (?:seem to |actually |really )?work(?:s|ing)?\b|"
        r"\bno longer (?:works?|loads?|builds?|runs?|compiles?|shows?)\b|\bstopped working\b|"
        r"\b(?:is|are|it'?s) (?:still )?broken\b|\bsame (?:error|problem|issue|result)\b|"
        r"\bnothing (?:changed|happens|happened)\b",
        "the user says it does not work",
        needs=NeedsClaim.SUCCESS,
    ),
    # "We lost the navigation", "you removed X", "tests are unhappy now".
    _rule(
        "broke_something",
        r"\byou (?:lost|broke|removed|deleted|dropped|reverted|overwrote|undid|wiped)\b|"
        r"\b(?:we|it|this|that) (?:lost|broke)\b|\b(?:is|are|got|has been|have been|was|were) "
        r"(?:now )?(?:lost|gone|missing)\b|\b(?:is|are) now (?:broken|failing)\b|"
        r"\b(?:failing|broken|unhappy|red|erroring) now\b|\bregress(?:ed|ion)\b",
        "the user says the change broke or lost something",
        needs=NeedsClaim.SUCCESS,
    ),
    # The error output of what the agent had just called done, pasted back.
    _rule(
        "pasted_failure",
        r"^\s*(?:\S+ )?(?:error|fatal)(?:\[[\w-]+\])?: |Traceback \(most recent call last\)|"
        r"^\s*FAILED\b|^E {3}|\bNS_ERROR_[A-Z_]+\b|\bwas blocked (?:because|due to)\b|"
        r"\bUncaught (?:\w*Error|exception)\b|\b[A-Z]\w*(?:Error|Exception): |"
        r"\bexited with (?:code |status )?[1-9]|\bexit code [1-9]|\bnpm ERR!|"
        r"\b[45]\d\d (?:Not Found|Internal Server Error|Bad Request|Forbidden|Unauthorized)\b|"
        r"\b\d+ failed\b|=+ FAILURES =+",
        "the user pasted the failure of what the agent called done",
        needs=NeedsClaim.SUCCESS,
        where=Where.ANYWHERE,
        flags=re.MULTILINE,
    ),
    # "No, I meant…", "that's wrong", "not what I asked", "you forgot…".
    _rule(
        "contradiction",
        r"^\W*(?:no|nope|wrong|incorrect)\b\s*[,.!:;-]|\bthat'?s (?:wrong|incorrect|not (?:right|"
        r"correct|true|what))\b|\bthat is (?:wrong|incorrect|not (?:right|correct|true|what))\b|"
        r"\bnot what I (?:asked|meant|wanted|said|expected)\b|\bI (?:meant|said|asked (?:you )?"
        r"(?:to|for)|told you)\b|\byou (?:didn'?t|did not|forgot|missed|ignored|haven'?t|have not|"
        r"never)\b|\bwhy did you\b",
        "the user says the agent got it wrong",
        needs=NeedsClaim.STATEMENT,
    ),
    # "Are you sure…?", "I don't think that's the issue".
    _rule(
        "doubt",
        r"\bare you sure\b|\bI don'?t think (?:that'?s|this is|it'?s|so|that is)\b|"
        r"\bthat'?s not (?:the|it)\b",
        "the user doubts the agent's claim",
        needs=NeedsClaim.STATEMENT,
    ),
    # "Do we even need X?", "no need to…": work the user did not want.
    _rule(
        "unneeded",
        r"\bdo we (?:even|really|actually) need\b|\b(?:we|you) (?:don'?t|do not|shouldn'?t) "
        r"(?:even |really |actually )?need\b|\bno need (?:to|for)\b",
        "the user says the work was not needed",
        needs=NeedsClaim.STATEMENT,
    ),
    # A failure dismissed as pre-existing: "it was clean before", "main was passing".
    _rule(
        "was_fine_before",
        r"\b(?:was|were|is|are) (?:clean|passing|green|fine|working) "
        r"(?:before|on main|on master)\b|"
        r"\b(?:worked|passed) (?:fine )?before\b|\bnot pre-?existing\b|"
        r"\b(?:main|master)(?: branch)? (?:was|is) (?:clean|green|passing)\b",
        "the user says it was fine before the agent's change",
        needs=NeedsClaim.STATEMENT,
    ),
)
"""The default correction table (see the module docstring)."""


# The agent's message claims success or completion.
_SUCCESS = AnyMatch.of(
    re.compile(
        r"\b(?:done|fixed|resolved|implemented|completed?|finished|successfully|restored|"
        r"ready (?:to|for)|is ready|all set|works now|now works|all passing)\b|✅|"
        r"\b(?:tests?|checks?|build|lint(?:ing)?) (?:now |all |still )?(?:pass(?:es|ed|ing)?|"
        r"succeed(?:s|ed)?|green)\b|\ball (?:\d+ )?(?:new |the )?(?:tests?|checks?) pass|"
        r"\b(?:should|will) now\b|\bnow (?:correctly|properly|works?|serves?|loads?|handles?|"
        r"redirects?|uses?|shows?|returns?|builds?)\b|\b(?:has|have) been (?:fixed|updated|added|"
        r"created|removed|resolved|restored|changed|switched|implemented)\b|"
        r"\bI'?ve (?:fixed|updated|added|created|switched|changed|removed|implemented|made|"
        r"restored|moved|set up|replaced)\b|\b(?:perfect|great|excellent)!",
        re.IGNORECASE,
    )
)
# A reply that opens by thanking or agreeing is not a correction.
_AGREEING = re.compile(
    r"^\W*(?:thanks?\b|thank you|great\b|perfect\b|excellent\b|nice\b|awesome\b|cool\b|lgtm\b|"
    r"looks good|that works|it works|works now|yes\b|yep\b|ok(?:ay)?\b|sure\b|fine\b|good\b)",
    re.IGNORECASE,
)
_QUESTION_END = re.compile(r"\?[\s*_)`\"']*\Z")

# What the user's message carries besides their words: IDE notices, reminders, images.
_NOTICES = re.compile(
    r"<(ide_opened_file|ide_selection|system-reminder)>.*?</\1>", re.DOTALL | re.IGNORECASE
)
_IMAGES = re.compile(r"\[image(?:: [^\]]*)?\]|\[Image #\d+\]", re.IGNORECASE)
_ERROR_LINE = re.compile(
    r"(?:error|fatal|failed|blocked|exception|traceback|NS_ERROR|ERR!)", re.IGNORECASE
)

_WORDS_CHARS = 300
_LINE_CHARS = 160


def clean_words(text: str) -> str:
    """The user's own words in a message.

    IDE notices and image placeholders are dropped, the CLI's line-continuation backslashes
    removed, whitespace tidied.
    """
    text = _IMAGES.sub(" ", _NOTICES.sub(" ", text))
    text = text.replace("\\\n", "\n")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(lines).strip().rstrip("\\").strip()


def _opening(words: str) -> str:
    """The user's prose before anything pasted: the first paragraph, bounded."""
    paragraph = words.split("\n\n", 1)[0]
    return clamp(" ".join(paragraph.split()), _WORDS_CHARS)


_HARNESS = re.compile(
    r"\A\s*(?:the user doesn't want to proceed with this tool use|user rejected tool use|"
    r"the tool use was rejected)",
    re.IGNORECASE,
)
_REASON = re.compile(
    r"the user provided the following reason for the rejection:\s*(?P<words>.+)",
    re.IGNORECASE | re.DOTALL,
)
_WRAPPER = re.compile(r"\A\s*<tool_use_error>(.*)</tool_use_error>\s*\Z", re.DOTALL)


def rejection_words(text: str) -> str | None:
    """The user's words in a rejected call's result, or ``None`` when there are none.

    ``text`` is a result the classifier called ``user_rejected``: either Claude Code's wording
    (with the words after ``The user provided the following reason for the rejection:``, or
    without words), or the user's feedback alone.
    """
    wrapped = _WRAPPER.match(text)
    if wrapped is not None:
        text = wrapped.group(1)
    if _HARNESS.match(text):
        reason = _REASON.search(text)
        text = reason.group("words") if reason is not None else ""
    words = clean_words(text)
    return words or None


def user_hint(words: str, *, evidence: str | None = None) -> str:
    """The hint built from the user's words (``hint_source: "user"``).

    ``evidence`` is the telling line of output the user pasted, when the words are mostly a log.
    """
    said = _opening(words)
    if evidence and evidence not in said:
        said = f"{said} (the output: {clamp(evidence, _LINE_CHARS)})" if said else evidence
    return f'The user\'s feedback on this step: "{said}"'


@dataclass(frozen=True, slots=True)
class Correction:
    """A user reply that the table says is a correction."""

    rule: str
    """The name of the rule that matched (``rejected`` for a rejection with words)."""
    problem: str
    words: str
    """The user's words, cleaned (``clean_words``); bounded by the caller."""
    evidence: str | None = None
    """The first error line of output the user pasted after their words, if any."""

    @property
    def hint(self) -> str:
        """The user's words as a hint (see ``user_hint``)."""
        return user_hint(self.words, evidence=self.evidence)


def _first_error_line(words: str) -> str | None:
    """The first error-looking line of what the user pasted after their first paragraph."""
    _, _, pasted = words.partition("\n\n")
    for line in pasted.splitlines():
        stripped = line.strip()
        if stripped and _ERROR_LINE.search(stripped):
            return clamp(stripped, _LINE_CHARS)
    return None


@dataclass(frozen=True, slots=True)
class Corrections:
    """Reads user replies: which ones say the agent's preceding message was wrong.

    >>> Corrections().match("Still doesn't work", "Done! The redirect now works.").rule
    'still_broken'
    >>> Corrections().match("Thanks! Now add a README", "Done! The redirect now works.") is None
    True
    """

    rules: tuple[CorrectionRule, ...] = DEFAULT_CORRECTION_RULES
    opening_chars: int = 300
    """How much of the user's words the ``opening`` rules read."""

    def match(self, text: str, claim: str) -> Correction | None:
        """The correction ``text`` (a user message) makes of ``claim``, or ``None``.

        ``claim`` is the text of the agent's message right before the reply (no thinking).
        """
        words = clean_words(text)
        if not words or not claim.strip():
            return None
        opening = " ".join(words[: self.opening_chars * 2].split())[: self.opening_chars]
        if _AGREEING.match(opening):
            return None
        success = _SUCCESS.found_in(claim, claim.lower() if claim.isascii() else None)
        statement = _QUESTION_END.search(claim.strip()) is None
        # Lower-cased once for the rules' prefilters (only an ASCII text folds exactly).
        lowered_words = words.lower() if words.isascii() else None
        lowered_opening = opening.lower() if opening.isascii() else None
        for rule in self.rules:
            if rule.needs is NeedsClaim.SUCCESS and not success:
                continue
            if rule.needs is NeedsClaim.STATEMENT and not statement:
                continue
            if rule.where is Where.ANYWHERE:
                found = rule.search(words, lowered_words)
            else:
                found = rule.search(opening, lowered_opening)
            if not found:
                continue
            return Correction(rule.name, rule.problem, words, _first_error_line(words))
        return None

    def after_rejection(self, text: str) -> Correction | None:
        """The words a user typed right after rejecting a call, as that rejection's reason.

        Any message counts, but one that only agrees or is a single word ("ok") says nothing.
        """
        words = clean_words(text)
        if len(words.split()) < 2 or (_AGREEING.match(words) and len(words.split()) < 4):
            return None
        return Correction("rejected", "the user rejected the call and said why", words)

    def rejected(self, words: str) -> Correction:
        """A rejection whose result carries the user's words."""
        return Correction("rejected", "the user rejected the call and said why", words)


DEFAULT_CORRECTIONS = Corrections()
