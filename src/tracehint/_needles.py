"""Literal prefilters for regexes: the substrings every match must contain.

A regex search over a long text costs a Python-level call into the regex engine that walks the
text; a plain ``in`` test for a literal the match must hold is several times faster and rules
most texts out. Pure and sync.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:  # CPython's regex parser, to find the literal text a pattern requires (a prefilter)
    from re import _constants, _parser  # type: ignore[attr-defined]

    _LITERAL, _BRANCH, _SUBPATTERN = _constants.LITERAL, _constants.BRANCH, _constants.SUBPATTERN
    _REPEATS = frozenset({_constants.MAX_REPEAT, _constants.MIN_REPEAT})
except ImportError:  # pragma: no cover -- other Pythons: no prefilter
    _parser = None
    _LITERAL = _BRANCH = _SUBPATTERN = object()
    _REPEATS = frozenset()

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "AnyMatch",
    "Prefiltered",
    "alternatives",
    "case_free_substrings",
    "prefiltered",
    "required_substrings",
]


_MIN_NEEDLE = 3


def _exact_repeat(op: Any, value: Any) -> str | None:  # noqa: ANN401 -- the parser's own values
    """The text of a literal character repeated a fixed number of times (`` {3}``), if it is."""
    if op not in _REPEATS:
        return None
    low, high, body = value
    if low != high or len(body) != 1 or body[0][0] is not _LITERAL:
        return None
    times: int = low
    return chr(body[0][1]) * times


def _literal_run(items: list[tuple[Any, Any]]) -> str:
    """The longest run of consecutive literal characters in a parsed sequence."""
    best, run = "", ""
    for op, value in items:
        if op is _LITERAL:
            run += chr(value)
            continue
        repeated = _exact_repeat(op, value)
        if repeated is not None:
            run += repeated
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


def case_free_substrings(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Required substrings of a case-insensitive ``pattern``, lower-cased, for ASCII texts.

    In an ASCII text, a case-insensitive match holds one of them in the lower-cased text. Only
    ASCII needles are given (some non-ASCII letters match ASCII ones case-insensitively);
    ``None`` when there are none.
    """
    if _parser is None:
        return None
    needles = required_substrings(re.compile(pattern.pattern, pattern.flags & ~re.IGNORECASE))
    if needles is None or not all(needle.isascii() for needle in needles):
        return None
    return tuple(sorted({needle.lower() for needle in needles}))


def _split_top_level(source: str) -> list[str]:
    """``source`` cut at each ``|`` outside groups and character classes."""
    parts: list[str] = []
    depth = start = index = 0
    in_class = False
    while index < len(source):
        char = source[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            index += 1
            # a "]" right after "[" or "[^" is a literal member of the class
            if source[index : index + 1] == "^":
                index += 1
            if source[index : index + 1] == "]":
                index += 1
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(source[start:index])
            start = index + 1
        index += 1
    parts.append(source[start:])
    return parts


# A back-reference or a conditional: in an alternative compiled apart, its group number could
# name another group.
_GROUP_REFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")


def alternatives(pattern: re.Pattern[str]) -> tuple[re.Pattern[str], ...] | None:
    r"""The top-level alternatives of ``pattern``, each compiled on its own with its flags.

    ``pattern.search(text)`` finds a match exactly when one of them does, and each has its own
    required substrings: a search for any match can skip most of them with a plain ``in`` test
    (a regex that starts with ``\b`` or ``^`` is tried at every position of a long text).
    ``None`` when there is a single alternative, or when taking them apart could change what
    they match (a verbose pattern, a reference to a group of another alternative).
    """
    if pattern.flags & re.VERBOSE or _GROUP_REFERENCE.search(pattern.pattern):
        return None
    parts = _split_top_level(pattern.pattern)
    if len(parts) < 2:
        return None
    try:
        return tuple(re.compile(part, pattern.flags) for part in parts)
    except re.error:
        return None


@dataclass(frozen=True, slots=True)
class Prefiltered:
    """A compiled regex that searches only texts holding one of its required substrings."""

    pattern: re.Pattern[str]
    needles: tuple[str, ...] | None
    """``required_substrings(pattern)``; ``None``: always search."""

    def _may_match(self, text: str) -> bool:
        # `map` over `__contains__`: the loop in C, twice as fast as a generator for a few needles
        return self.needles is None or any(map(text.__contains__, self.needles))

    def search(self, text: str) -> re.Match[str] | None:
        """``pattern.search(text)``."""
        return self.pattern.search(text) if self._may_match(text) else None

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """``pattern.finditer(text)``."""
        return self.pattern.finditer(text) if self._may_match(text) else iter(())


def prefiltered(pattern: str, flags: int = 0) -> Prefiltered:
    """Compile ``pattern`` with its literal prefilter."""
    compiled = re.compile(pattern, flags)
    return Prefiltered(compiled, required_substrings(compiled))


@dataclass(frozen=True, slots=True)
class AnyMatch:
    """Whether a regex matches anywhere in a text, its alternatives tried one at a time.

    An alternative is searched only when the text holds one of its required substrings (for a
    case-insensitive pattern: lower-cased, in the lower case of an ASCII text); one without
    any is always searched. A case-insensitive pattern in a non-ASCII text is searched whole,
    as ``pattern.search`` would.
    """

    pattern: re.Pattern[str]
    parts: tuple[tuple[re.Pattern[str], tuple[str, ...] | None], ...] | None
    """The alternatives and their needles; ``None``: search the whole pattern."""

    @classmethod
    def of(cls, pattern: re.Pattern[str]) -> AnyMatch:
        """``pattern`` with its alternatives and their needles."""
        split = alternatives(pattern)
        if split is None:
            return cls(pattern, None)
        folded = pattern.flags & re.IGNORECASE
        needles = [
            case_free_substrings(part) if folded else required_substrings(part) for part in split
        ]
        if all(found is None for found in needles):
            return cls(pattern, None)
        return cls(pattern, tuple(zip(split, needles, strict=True)))

    def found_in(self, text: str, lowered: str | None = None) -> bool:
        """Whether ``pattern`` matches in ``text``; ``lowered``: ``text.lower()`` if ASCII."""
        parts = self.parts
        haystack = lowered if self.pattern.flags & re.IGNORECASE else text
        if parts is None or haystack is None:
            return self.pattern.search(text) is not None
        return any(
            part.search(text) is not None
            for part, needles in parts
            if needles is None or any(map(haystack.__contains__, needles))
        )
