"""Long strings joined and stripped without the GIL are the strings ``str`` itself makes."""

from __future__ import annotations

import ctypes
import random
import sys

import orjson
import pytest

from tracehint import _longstr
from tracehint._jsonparts import loads, loads_text
from tracehint._longstr import join, strip

# Characters of every storage width: ASCII, Latin-1, the BMP, beyond it, a lone surrogate.
_ALPHABETS = ["abc xyz", "é\xa0ü", "ā€中", "😀𝄞", "\ud800"]
_SPACES = [" ", "\t", "\n", "\r\x0b\x0c", "\xa0", "\u3000", "\u2028", "\x1c"]


def _text(rng: random.Random, size: int) -> str:
    alphabet = "".join(rng.sample(_ALPHABETS, rng.randrange(1, len(_ALPHABETS) + 1)))
    return "".join(rng.choice(alphabet) for _ in range(size))


def _same(made: str, expected: str) -> None:
    # CPython compares the storage widths first: a string stored wider than it needs is
    # unequal to the same characters stored as they should be. ``isascii`` reads the flag.
    assert made == expected
    assert type(made) is str
    assert made.isascii() == expected.isascii()
    assert hash(made) == hash(expected)


@pytest.fixture
def short_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copy without the GIL whatever the pieces' sizes (the tests' texts are short)."""
    monkeypatch.setattr(_longstr, "MEAN_PIECE_CHARS", 1)


def test_the_copy_without_the_gil_is_enabled_on_cpython() -> None:
    assert _longstr._ENABLED is (sys.implementation.name == "cpython")


@pytest.mark.usefixtures("short_pieces")
def test_join_makes_what_str_join_makes() -> None:
    rng = random.Random(23)  # noqa: S311 -- reproducible test inputs, not secrets
    for _ in range(400):
        pieces = [_text(rng, rng.randrange(0, 40)) for _ in range(rng.randrange(0, 6))]
        for min_chars in (0, 1, 30, 10_000):
            _same(join(pieces, min_chars=min_chars), "".join(pieces))


def test_join_of_long_pieces_with_the_default_threshold() -> None:
    head = "x" * _longstr.LONG_CHARS
    for tail in ("", "tail", "é", "ā", "😀", "\ud800"):
        _same(join([head, tail]), head + tail)
        _same(join([tail, head, tail]), tail + head + tail)


@pytest.mark.usefixtures("short_pieces")
def test_join_takes_any_string_it_cannot_copy_directly() -> None:
    class Text(str):
        __slots__ = ()

    cached = "é" * 50
    size = sys.getsizeof(cached)
    as_utf8 = ctypes.pythonapi.PyUnicode_AsUTF8  # caches a UTF-8 copy in the string
    as_utf8.argtypes = (ctypes.py_object,)
    as_utf8.restype = ctypes.c_char_p
    assert as_utf8(cached) == cached.encode()
    assert sys.getsizeof(cached) > size  # the layout ``_longstr`` checks for
    pieces = [Text("ab"), cached, "ā" * 10]
    _same(join(pieces, min_chars=0), "".join(pieces))


@pytest.mark.usefixtures("short_pieces")
def test_strip_makes_what_str_strip_makes() -> None:
    rng = random.Random(29)  # noqa: S311 -- reproducible test inputs, not secrets
    for _ in range(600):

        def space() -> str:
            return "".join(rng.choice(_SPACES) for _ in range(rng.randrange(0, 4)))

        text = space() + _text(rng, rng.randrange(0, 30)) + space()
        for start in {0, rng.randrange(0, len(text) + 1)}:
            for min_chars in (0, 5, 10_000):
                _same(strip(text, start, min_chars=min_chars), text[start:].strip())


def test_loads_text_gives_what_orjson_gives() -> None:
    rng = random.Random(31)  # noqa: S311 -- reproducible test inputs, not secrets
    for _ in range(60):
        value = {"output": _text(rng, rng.randrange(0, 300)).replace("\ud800", ""), "n": 1}
        text = orjson.dumps(value).decode()
        for min_bytes in (1, 10, 1_000_000):
            assert loads_text(text, min_bytes=min_bytes) == value
        for broken in (text[:-1], text + "x", '{"output": "\ud800"}'):
            with pytest.raises(orjson.JSONDecodeError) as plain:
                orjson.loads(broken)
            with pytest.raises(orjson.JSONDecodeError) as sliced:
                loads_text(broken, min_bytes=1)
            assert str(sliced.value) == str(plain.value)


def test_a_huge_json_string_of_mixed_widths_is_read_as_orjson_reads_it() -> None:
    # Slices of one literal differ in width (ASCII runs, then Latin-1, BMP, astral, escapes):
    # joined without the GIL, they make the string ``orjson.loads`` makes.
    rng = random.Random(37)  # noqa: S311 -- reproducible test inputs, not secrets
    quoted = 'say "hi" and go on, then \\ once\n'
    runs = ["log line ok\n" * 30_000, "é" * 70_000, quoted * 5_000, "中" * 90_000, "😀" * 50_000]
    text = "".join(rng.sample(runs, len(runs)) + runs)
    assert len(text) > _longstr.LONG_CHARS
    for data in (orjson.dumps({"output": text, "n": 1}), orjson.dumps([text, "x"])):
        expected = orjson.loads(data)
        made = loads(data)
        assert made == expected
        _same(made[0] if isinstance(made, list) else made["output"], text)


def test_only_long_pieces_are_copied_without_the_gil(monkeypatch: pytest.MonkeyPatch) -> None:
    # A memmove per piece costs a few microseconds: many short pieces are joined by str.
    copied: list[int] = []
    real = _longstr._copied

    def spy(spans: list[tuple[str, int, int]], widths: list[int], width: int) -> str | None:
        copied.append(len(spans))
        return real(spans, widths, width)

    monkeypatch.setattr(_longstr, "_copied", spy)
    size = _longstr.LONG_CHARS * 2
    few, many = size // 8, _longstr.MEAN_PIECE_CHARS // 4
    for piece, calls in ((few, [8]), (many, [])):
        copied.clear()
        pieces = ["y" * piece] * (size // piece)
        _same(join(pieces), "".join(pieces))
        assert copied == calls
