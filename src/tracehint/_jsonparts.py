"""JSON with huge strings, made a slice at a time so no single call holds the GIL for long.

``orjson`` holds the GIL for the whole of one ``dumps`` or ``loads`` call, even in a worker
thread: serialising a trace with a 50 MB string froze the event loop for the whole call
(about 70 ms on a 2-core machine). ``dump_parts`` serialises everything but the huge strings
in one small call, and each huge string a slice at a time, and returns the line as parts that
are never joined (``JsonlSink.write_parts`` writes them as they are). The bytes are exactly
``orjson.dumps``'s: JSON escapes each character on its own, so a string's encoding is the
encodings of its slices put end to end.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["HUGE_STRING_CHARS", "SLICE_CHARS", "dump_parts"]

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
