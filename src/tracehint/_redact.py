"""Secret redaction: every text is passed through here before it leaves the machine.

Pure and sync. A ``Redactor`` holds an ordered tuple of ``SecretPattern`` and replaces each
match (or one group of it) with ``[REDACTED:<kind>]``, one pass per pattern, in order:

1. PEM private key blocks;
2. vendor tokens recognised by their shape, from the rule table ``_secret_rules.toml`` (data
   in the style of gitleaks' rule table: a literal prefix, a body of a known alphabet and
   length; 66 formats, from Anthropic to age keys);
3. the structural ones, which find a secret by where it stands rather than by its shape: AWS
   secret keys (after their name, or alone: 40 characters of high entropy), ``Authorization``
   and ``Cookie`` headers, passwords in URLs and in command-line flags (``curl -u``,
   ``mysql -pPASS``, ``sshpass -p``, ``docker login -p``, ``redis-cli -a``, ``openssl
   -passin pass:``), and ``NAME=value`` assignments whose name ends with a secret's name
   (``API_KEY``, ``DB_PASS``, ``MYSQL_PWD``, ``AccountKey``, ``client_secret``, …), which skip
   a value an earlier pattern already replaced.

Speed on large or hostile input (megabytes of ``a``, ``=``, ``-`` or ``@``) comes from three
rules every default pattern follows:

* it starts with a literal (``sk-``, ``eyJ``, ``token``), so the regex engine finds candidates
  with a fast substring search instead of trying a match at every position. Names are matched
  in any case by running the pattern, written in lower case, over ``text.lower()``
  (``SecretPattern.lowercase``): ``re.IGNORECASE`` would turn that search off. A format whose
  only literal is in its middle (Mailchimp's ``-us``, Entra's ``Q~``) starts the pattern
  there and takes the characters before it with ``SecretPattern.behind``;
* a token may only start at a token boundary (a fixed-width lookbehind placed *after* the
  literal), so a long run is entered once, not at every one of its characters;
* quantifiers that could backtrack are possessive (``++``, ``{n,}+``) or bounded.

Two patterns have no literal: a Discord bot token and a bare AWS secret key. They start with
a character class and a lookbehind that fails at once inside a word.

Redaction is best effort: it removes the secrets people actually paste into terminals and
configs; it cannot promise to find every secret.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from operator import itemgetter
from typing import TYPE_CHECKING

from ahocorasick_rs import AhoCorasick, Implementation

from tracehint._exceptions import ConfigError
from tracehint._linebound import LineBound, search_shape
from tracehint._longstr import join
from tracehint._needles import required_substrings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

__all__ = [
    "DEFAULT_SECRET_PATTERNS",
    "REDACTED",
    "Redactor",
    "SecretPattern",
    "redact",
]

REDACTED = "[REDACTED]"
"""What a secret is replaced with when its kind is not known; kinds make ``[REDACTED:<kind>]``."""


def _entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in Counter(text).values()) if size else 0.0


_BASE64_TABLE = bytes(
    0x61 if chr(byte).isascii() and (chr(byte).isalnum() or chr(byte) in "/+") else 0x20
    for byte in range(256)
)
"""``bytes.translate`` table: a byte of the base64 alphabet becomes ``a``, any other a space
(so do the bytes of a non-ASCII character, all above 0x7F)."""
_KEY_RUN = b"a" * 40
_RUN_CHUNK = 1 << 20


def _has_key_run(text: str) -> bool:
    """Whether ``text`` holds 40 characters of the base64 alphabet in a row (a bare AWS key).

    The regex that finds the key tries a match after every character outside the alphabet,
    about 90 MB/s; mapping the text's bytes to two and searching for the run is C all the way,
    about ten times faster, and most texts have no such run. A megabyte at a time, so a huge
    text is not copied whole.
    """
    size = len(_KEY_RUN)
    if len(text) < size:  # most facts, names and short messages
        return False
    for start in range(0, len(text), _RUN_CHUNK):
        chunk = text[start : start + _RUN_CHUNK + size - 1] if len(text) > _RUN_CHUNK else text
        if _KEY_RUN in chunk.encode("utf-8", "surrogatepass").translate(_BASE64_TABLE):
            return True
    return False


def _has_zip_password_flag(text: str) -> bool:
    """Whether ``text`` holds zip's password flag (`` -P`` or a tab and ``-P``, case kept)."""
    return " -P" in text or "\t-P" in text


def _looks_like_aws_secret(text: str) -> bool:
    """A random base64 string: both cases, a digit, a ``/`` or ``+``, high entropy.

    A git hash (hex: at most 4 bits per character), a path or a word is not.
    """
    return (
        any(c in "/+" for c in text)
        and any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
        and _entropy(text) >= _MIN_RANDOM_ENTROPY
    )


