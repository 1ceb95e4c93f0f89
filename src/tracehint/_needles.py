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

__all__ = ["Prefiltered", "case_free_substrings", "prefiltered", "required_substrings"]


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


@dataclass(frozen=True, slots=True)
class Prefiltered:
    """A compiled regex that searches only texts holding one of its required substrings."""

    pattern: re.Pattern[str]
    needles: tuple[str, ...] | None
    """``required_substrings(pattern)``; ``None``: always search."""

    def _may_match(self, text: str) -> bool:
        return self.needles is None or any(needle in text for needle in self.needles)

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
