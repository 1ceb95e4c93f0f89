"""JSON with huge strings, made and read a slice at a time so no call holds the GIL for long.

``orjson`` holds the GIL for the whole of one ``dumps`` or ``loads`` call, even in a worker
thread: serialising or parsing a line with a 50 MB string froze the event loop for the whole
call (about 50 to 70 ms on a 2-core machine).

``dump_parts`` serialises everything but the huge strings in one small call, and each huge
string a slice at a time, and returns the line as parts that are never joined
(``JsonlSink.write_parts`` writes them as they are). The bytes are exactly ``orjson.dumps``'s:
JSON escapes each character on its own, so a string's encoding is the encodings of its slices
put end to end.

``loads`` finds the huge string literals of a long line (a regex scan, a window at a time),
parses the rest in one small call with a placeholder for each, and decodes each literal a
slice at a time; the slices are joined by ``_longstr.join``, whose copy runs without the
GIL (``"".join`` of 50 MB held it for 20 to 30 ms). Anything unusual (invalid JSON, a
literal that is a key or is cut nowhere safely) falls back to ``orjson.loads`` of the whole
line: the same value, or the same error. ``loads_text`` does the same for JSON held in a
``str``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import orjson

from tracehint import _longstr

__all__ = [
    "HUGE_STRING_BYTES",
    "HUGE_STRING_CHARS",
    "SLICE_CHARS",
    "contains",
    "dump_parts",
    "loads",
    "loads_text",
]

HUGE_STRING_CHARS = 1024 * 1024
"""A string this long or longer is encoded a slice at a time."""
SLICE_CHARS = 256 * 1024
"""Characters encoded in one ``orjson.dumps`` call (well under a millisecond)."""

# orjson escapes every control character inside strings, so its output holds no NUL byte of
# its own: a NUL fragment marks where a huge string goes.
_MARK = b"\x00"
_MARK_FRAGMENT = orjson.Fragment(_MARK)


def _swap(value: Any, huge: list[str], min_chars: int) -> Any:  # noqa: ANN401 -- JSON data
    """``value`` with each string of ``min_chars`` or more replaced by a mark (in ``huge``).

    Containers on the way to a huge string are copied; the others are returned as they are.
    """
    if isinstance(value, str):
        if len(value) >= min_chars:
            huge.append(value)
            return _MARK_FRAGMENT
        return value
    if isinstance(value, dict):
        found = len(huge)
        swapped = {key: _swap(item, huge, min_chars) for key, item in value.items()}
        return swapped if len(huge) > found else value
    if isinstance(value, (list, tuple)):
        found = len(huge)
        items = [_swap(item, huge, min_chars) for item in value]
        return items if len(huge) > found else value
    return value


def _encode(text: str, slice_chars: int, out: list[bytes]) -> None:
    """Append the JSON string ``text`` to ``out``, a slice per ``orjson.dumps`` call."""
    last = len(text) - 1
    for start in range(0, len(text), slice_chars):
        encoded = orjson.dumps(text[start : start + slice_chars])
        head = 0 if start == 0 else 1  # the opening quote only at the start
        tail = len(encoded) if start + slice_chars > last else -1  # the closing one at the end
        out.append(encoded[head:tail])


def dump_parts(
    value: object,
    *,
    option: int = 0,
    min_chars: int = HUGE_STRING_CHARS,
    slice_chars: int = SLICE_CHARS,
) -> list[bytes]:
    """``orjson.dumps(value, option=option)`` as parts to be written one after the other.

    Strings of ``min_chars`` or more are encoded ``slice_chars`` at a time (blocking and CPU
    work: call it in a worker thread; between slices, other threads get the GIL). Without
    such strings the result is one part.
    """
    huge: list[str] = []
    skeleton = orjson.dumps(_swap(value, huge, min_chars), option=option)
    if not huge:
        return [skeleton]
    pieces = skeleton.split(_MARK)
    out: list[bytes] = [pieces[0]]
    for text, after in zip(huge, pieces[1:], strict=True):
        _encode(text, slice_chars, out)
        out.append(after)
    return out


HUGE_STRING_BYTES = 1024 * 1024
"""A string literal this long or longer in a line ``loads`` reads is decoded a slice at a time."""
_SLICE_BYTES = 256 * 1024
"""Bytes of a literal decoded (or scanned) in one call."""
_SAFE_GAP = 12
"""A literal is cut where no backslash is this close before the cut: never inside an escape,
nor between the two escapes of a surrogate pair (``\\ud83d\\ude00``, 12 bytes)."""
_ESCAPED_QUOTES = 16
"""Escaped quotes of a literal skipped one ``find`` at a time before a regex scans the rest."""
_CUT_SEARCH = 64 * 1024
"""How far back from a slice's end a safe cut is looked for before giving up."""