_MIN_RANDOM_ENTROPY = 4.2
"""Bits per character; 40 random base64 characters have about 4.9, 40 hex digits at most 4."""


@dataclass(frozen=True, slots=True)
class SecretPattern:
    """One kind of secret and the compiled regular expression that finds it.

    ``group`` selects the part of a match that is the secret (0, the default, is the whole
    match): ``scheme://user:PASSWORD@host`` keeps the user and the host, ``API_KEY=value``
    keeps the name. A match whose group did not take part is left alone.
    """

    kind: str
    """Short and stable (``aws_access_key``); it is written into the placeholder."""
    pattern: re.Pattern[str]
    """Compiled once; searched over the whole text in one pass."""
    group: int = 0
    """The group that is the secret; 0 is the whole match."""
    lowercase: bool = False
    """Search ``text.lower()`` instead of ``text`` (write the pattern in lower case).

    The replaced span is taken from the original text, so the output keeps its case. This
    matches names in any case (``API_KEY``, ``apiKey``) while the pattern can still start with a
    literal, which ``re.IGNORECASE`` would make the engine try at every position.
    """
    needles: tuple[str, ...] | None = None
    """Substrings one of which every match contains (in the text searched): a plain ``in``
    test skips the regex for most texts. ``None`` (the default): always search."""
    behind: int = 0
    """Characters right before the group that are part of the secret too (a format whose
    literal is in its middle: the pattern starts at the literal and checks what comes before
    it with a lookbehind)."""
    check: Callable[[str], bool] | None = None
    """A match whose secret fails this test is left alone (for a shape too common to be a
    secret by itself: ``looks_random`` keeps words, paths and hashes)."""
    gate: Callable[[str], bool] | None = None
    """A cheap test that every text holding a match passes (for a pattern without needles):
    the regex runs only on texts that pass it. Patterns sharing one gate have it run once per
    text."""
    _lines: LineBound = field(init=False, repr=False, compare=False, default=LineBound.NO)
    _anchored: bool = field(init=False, repr=False, compare=False, default=False)
    _replace: str | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        shape = search_shape(self.pattern)
        object.__setattr__(self, "_lines", shape.lines)
        object.__setattr__(self, "_anchored", shape.anchored)
        if not (self.group or self.behind or self.check or self.lowercase or shape.empty):
            # Every match is replaced whole: `Pattern.subn` does in C what `_sub` does.
            object.__setattr__(self, "_replace", self.placeholder.replace("\\", "\\\\"))
        if not self.kind:
            raise ConfigError("SecretPattern.kind must not be empty")
        if not 0 <= self.group <= self.pattern.groups:
            raise ConfigError(
                f"SecretPattern {self.kind!r}: group {self.group} does not exist in a pattern "
                f"with {self.pattern.groups} group(s)",
            )
        if self.behind < 0:
            raise ConfigError(f"SecretPattern {self.kind!r}: behind must not be negative")

    @property
    def placeholder(self) -> str:
        """The text a secret of this kind is replaced with, e.g. ``[REDACTED:jwt]``."""
        return f"{REDACTED[:-1]}:{self.kind}]"

    def sub(self, text: str, lowered: str | None = None) -> str:
        """``text`` with every match of this pattern redacted (``text`` itself when none).

        ``lowered`` is ``_lower(text)`` when the caller has it already (it is only used when
        ``lowercase`` is set).
        """
        haystack = text
        if self.lowercase:
            haystack = lowered if lowered is not None else _lower(text)
        if self.needles is not None and not any(map(haystack.__contains__, self.needles)):
            return text
        if self.gate is not None and not self.gate(text):
            return text
        return self._sub(text, haystack)

    def _sub(self, text: str, haystack: str) -> str:
        """``sub`` without the prefilter; ``haystack`` is ``text``, or its lower case."""
        if self._replace is not None and (len(text) <= _BLOCK or self._lines is LineBound.NO):
            # The loop below in C (thousands of matches: a tenth of the time); a huge text
            # that is searched by blocks keeps the loop, which lets the GIL go between them.
            found, count = self.pattern.subn(self._replace, text)
            return found if count else text
        pieces: list[str] = []
        done = 0
        for match in self._matches(haystack):
            start, end = match.span(self.group)
            if start < 0 or end <= done:
                continue
            start = max(start - self.behind, done)
            if self.check is not None and not self.check(text[start:end]):
                continue
            pieces += (text[done:start], self.placeholder)
            done = end
        if not pieces:  # most texts: no secret, and no placeholder made
            return text
        pieces.append(text[done:])
        return join(pieces)  # a huge text with few secrets: copied without the GIL

    def _matches(self, haystack: str) -> Iterator[re.Match[str]]:
        """The pattern's matches in ``haystack``, left to right, as ``finditer`` finds them.

        A huge text is searched a block of lines at a time when no match can reach across a
        line break (``search_shape``): the same matches, but the GIL is let go between blocks
        instead of held for the whole text (a 50 MB command output: a quarter of a second).
        """
        pattern = self.pattern
        if self._anchored:  # `\A...`: one place to try, not every position
            found = pattern.match(haystack)
            return iter(() if found is None else (found,))
        if len(haystack) <= _BLOCK or self._lines is LineBound.NO:
            return pattern.finditer(haystack)
        return self._by_blocks(haystack)

    def _by_blocks(self, haystack: str) -> Iterator[re.Match[str]]:
        pattern = self.pattern
        # AFTER_FIRST: a match may start at the line break that ends the block before.
        back = 1 if self._lines is LineBound.AFTER_FIRST else 0
        size = len(haystack)
        start = 0
        while start < size:
            cut = haystack.find("\n", start + _BLOCK)
            end = size if cut < 0 else cut + 1
            yield from pattern.finditer(haystack, max(0, start - back), end)
            start = end


