r"""What a hint may contain: plain text and newlines. Pure and sync.

A hint is written into the output (training data), the cache, and a person's terminal. A judge
(or a transcript, through a template or the raw error text) can put anything into it: NUL,
terminal escape sequences that recolour or rewrite the screen, BEL, backspaces and carriage
returns that hide text, bidirectional overrides (U+202E) that show text in another order than
it is stored, invisible characters (zero-width spaces, Unicode tag characters used to smuggle
instructions), lone surrogates that cannot even be encoded. ``plain_text`` keeps what a reader
sees and drops the rest:

* ``\r\n``, a lone ``\r``, U+2028, U+2029, U+0085 (next line), VT and FF become ``\n``;
  a tab becomes a space;
* terminal escape sequences (CSI ``ESC [ … m``, OSC ``ESC ] … BEL``, DCS/APC/PM/SOS strings,
  two-character escapes, and their 8-bit C1 forms) are removed whole, so no ``[31m`` is left;
* every other control character (Unicode category Cc), format character (Cf: bidi controls
  and isolates, zero-width characters, the BOM, tag characters, the soft hyphen) and
  surrogate (Cs) is removed; ZWJ and ZWNJ (U+200D, U+200C) stay: scripts and emoji need them.

Plain ASCII text without control characters, nearly every hint, is returned as it is.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["plain_text"]

_ASCII_UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
"""An ASCII character that is not plain text (newline is)."""

_ESCAPE_SEQUENCE = re.compile(
    r"""
    (?: \x1b\[ | \x9b ) [0-?]*+ [ -/]*+ [@-~]?                    # CSI … final byte
    | (?: \x1b[\]PX^_] | [\x90\x98\x9d\x9e\x9f] )                 # OSC, DCS, SOS, PM, APC …
      [^\x07\x1b\x9c\n]*+ (?: \x07 | \x1b\\ | \x9c )?             # … up to their terminator
    | \x1b [ -/]*+ [0-~]?                                         # any other escape
    """,
    re.VERBOSE,
)

_NEWLINES = re.compile("\r\n?|[\x0b\x0c\x85\u2028\u2029]")

_KEPT_FORMAT = frozenset("\u200c\u200d")
"""Format characters (Cf) that stay: zero-width non-joiner and joiner."""


def _keep(char: str) -> bool:
    if char == "\n":
        return True
    if char.isascii():
        return char >= " " and char != "\x7f"
    category = unicodedata.category(char)
    if category in ("Cc", "Cs"):
        return False
    return category != "Cf" or char in _KEPT_FORMAT


def plain_text(text: str) -> str:
    r"""``text`` as plain text: newlines kept, escape sequences and invisible controls removed.

    >>> plain_text("ok\x1b[31m red\x1b[0m\r\nnext \u202eline\x00")
    'ok red\nnext line'
    """
    if text.isascii() and _ASCII_UNSAFE.search(text) is None:
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _NEWLINES.sub("\n", text).replace("\t", " ")
    # A printable character (str.isprintable: no Cc, Cf, Cs, nor any other "Other") is always
    # kept: most texts that got here (a non-ASCII letter, a tab) are left as they are in C.
    if text.replace("\n", " ").isprintable():
        return text
    return "".join(char for char in text if _keep(char))
