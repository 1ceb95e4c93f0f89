r"""Whether a regex's matches stay within one line: read from the parsed pattern. Pure and sync.

A regex search over a huge text (a 50 MB command output) is one call into the regex engine
that holds the GIL until it returns: every other thread, and the event loop, waits. A pattern
whose matches can never hold a line break can be searched a block of lines at a time instead
(``Pattern.finditer(text, pos, endpos)``), with the same matches: the engine reads what comes
before ``pos`` for a lookbehind, and no match, lookahead or lookbehind of such a pattern can
reach across the line break that ends a block.

``search_shape`` says so only when it can tell from the parse tree: no part of the pattern
(lookarounds included) can match ``\n``, it has no anchor other than ``\b``/``\B`` (``$``
would also match before a block's final line break), and it cannot match the empty string.
Anything it does not recognise makes the answer ``LineBound.NO``, which only costs speed.
"""

from __future__ import annotations

import enum
import re
from typing import Any, NamedTuple

try:  # CPython's regex parser
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover -- other Pythons: every pattern is searched whole
    _parser = None
    _c = None

__all__ = ["LineBound", "SearchShape", "search_shape"]

_NEWLINE = ord("\n")


def _category_has_newline(category: Any) -> bool | None:  # noqa: ANN401 -- a parser constant
    if _c is None:  # pragma: no cover
        return None
    table = {
        _c.CATEGORY_SPACE: True,
        _c.CATEGORY_NOT_SPACE: False,
        _c.CATEGORY_DIGIT: False,
        _c.CATEGORY_NOT_DIGIT: True,
        _c.CATEGORY_WORD: False,
        _c.CATEGORY_NOT_WORD: True,
        _c.CATEGORY_LINEBREAK: True,
        _c.CATEGORY_NOT_LINEBREAK: False,
    }
    return table.get(category)


def _set_has_newline(items: list[tuple[Any, Any]]) -> bool | None:
    r"""Whether a character set ``[...]`` matches ``\n`` (``None``: cannot tell)."""
    negate = False
    hit = False
    for op, value in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            hit = hit or value == _NEWLINE
        elif op is _c.RANGE:
            hit = hit or value[0] <= _NEWLINE <= value[1]
        elif op is _c.CATEGORY:
            found = _category_has_newline(value)
            if found is None:
                return None
            hit = hit or found
        else:
            return None
    return hit != negate


def _may_cross(items: Any, flags: int) -> bool:  # noqa: ANN401, C901, PLR0911, PLR0912 -- one walk over the parser's node kinds
    r"""Whether any node in a parsed sequence can match ``\n`` or is an anchor (or unknown)."""
    for op, value in items:
        if op is _c.LITERAL:
            if value == _NEWLINE:
                return True
        elif op is _c.NOT_LITERAL:
            if value != _NEWLINE:
                return True
        elif op is _c.ANY:
            if flags & re.DOTALL:
                return True
        elif op is _c.IN:
            if _set_has_newline(value) is not False:
                return True
        elif op is _c.AT:
            if value not in {_c.AT_BOUNDARY, _c.AT_NON_BOUNDARY}:
                return True
        elif op is _c.SUBPATTERN:
            _group, add, remove, sub = value
            if _may_cross(sub, (flags | add) & ~remove):
                return True
        elif op is _c.BRANCH:
            if any(_may_cross(alternative, flags) for alternative in value[1]):
                return True
        elif op in {_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT}:
            if _may_cross(value[2], flags):
                return True
        elif op in {_c.ASSERT, _c.ASSERT_NOT}:
            if _may_cross(value[1], flags):
                return True
        elif op is _c.ATOMIC_GROUP:
            if _may_cross(value, flags):
                return True
        elif op is _c.GROUPREF:
            continue  # it matches what its group matched, which is checked where it stands
        elif op is _c.GROUPREF_EXISTS:
            _group, yes, no = value
            if _may_cross(yes, flags) or (no is not None and _may_cross(no, flags)):
                return True
        else:
            return True  # anything else: do not tell
    return False


class LineBound(enum.Enum):
    """How a pattern's matches stand to line breaks."""

    NO = "no"
    """A match may hold a line break anywhere (or the parse tree does not tell)."""
    YES = "yes"
    """No match holds a line break."""
    AFTER_FIRST = "after_first"
    """Only a match's first character may be a line break (a pattern that starts with the
    character before what it finds, ``[^A-Za-z0-9]``): a block is searched from the line break
    before it."""


_SINGLE_CHARACTER: frozenset[Any] = (
    frozenset({_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN}) if _c is not None else frozenset()
)
"""Parser nodes that match exactly one character."""


class SearchShape(NamedTuple):
    """What the parse tree tells about searching a pattern: read once, when it is made."""

    lines: LineBound
    """How its matches stand to line breaks."""
    anchored: bool
    r"""It starts with ``\A`` (so ``match`` finds what ``search`` would)."""
    empty: bool
    """It may match the empty string (or the parse tree does not tell)."""


_UNKNOWN = SearchShape(LineBound.NO, anchored=False, empty=True)


def search_shape(pattern: re.Pattern[str]) -> SearchShape:
    """How ``pattern`` may be searched, from one parse of it.

    Whether a match (with its lookarounds) can reach across a line break, whether the
    pattern is anchored at the start of the text, and whether it may match nothing.
    """
    if _parser is None:  # pragma: no cover
        return _UNKNOWN
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 -- a private parser: searched whole rather than a crash
        return _UNKNOWN
    items = list(parsed)
    anchored = bool(items) and items[0] == (_c.AT, _c.AT_BEGINNING_STRING)
    low = parsed.getwidth()[0]
    return SearchShape(_line_bound(items, low, pattern.flags), anchored, empty=low == 0)


def _line_bound(items: list[tuple[Any, Any]], low: int, flags: int) -> LineBound:
    if low == 0:
        return LineBound.NO  # an empty match at a block's end would see the end of the text
    if not _may_cross(items, flags):
        return LineBound.YES
    if low >= 2 and items[0][0] in _SINGLE_CHARACTER and not _may_cross(items[1:], flags):
        return LineBound.AFTER_FIRST
    return LineBound.NO