_BLOCK = 1 << 20
"""Characters of a huge text a line-bound pattern searches at a time (about a millisecond)."""


def _lower(text: str) -> str:
    """``text.lower()`` with the same length, so spans found in it index ``text``.

    U+0130 (capital I with dot above) is the one character whose lower case is two characters.
    A huge text is lowered a block at a time, so the GIL is let go between blocks (a Greek
    capital sigma at a block's edge may take the other of its two lower-case forms).
    """
    if len(text) > _BLOCK:  # joined without the GIL (``_longstr``)
        return join([_lower(text[i : i + _BLOCK]) for i in range(0, len(text), _BLOCK)])
    return text.replace("\u0130", "i").lower()


def _pattern(
    kind: str,
    regex: str,
    group: int = 0,
    *,
    lowercase: bool = False,
    check: Callable[[str], bool] | None = None,
    needles: tuple[str, ...] | None = None,
    gate: Callable[[str], bool] | None = None,
) -> SecretPattern:
    """A pattern with its needles: read from the regex, or given.

    ``needles`` is for literals too short to be read from it (under three characters: ``-u``,
    ``7z``).
    """
    compiled = re.compile(regex, re.VERBOSE)
    found = needles if needles is not None else required_substrings(compiled)
    return SecretPattern(kind, compiled, group, lowercase, found, check=check, gate=gate)


# -- vendor tokens: the rule table --------------------------------------------------------------

_RULE_FIELDS = frozenset(
    {
        "kind",
        "what",
        "prefix",
        "body",
        "boundary",
        "end",
        "after",
        "behind",
        "behind_chars",
        "keep_prefix",
        "keywords",
        "see",
    },
)
_TOKEN_CHARS = "[A-Za-z0-9_-]"  # noqa: S105 -- a character class, not a password
_LITERAL_RUN = re.compile(r"(?:[A-Za-z0-9_~:/-]|\\[.])+")
_MIN_KEYWORD = 2


def _str_field(rule: Mapping[str, object], name: str, default: str | None = None) -> str:
    value = rule.get(name, default)
    if not isinstance(value, str):
        raise ConfigError(f"secret rule {rule.get('kind')!r}: {name!r} must be a string")
    return value


def _token_pattern(rule: Mapping[str, object]) -> SecretPattern:
    """The ``SecretPattern`` of one rule of the token table (see ``_secret_rules.toml``)."""
    unknown = set(rule) - _RULE_FIELDS
    if unknown:
        raise ConfigError(f"secret rule {rule.get('kind')!r}: unknown field(s) {sorted(unknown)}")
    kind, prefix, body = (_str_field(rule, name) for name in ("kind", "prefix", "body"))
    _str_field(rule, "what")
    boundary = _str_field(rule, "boundary", _TOKEN_CHARS)
    end = _str_field(rule, "end", "[A-Za-z0-9]")
    after = rule.get("after")
    behind = rule.get("behind", 0)
    if not isinstance(behind, int) or isinstance(behind, bool) or behind < 0:
        raise ConfigError(f"secret rule {kind!r}: 'behind' must be a non-negative integer")
    if behind:
        chars = _str_field(rule, "behind_chars")
        start = f"(?<!{boundary})" if boundary else ""
        guard = f"(?<={start}{chars}{{{behind}}}{prefix})"
    elif after is not None:
        guard = f"(?<={_str_field(rule, 'after')}{prefix})"
    else:
        # A token starts a word; in JSON text (a tool call's input) also right after an
        # escaped line break or tab: `"cat key\\nAGE-SECRET-KEY-1…"`.
        guard = f"(?:(?<!{boundary}{prefix})|(?<=\\\\[nrt]{prefix}))" if boundary else ""
    keep_prefix = rule.get("keep_prefix", False) is True
    regex = f"{prefix}{guard}{f'({body})' if keep_prefix else body}{f'(?!{end})' if end else ''}"
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise ConfigError(f"secret rule {kind!r}: bad regular expression: {exc}") from exc
    keywords = rule.get("keywords")
    if keywords is not None and not (
        isinstance(keywords, list) and keywords and all(isinstance(k, str) for k in keywords)
    ):
        raise ConfigError(f"secret rule {kind!r}: 'keywords' must be a list of strings")
    # The keyword prefilter: the rule's keywords, else the literal its prefix starts with.
    literal = _LITERAL_RUN.match(prefix)
    needles = tuple(keywords) if keywords else None
    if needles is None and literal is not None:
        needles = (re.sub(r"\\(.)", r"\1", literal.group()),)
    if needles is None or min(len(n) for n in needles) < _MIN_KEYWORD:
        raise ConfigError(
            f"secret rule {kind!r}: its prefix starts with no literal of {_MIN_KEYWORD} or more "
            "characters: give 'keywords'",
        )
    return SecretPattern(kind, compiled, 1 if keep_prefix else 0, needles=needles, behind=behind)