# A string's content up to its closing quote: runs of plain bytes and escapes, never
# backtracking (possessive), so a window at a time resumes where the last one stopped.
_BODY = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+', re.DOTALL)


class _Fallback(Exception):  # noqa: N818 -- internal signal, never escapes loads
    """Parse the whole line with ``orjson.loads`` after all."""


def _maybe_huge(data: bytes, min_bytes: int) -> bool:
    """Whether ``data`` may hold a string literal of ``min_bytes`` or more.

    Such a literal covers some window of half that size, whose quotes are all behind a
    backslash: counted in C, a window per call.
    """
    step = max(min_bytes // 2, 1)
    for start in range(0, len(data) - step + 1, step):
        end = start + step
        if data.count(b'"', start, end) == data.count(b'\\"', start, end):
            return True
    return False


def _string_end(data: bytes, at: int) -> int:
    """Where the string literal whose content starts at ``at`` ends (its closing quote).

    The next quote is found in C (``memchr``), and it closes the string unless an odd run of
    backslashes is before it; past a few escaped quotes, the rest is scanned with ``_BODY``,
    a window per call.
    """
    find = data.find
    for _ in range(_ESCAPED_QUOTES):
        quote = find(b'"', at)
        if quote < 0:
            raise _Fallback  # no closing quote: invalid JSON
        before = quote - 1
        while data[before] == 0x5C:  # a backslash (the opening quote stops the run)
            before -= 1
        if (quote - 1 - before) % 2 == 0:
            return quote
        at = quote + 1
    size, match = len(data), _BODY.match
    while True:
        was = at
        at = match(data, at, min(at + _SLICE_BYTES, size)).end()  # type: ignore[union-attr]
        if at < size and data[at] == 0x22:  # the closing quote
            return at
        if at >= size or at == was:
            raise _Fallback  # no closing quote, or a backslash ending it: invalid JSON
        # else a window's end, or an escape the window's end cut: on from there


def _huge_spans(data: bytes, min_bytes: int) -> list[tuple[int, int]]:
    """The contents (without quotes) of the string literals of ``min_bytes`` or more."""
    spans: list[tuple[int, int]] = []
    find = data.find
    at = 0
    while (quote := find(b'"', at)) >= 0:
        start = quote + 1
        at = _string_end(data, start)
        if at - start >= min_bytes:
            spans.append((start, at))
        at += 1
    return spans


def _safe_cut(data: bytes, start: int, stop: int) -> int:
    """Where to cut a literal at or before ``stop``, past ``start``.

    Never inside an escape, between a surrogate pair's escapes, or inside a UTF-8 character.
    """
    cut = stop
    floor = max(start + 1, stop - _CUT_SEARCH)
    while cut > floor:
        slash = data.rfind(b"\\", cut - _SAFE_GAP, cut)
        if slash >= 0:
            cut = slash
            continue
        while cut > floor and 0x80 <= data[cut] < 0xC0:  # a UTF-8 continuation byte
            cut -= 1
        if data.rfind(b"\\", cut - _SAFE_GAP, cut) < 0:
            return cut
    raise _Fallback


def _decode(data: bytes, start: int, stop: int, slice_bytes: int) -> str:
    """The string literal whose content is ``data[start:stop]``, a slice per ``loads`` call."""
    pieces: list[str] = []
    while start < stop:
        cut = stop if stop - start <= slice_bytes else _safe_cut(data, start, start + slice_bytes)
        pieces.append(orjson.loads(b'"' + data[start:cut] + b'"'))
        start = cut
    return _longstr.join(pieces)


def _put_back(value: Any, texts: dict[str, str]) -> int:  # noqa: ANN401 -- JSON data
    """Replace (in place) each placeholder string in ``value`` by its text; how many were."""
    items: Any
    if isinstance(value, dict):
        if not texts.keys().isdisjoint(value):
            raise _Fallback  # a huge key: rare enough to parse whole
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return 0
    done = 0
    for key, item in items:
        if isinstance(item, str):
            if item in texts:
                value[key] = texts[item]  # the same key: no change of size while iterating
                done += 1
        elif isinstance(item, (dict, list)):
            done += _put_back(item, texts)
    return done


def _loads_sliced(data: bytes, spans: list[tuple[int, int]], slice_bytes: int) -> Any:  # noqa: ANN401
    nonce = os.urandom(8).hex()
    skeleton: list[bytes] = []
    texts: dict[str, str] = {}
    at = 0
    for number, (start, stop) in enumerate(spans):
        mark = f"\x00tracehint-{nonce}-{number}"
        skeleton += (data[at:start], orjson.dumps(mark)[1:-1])
        texts[mark] = _decode(data, start, stop, slice_bytes)
        at = stop
    skeleton.append(data[at:])
    value = orjson.loads(b"".join(skeleton))
    if isinstance(value, str):  # the line is one huge string
        return texts.get(value, value)
    if _put_back(value, texts) != len(texts):
        raise _Fallback  # a duplicate key dropped one
    return value


def loads(
    data: bytes,
    *,
    min_bytes: int = HUGE_STRING_BYTES,
    slice_bytes: int = _SLICE_BYTES,
) -> Any:  # noqa: ANN401 -- JSON data
    """``orjson.loads(data)``, its string literals of ``min_bytes`` or more a slice at a time.

    Call it in a worker thread for a long line: between slices, other threads get the GIL.
    Raises ``orjson.JSONDecodeError`` as ``orjson.loads`` does.
    """
    if len(data) < min_bytes or not _maybe_huge(data, min_bytes):
        return orjson.loads(data)
    try:
        spans = _huge_spans(data, min_bytes)
        if spans:
            return _loads_sliced(data, spans, slice_bytes)
    except (_Fallback, orjson.JSONDecodeError):
        pass
    return orjson.loads(data)


def loads_text(text: str, *, min_bytes: int = HUGE_STRING_BYTES) -> Any:  # noqa: ANN401 -- JSON data
    """``orjson.loads(text)`` of JSON held in a ``str`` (a tool output that wraps JSON).

    A long text is encoded a slice at a time, joined (``bytes.join`` copies without the GIL)
    and read by ``loads``. Raises ``orjson.JSONDecodeError`` as ``orjson.loads`` does.
    """
    if len(text) < min_bytes:
        return orjson.loads(text)
    try:
        data = b"".join(
            text[start : start + SLICE_CHARS].encode() for start in range(0, len(text), SLICE_CHARS)
        )
    except UnicodeEncodeError:  # a lone surrogate: orjson's own error
        return orjson.loads(text)
    return loads(data, min_bytes=min_bytes)


def contains(data: bytes, needle: bytes, *, window: int = 1024 * 1024) -> bool:
    """``needle in data``, searched a window at a time (a long line: short GIL holds)."""
    if len(data) <= window:
        return needle in data
    overlap = len(needle) - 1
    find = data.find
    return any(
        find(needle, start, start + window + overlap) >= 0 for start in range(0, len(data), window)
    )