def _token_patterns() -> tuple[SecretPattern, ...]:
    table = tomllib.loads(
        resources.files("tracehint").joinpath("_secret_rules.toml").read_text("utf-8"),
    )
    return tuple(_token_pattern(rule) for rule in table["token"])


# -- structural patterns ------------------------------------------------------------------------

# A value that is a reference, a placeholder or code, not a secret: `$VAR`, `${VAR}`,
# `<your-key>`, `***`, `[REDACTED:…]` (an earlier pattern got it), `>`/`=` (half of `=>`, `==`),
# `None`, `os.environ[…]`, a type annotation. Keeping these keeps a tool input readable.
_NOT_A_VALUE = r"""
    (?! [$<>{(%*=\[]
      | (?:none|null|nil|undefined|true|false|str|string|bytes|int|bool|optional|secretstr)\b
      | os\.|process\.env|getenv )
"""

# A value: quoted (spaces allowed, up to the closing quote) or bare (up to a space, a quote,
# a backslash, which would be half of a JSON escape, `&;,`, which end a query parameter or a
# connection-string field, or a bracket: `token = lex()`, `{"token": token}`,
# `token: tokens[i]` are code). At least four characters: in `Unexpected token: '}'` the `}`
# is the error, not a key. Group 1 is the opening quote, group 2 the value.
_VALUE = rf"""
    (\\?["'`])?+
    {_NOT_A_VALUE}
    ( (?(1) [^"'`\\\n]{{4,}}+ | [^\s"'`\\&;,(){{}}\[\]<>]{{4,}}+ (?![(\[]) ) )
"""

# The name ends with the keyword: `max_tokens`, `token_type`, `password_hash` and `tokenizer`
# are not secrets, `GITHUB_TOKEN`, `client_secret` and `x-api-key` are.
_NAME_END = "(?![a-z0-9_-])"


def _assignment(
    kind: str, keyword: str, spellings: tuple[str, ...], value_guard: str = ""
) -> SecretPattern:
    """``KEYWORD=value``, ``keyword: value``, ``"keyword": "value"``, ``:keyword => 'value'``.

    Env files, ``--flag=value``, JSON, YAML, HTTP headers, query strings; any case, any prefix
    to the name (``OPENAI_API_KEY``, ``x-api-key``, ``apiKey``). ``value_guard`` is a
    lookahead a value must also pass. ``spellings``: the texts a match of ``keyword`` ends
    with (lower case, with what its lookbehinds require); each followed by what may follow a
    name (``token=``, ``token"``, ``token:``) is a needle: ``token`` alone is in every
    ``tokens`` of a usage report, ``pass`` in every ``passed``.
    """
    return _pattern(
        kind,
        rf"""{keyword} {_NAME_END} (?:\\?["'])?+ [ \t]*+ (?: =>? | :(?!:) ) [ \t]*+ {value_guard}
             {_VALUE}""",
        2,
        lowercase=True,
        needles=tuple(spelling + after for spelling in spellings for after in _AFTER_NAME),
    )


_AFTER_NAME = ("\\", '"', "'", " ", "\t", "=", ":")
"""The characters that may follow a name in an assignment (before ``=`` or ``:``)."""


def _separated(*names: str) -> tuple[str, ...]:
    """``names`` (``_`` for a separator) spelled with ``_``, ``-`` and no separator."""
    return tuple(sorted({name.replace("_", sep) for name in names for sep in ("_", "-", "")}))


def _name_ends_with(*names: str) -> str:
    """Lookbehinds saying that the name ending here ends with one of ``names``.

    ``names`` are in lower case with ``_`` for a separator; each is also matched with ``-``
    and with none (``account_key``, ``account-key``, ``AccountKey``). Placed after a literal,
    so the pattern still starts with one; grouped by the separator, so a name that ends
    otherwise is turned down after three tests.
    """
    groups = []
    for sep in ("_", "-", ""):
        spellings = sorted(name.replace("_", sep) for name in names)
        inner = "|".join(f"(?<={re.escape(s)})" for s in spellings)
        groups.append(f"(?<={re.escape(sep)}key)(?:{inner})" if sep else f"(?:{inner})")
    return "(?:{})".format("|".join(groups))


_KEY_NAMES = (
    "account_key",
    "encryption_key",
    "signing_key",
    "master_key",
    "shared_access_key",
    "consumer_key",
    "license_key",
    "hmac_key",
    "sas_key",
)
"""Names ending in ``key`` whose value is a secret (besides ``api_key``, ``access_key``,
``private_key`` and ``secret_key``)."""

# A flag name ends with a keyword. The whole name is taken first (possessively) and its end
# checked with lookbehinds, so a long name is read once, not once per keyword and position.
_FLAG_KEYWORDS = (
    "api[_-]key",
    "apikey",
    "access[_-]key",
    "private[_-]key",
    "secret",
    "secret[_-]key",
    "token",
    "password",
    "passwd",
    "passphrase",
    "-pass",
    "_pass",
)
_FLAG_NAME_END = "(?:{})".format("|".join(f"(?<={keyword})" for keyword in _FLAG_KEYWORDS))
# What a flag and the blank after it hold (`token `, `api-key\t`): its pattern's needles (` --`
# alone is in every command with a long option).
_FLAG_NEEDLES = tuple(
    sorted(
        {
            keyword.replace("[_-]", separator) + blank
            for keyword in _FLAG_KEYWORDS
            for separator in "_-"
            for blank in " \t"
        },
    ),
)

# A command-line value after a flag: quoted, or bare up to a space or a shell operator.
_ARG = r"""( "[^"\n]{1,256}+" | '[^'\n]{1,256}+' | (?![$<{\[]) [^\s"'|;&<>()]{1,256}+ )"""

# The rest of one shell command before a flag (bounded, lazy, never across `|`, `;`, `&&` or
# a line break).
_SAME_COMMAND = r"[^\n|;&]{0,300}?"

_STRUCTURAL_PATTERNS: tuple[SecretPattern, ...] = (
    # AWS secret access keys after their name: config files, env, JSON, `aws configure`'s
    # prompt (`AWS Secret Access Key [None]: …`).
    _pattern(
        "aws_secret_key",
        r"""secret[ _]?access[ _]?key (?:[ \t]*+ \[[^\]\n]{0,40}+\])?+ (?:\\?["'])?+ [ \t]*+
            [:=] [ \t]*+ (?:\\?["'])?+ ([a-z0-9/+]{40}) (?![a-z0-9/+=])""",
        1,
        lowercase=True,
    ),
    # An AWS secret access key on its own: 40 characters of the base64 alphabet, no more of it
    # on either side, that look random (``_looks_like_aws_secret``). The pattern starts with
    # the character before the key (a set the engine scans for quickly: an alternation of
    # starts would make it try each at every position, twice the time); a key at the very
    # start of the text, or after an escaped line break in JSON (its needles), has its own.
    _pattern(
        "aws_secret_key",
        r"[^A-Za-z0-9/+=.-] ([A-Za-z0-9/+]{40}) (?![A-Za-z0-9/+=])",
        1,
        check=_looks_like_aws_secret,
        gate=_has_key_run,
    ),
    _pattern(
        "aws_secret_key",
        r"\A ([A-Za-z0-9/+]{40}) (?![A-Za-z0-9/+=])",
        1,
        check=_looks_like_aws_secret,
        gate=_has_key_run,
    ),
    _pattern(
        "aws_secret_key",
        r"\\[nrt] ([A-Za-z0-9/+]{40}) (?![A-Za-z0-9/+=])",
        1,
        check=_looks_like_aws_secret,
        needles=("\\n", "\\r", "\\t"),
        gate=_has_key_run,
    ),
    # Credentials in HTTP headers: as headers, in JSON, in `curl -H`. The scheme is kept.
    _pattern(
        "authorization",
        r"""authorization (?:\\?["'])?+ [ \t]*+ [:=] [ \t]*+ (?:\\?["'])?+
            (?: (?:bearer|basic|token|digest|apikey) [ \t]++ )?+
            (?! [$<{\[] ) ( [^\s"'\\,;]{4,}+ )""",
        1,
        lowercase=True,
    ),
    _pattern("bearer_token", r"bearer [ \t]++ ( [a-z0-9._~+/-]{16,}+ =*+ )", 1, lowercase=True),
    # Cookies carry sessions: the whole value of a `Cookie:`/`Set-Cookie:` header, and of
    # `curl -b/--cookie NAME=VALUE` (a cookie jar file name has no `=`).
    _pattern(
        "cookie",
        r"""cookie(?<![a-z0-9_]cookie) (?:\\?["'])?+ [ \t]*+ : [ \t]*+ (?:\\?["'])?+
            (?! [$<{\[] ) ( [^\r\n"'\\]{4,}+ )""",
        1,
        lowercase=True,
    ),
    _pattern(
        "cookie",
        r"""\ (?:-b|--cookie) (?:[ \t]++|=) (["']?+) ( [^\s"'=]{1,128}+ = [^\s"']{4,}+ ) \1""",
        2,
        needles=(" -b", " --cookie"),
    ),
    # scheme://user:PASSWORD@host: the user and the host stay, they help read the error. A
    # password may hold an `@`: the last one before the host ends it.
    _pattern(
        "url_password",
        r"""://[^\s:/?#@"'<>\\\[\]]{0,256}+ : (?! [$<{] | \[REDACTED )
            ( [^\s/?#"'<>\\]{1,256} ) @ (?=[^\s/?#@"'<>\\]*+(?:[\s/?#"'<>\\]|$))""",
        1,
    ),
    # The same URL cut off by a clamp before its `@` (`https://user:pa…`): a password-looking
    # tail (not a port number) right before the ellipsis or the end of the text.
    _pattern(
        "url_password",
        r"""://[^\s:/?#@"'<>\\\[\]]{1,256}+ : (?! [$<{] | \[REDACTED | [0-9]++(?:…|$) )
            ( [^\s/?#@"'<>\\…]{1,256}+ ) (?=…|$)""",
        1,
    ),
    # `curl -u user:password`, `--user user:password`, `--user=user:password`.
    _pattern(
        "password",
        r"""-u(?<![A-Za-z0-9_-]-u) [ \t]++ [^\s:"'-][^\s:"']{0,255}+ : ([^\s"']{1,256}+)""",
        1,
        needles=("-u ", "-u\t"),
    ),
    _pattern(
        "password",
        r"""--user(?<![A-Za-z0-9_-]--user) (?:[ \t]++|=) [^\s:"'-][^\s:"']{0,255}+ :
            ([^\s"']{1,256}+)""",
        1,
    ),
    # Passwords given to a program with a short flag: `mysql -pPASS` (glued: `-p PASS` makes
    # mysql prompt and PASS is the database), `sshpass -p PASS`, `docker login -p PASS`,
    # `redis-cli -a PASS`, `7z -pPASS`, `zip -P PASS`, `openssl … -passin pass:PASS`.
    *(
        _pattern(
            "password",
            rf"""{program}(?<![A-Za-z0-9_-]{program}) [a-z-]{{0,12}}+ {_SAME_COMMAND}
                 [ \t]-p {_ARG}""",
            1,
        )
        for program in ("mysql", "mariadb")
    ),
    _pattern(
        "password",
        rf"""sshpass(?<![A-Za-z0-9_-]sshpass) {_SAME_COMMAND} [ \t]-p [ \t]*+ {_ARG}""",
        1,
    ),
    _pattern(
        "password",
        rf"""login(?<![A-Za-z0-9_-]login) {_SAME_COMMAND} [ \t]-p (?:[ \t]++|=) {_ARG}""",
        1,
    ),
    _pattern(
        "password",
        rf"""redis-cli(?<![A-Za-z0-9_-]redis-cli) {_SAME_COMMAND} [ \t]-a [ \t]++ {_ARG}""",
        1,
    ),
    _pattern("password", rf"""7z[a-z]?\ {_SAME_COMMAND} [ \t]-p {_ARG}""", 1, needles=("7z",)),
    _pattern(
        "password",
        rf"""zip (?: (?<![A-Za-z0-9_-]zip) | (?<=unzip)(?<![A-Za-z0-9_-]unzip) )
             {_SAME_COMMAND} [ \t]-P [ \t]++ {_ARG}""",
        1,
        # `zip` is in every gzip and .zip; each is followed by a lazy search for `-P` over
        # up to 300 characters (three quarters of the redaction time on the corpus's output).
        gate=_has_zip_password_flag,
    ),
    _pattern("password", rf"""-pass(?:in|out)?+ [ \t]++ pass: {_ARG}""", 1),
    # `API_KEY=…`, `--api-key=…`, `"password": "…"`, `token: …`, in any case.
    _assignment("api_key", r"api[_-]?key", _separated("api_key")),
    _assignment("access_key", r"access[_-]?key", _separated("access_key")),
    _assignment("private_key", r"private[_-]?key", _separated("private_key")),
    # `AccountKey=` (Azure connection strings), `SIGNING_KEY=`, `session_key: …`.
    _assignment("secret_key", f"key{_name_ends_with(*_KEY_NAMES)}", _separated(*_KEY_NAMES)),
    _assignment("secret", r"secret(?:[_-]?key)?", ("secret", *_separated("secret_key"))),
    _assignment("token", "token", ("token",)),
    _assignment("password", r"pass(?:w(?:or)?d|phrase)", ("passwd", "password", "passphrase")),
    # A name that ends with `_pass`, `-pass`, `_pwd`, `;pwd` or is quoted (`DB_PASS=`,
    # `--pass=`, `"pass": …`, `MYSQL_PWD=`, `…;Pwd=…;` in a connection string), never `bypass`,
    # go test's `--- PASS: TestX`, or `PWD=/home/…` (a directory).
    _assignment("password", "pass(?<=[_\"'-]pass)", ("_pass", '"pass', "'pass", "-pass")),
    _assignment(
        "password",
        "pwd(?<=[_\"';-]pwd)",
        ("_pwd", '"pwd', "'pwd", ";pwd", "-pwd"),
        r"(?!\\?[\"'`]?[/~.]|[a-z]:\\)",
    ),
    # `"auth": "…"` in a Docker config.json (base64 user:password), `_auth=` in .npmrc.
    _assignment("auth", "auth(?<=[_\"'-]auth)", ("_auth", '"auth', "'auth", "-auth")),
    # URL signatures: Azure SAS `&sig=`, AWS presigned `X-Amz-Signature=`.
    _pattern(
        "signature",
        r"[?&] (?:sig|signature|x-amz-signature) = ([^\s&#\"'<>\\]{8,}+)",
        1,
        lowercase=True,
        # `sig` alone is in every `assignable`, `signal`, `design`.
        needles=("?sig", "&sig", "?x-amz-signature", "&x-amz-signature"),
    ),
    # PHP and Java session ids (`PHPSESSID=`, `;jsessionid=` in a URL); `sessionId` alone is
    # an agent's or a tool's session (not a secret).
    _assignment(
        "session", "sess(?:ion)?id(?:(?<=phpsessid)|(?<=jsessionid))", ("phpsessid", "jsessionid")
    ),
    # `--api-key VALUE`, `--password VALUE`: a flag and its value as two arguments (the flag
    # after a space, so a run of dashes is not a run of flag starts).
    _pattern(
        "secret",
        rf"""\ --[a-z0-9_-]{{1,64}}+ {_FLAG_NAME_END} [ \t]++ (?!-) {_VALUE}""",
        2,
        lowercase=True,
        needles=_FLAG_NEEDLES,
    ),
)

DEFAULT_SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    # PEM private key blocks, whole. The body cannot contain `-----`, so it stops at the next
    # armour line and a missing END costs one scan; a body cut off by a clamp (no END at all)
    # is redacted as far as its base64 lines go (plain or JSON-escaped line breaks).
    _pattern(
        "private_key",
        r"""
        -----BEGIN[ A-Z0-9]{0,40}PRIVATE\ KEY(?:\ BLOCK)?-----
        (?: (?:[^-]|-(?!----)){0,65536}+ -----END[ A-Z0-9]{0,40}PRIVATE\ KEY(?:\ BLOCK)?-----
          | (?: (?:\s|\\[nr])*+ [A-Za-z0-9+/=]{16,}+ )*+ )
        """,
    ),
    *_token_patterns(),
    *_STRUCTURAL_PATTERNS,
)
"""The patterns ``redact`` applies, in order. Extend with ``Redactor().with_patterns(...)``."""


class _Gate:
    """Which patterns a text needs: the keyword prefilter of every pattern, in one pass.

    A pattern runs on a text only when the text holds one of its ``needles`` (or when it has
    none). With 100 patterns, a regex pass each would cost 100 scans of every text; one
    Aho-Corasick scan of the lower-cased text (the needles lower-cased too, so a hit is
    never missed) finds the few patterns a text can match, the way gitleaks picks its rules
    by keyword.

    A long text is scanned a chunk at a time, each chunk only for the needles not found yet,
    so a text that repeats a needle (megabytes of ``token``) is not a list of a million hits.
    """

    __slots__ = ("_always", "_always_sorted", "_automaton", "_by_needle", "_keys", "_longest")

    def __init__(self, patterns: Sequence[SecretPattern]) -> None:
        needles: dict[str, set[int]] = {}
        always: set[int] = set()
        for index, secret in enumerate(patterns):
            if not secret.needles:
                always.add(index)
                continue
            for needle in secret.needles:
                needles.setdefault(_lower(needle), set()).add(index)
        self._keys = list(needles)
        self._by_needle = [frozenset(needles[key]) for key in self._keys]
        self._always = frozenset(always)
        self._always_sorted = sorted(always)
        self._longest = max(map(len, self._keys), default=0)
        self._automaton = _automaton(self._keys)

    def select(self, lowered: str) -> list[int]:
        """Indexes of the patterns to run on the text whose lower case is ``lowered``."""
        found = self._found(lowered)
        if not found:  # most texts
            return self._always_sorted
        chosen = set(self._always)
        for needle in found:
            chosen |= self._by_needle[needle]
        return sorted(chosen)

    def _found(self, lowered: str) -> set[int]:
        """The needles (indexes into ``_keys``) that ``lowered`` holds."""
        automaton = self._automaton
        if automaton is None:
            return set()
        if len(lowered) <= _GATE_CHUNK:
            # Deduplicated in C: a long text holds a common needle (`token`) many times.
            return set(map(_FIRST, automaton.find_matches_as_indexes(lowered, True)))  # noqa: FBT003 -- overlapping
        found: set[int] = set()
        missing = list(range(len(self._keys)))  # what `automaton` looks for, by its own index
        for start in range(0, len(lowered), _GATE_CHUNK):
            chunk = lowered[start : start + _GATE_CHUNK + self._longest - 1]
            matches = automaton.find_matches_as_indexes(chunk, True)  # noqa: FBT003 -- overlapping
            hits = {missing[hit] for hit in set(map(_FIRST, matches))}
            if hits:
                found |= hits
                missing = [needle for needle in missing if needle not in hits]
                automaton = _automaton([self._keys[needle] for needle in missing])
                if automaton is None:
                    break
        return found


_FIRST = itemgetter(0)
"""The needle of an ``(needle, start, end)`` match."""
_GATE_CHUNK = 1 << 16
"""Characters a long text is scanned for needles at a time."""


def _automaton(keys: list[str]) -> AhoCorasick | None:
    return AhoCorasick(keys, implementation=Implementation.DFA) if keys else None


@dataclass(frozen=True, slots=True)
class Redactor:
    """Replaces secrets in text with ``[REDACTED:<kind>]``; immutable, safe to share.

    ``Redactor()`` uses ``DEFAULT_SECRET_PATTERNS``; ``with_patterns`` adds site-specific ones::

        redactor = Redactor().with_patterns(
            SecretPattern("internal_token", re.compile(r"itk_[a-z0-9]{32}")),
        )
    """

    patterns: tuple[SecretPattern, ...] = DEFAULT_SECRET_PATTERNS
    """Applied in order, one pass each (those whose needles a text holds)."""
    _gate: _Gate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_gate", _Gate(self.patterns))

    def __reduce__(self) -> tuple[type[Redactor], tuple[tuple[SecretPattern, ...]]]:
        """Pickled as its patterns (the prefilter is built again): Ray sends it to workers."""
        return (Redactor, (self.patterns,))

    def redact(self, text: str) -> str:
        """``text`` with every secret the patterns find replaced by its placeholder."""
        if not text:
            return text
        lowered = _lower(text)
        lowered_of = text  # the text `lowered` is the lower case of
        patterns = self.patterns
        gates: dict[Callable[[str], bool], bool] = {}  # each gate's answer for this text
        for index in self._gate.select(lowered):
            secret = patterns[index]
            gate = secret.gate
            if gate is not None:
                # An earlier pattern's placeholders only ever remove what a gate looks for,
                # so its answer for the original text still holds.
                passed = gates.get(gate)
                if passed is None:
                    passed = gates[gate] = gate(text)
                if not passed:
                    continue
            haystack = text
            if secret.lowercase:
                if lowered_of is not text:  # an earlier pattern changed it: lower it again
                    lowered, lowered_of = _lower(text), text
                haystack = lowered
            text = secret._sub(text, haystack)  # noqa: SLF001 -- same module
        return text

    def with_patterns(self, *extra: SecretPattern) -> Redactor:
        """A new redactor that applies ``extra`` after this one's patterns."""
        return Redactor((*self.patterns, *extra))


DEFAULT_REDACTOR = Redactor()
"""The shared default redactor (immutable)."""


def redact(text: str) -> str:
    """``text`` with every secret ``DEFAULT_SECRET_PATTERNS`` finds replaced by its placeholder.

    >>> redact("export GITHUB_TOKEN=ghp_" + "x1" * 18)
    'export GITHUB_TOKEN=[REDACTED:github_token]'
    """
    return DEFAULT_REDACTOR.redact(text)
