"""Secret redaction: every text is passed through here before it leaves the machine.

Pure and sync. A ``Redactor`` holds an ordered tuple of ``SecretPattern`` and replaces each
match (or one group of it) with ``[REDACTED:<kind>]``, one ``re.sub`` pass per pattern, in
order: vendor keys with a recognisable shape first, then the structural ones (headers, URLs,
``name=value`` assignments), which skip a value an earlier pattern already replaced.

Speed on large or hostile input (megabytes of ``a``, ``=``, ``-`` or ``@``) comes from three
rules every default pattern follows:

* it starts with a literal (``sk-``, ``eyJ``, ``token``), so the regex engine finds candidates
  with a fast substring search instead of trying a match at every position. Names are matched
  in any case by running the pattern, written in lower case, over ``text.lower()``
  (``SecretPattern.lowercase``): ``re.IGNORECASE`` would turn that search off;
* a token may only start at a token boundary (a fixed-width lookbehind placed *after* the
  literal), so a long run is entered once, not at every one of its characters;
* quantifiers that could backtrack are possessive (``++``, ``{n,}+``) or bounded.

Redaction is best effort: it removes the secrets people actually paste into terminals and
configs; it cannot promise to find every secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracehint._exceptions import ConfigError
from tracehint._needles import required_substrings

__all__ = [
    "DEFAULT_SECRET_PATTERNS",
    "REDACTED",
    "Redactor",
    "SecretPattern",
    "redact",
]

REDACTED = "[REDACTED]"
"""What a secret is replaced with when its kind is not known; kinds make ``[REDACTED:<kind>]``."""


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

    def __post_init__(self) -> None:
        if not self.kind:
            raise ConfigError("SecretPattern.kind must not be empty")
        if not 0 <= self.group <= self.pattern.groups:
            raise ConfigError(
                f"SecretPattern {self.kind!r}: group {self.group} does not exist in a pattern "
                f"with {self.pattern.groups} group(s)",
            )

    @property
    def placeholder(self) -> str:
        """The text a secret of this kind is replaced with, e.g. ``[REDACTED:jwt]``."""
        return f"{REDACTED[:-1]}:{self.kind}]"

    def sub(self, text: str, lowered: str | None = None) -> str:
        """``text`` with every match of this pattern redacted.

        ``lowered`` is ``_lower(text)`` when the caller has it already (it is only used when
        ``lowercase`` is set).
        """
        if not self.lowercase:
            if self.needles is not None and not any(n in text for n in self.needles):
                return text
            return self.pattern.sub(self._replace, text)
        if lowered is None:
            lowered = _lower(text)
        if self.needles is not None and not any(n in lowered for n in self.needles):
            return text
        spans = [match.span(self.group) for match in self.pattern.finditer(lowered)]
        if not spans:
            return text
        placeholder = self.placeholder
        pieces: list[str] = []
        done = 0
        for start, end in spans:
            if start >= 0:
                pieces += (text[done:start], placeholder)
                done = end
        pieces.append(text[done:])
        return "".join(pieces)

    def _replace(self, match: re.Match[str]) -> str:
        if self.group == 0:
            return self.placeholder
        start, end = match.span(self.group)
        if start < 0:
            return match.group(0)
        whole = match.group(0)
        offset = match.start()
        return whole[: start - offset] + self.placeholder + whole[end - offset :]


def _lower(text: str) -> str:
    """``text.lower()`` with the same length, so spans found in it index ``text``.

    U+0130 (capital I with dot above) is the one character whose lower case is two characters.
    """
    return text.replace("\u0130", "i").lower()


def _pattern(
    kind: str,
    regex: str,
    group: int = 0,
    *,
    lowercase: bool = False,
) -> SecretPattern:
    compiled = re.compile(regex, re.VERBOSE)
    return SecretPattern(kind, compiled, group, lowercase, required_substrings(compiled))


# Characters of the URL-safe base64 alphabet most API tokens are drawn from.
_B64URL = "[A-Za-z0-9_-]"

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
# connection-string field, or a bracket: `token = lex()`, `{"token": token}` are code). At
# least four characters: in `Unexpected token: '}'` the `}` is the error, not a key. Group 1
# is the opening quote, group 2 the value.
_VALUE = rf"""
    (\\?["'`])?+
    {_NOT_A_VALUE}
    ( (?(1) [^"'`\\\n]{{4,}}+ | [^\s"'`\\&;,(){{}}\[\]<>]{{4,}}+ (?!\() ) )
"""

# The name ends with the keyword: `max_tokens`, `token_type`, `password_hash` and `tokenizer`
# are not secrets, `GITHUB_TOKEN`, `client_secret` and `x-api-key` are.
_NAME_END = "(?![a-z0-9_-])"


def _assignment(kind: str, keyword: str) -> SecretPattern:
    """``KEYWORD=value``, ``keyword: value``, ``"keyword": "value"``, ``:keyword => 'value'``.

    Env files, ``--flag=value``, JSON, YAML, HTTP headers, query strings; any case, any prefix
    to the name (``OPENAI_API_KEY``, ``x-api-key``, ``apiKey``).
    """
    return _pattern(
        kind,
        rf"""{keyword} {_NAME_END} (?:\\?["'])?+ [ \t]*+ (?: =>? | :(?!:) ) [ \t]*+ {_VALUE}""",
        2,
        lowercase=True,
    )


# A flag name ends with a keyword. The whole name is taken first (possessively) and its end
# checked with lookbehinds, so a long name is read once, not once per keyword and position.
_FLAG_NAME_END = "(?:{})".format(
    "|".join(
        f"(?<={keyword})"
        for keyword in (
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
        )
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
    # Vendor keys, each starting at a token boundary: `task-…` is not `sk-…`.
    _pattern("anthropic_key", rf"sk-ant-(?<![A-Za-z0-9_-]sk-ant-) {_B64URL}{{16,}}+"),
    _pattern("openrouter_key", r"sk-or-(?<![A-Za-z0-9_-]sk-or-) (?:v1-)? [A-Za-z0-9]{16,}+"),
    _pattern(
        "openai_key",
        # A digit early on: real keys are random, `sk-learn-compatible-wrapper` is not a key.
        rf"""sk-(?<![A-Za-z0-9_-]sk-) (?:proj-|svcacct-|admin-)?
             (?=[A-Za-z_-]{{0,100}}+[0-9]) {_B64URL}{{20,}}+""",
    ),
    _pattern("github_token", r"gh[pousr]_(?<![A-Za-z0-9_]gh[pousr]_) [A-Za-z0-9]{30,}+"),
    _pattern("github_token", r"github_pat_(?<![A-Za-z0-9_]github_pat_) [A-Za-z0-9_]{30,}+"),
    _pattern("gitlab_token", rf"glpat-(?<![A-Za-z0-9_-]glpat-) {_B64URL}{{20,}}+"),
    _pattern("slack_token", r"xox[abeoprs]-(?<![A-Za-z0-9_-]xox[abeoprs]-) [A-Za-z0-9-]{10,}+"),
    _pattern("slack_webhook", r"hooks\.slack\.com/services/ ([A-Za-z0-9_/-]{20,}+)", 1),
    # Secret and restricted keys; two patterns so that each starts with a literal.
    _pattern("stripe_key", r"sk_(?<![A-Za-z0-9]sk_) (?:live|test)_ [A-Za-z0-9]{10,}+"),
    _pattern("stripe_key", r"rk_(?<![A-Za-z0-9]rk_) (?:live|test)_ [A-Za-z0-9]{10,}+"),
    _pattern("google_api_key", rf"AIza(?<![A-Za-z0-9_-]AIza) {_B64URL}{{35,}}+"),
    _pattern("huggingface_token", r"hf_(?<![A-Za-z0-9_]hf_) [A-Za-z0-9]{30,}+"),
    _pattern(
        "aws_access_key",
        r"A[KS]IA(?<![A-Za-z0-9]A[KS]IA) [A-Z0-9]{16} (?![A-Za-z0-9])",
    ),
    _pattern(
        "aws_secret_key",
        r"""secret_?access_?key (?:\\?["'])?+ [ \t]*+ [:=] [ \t]*+ (?:\\?["'])?+
            ([a-z0-9/+]{40}) (?![a-z0-9/+=])""",
        1,
        lowercase=True,
    ),
    _pattern(
        "jwt",
        rf"eyJ(?<![A-Za-z0-9_-]eyJ) {_B64URL}{{8,}}+ \.eyJ{_B64URL}{{8,}}+ \.{_B64URL}*+",
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
    # scheme://user:PASSWORD@host: the user and the host stay, they help read the error.
    _pattern(
        "url_password",
        r"""://[^\s:/?#@"'<>\\\[\]]{0,256}+ : (?! [$<{] | \[REDACTED )
            ( [^\s/?#@"'<>\\]{1,256}+ ) @""",
        1,
    ),
    # `curl -u user:password`, `--user user:password`, `--user=user:password`.
    _pattern(
        "password",
        r"""-u(?<![A-Za-z0-9_-]-u) [ \t]++ [^\s:"'-][^\s:"']{0,255}+ : ([^\s"']{1,256}+)""",
        1,
    ),
    _pattern(
        "password",
        r"""--user(?<![A-Za-z0-9_-]--user) (?:[ \t]++|=) [^\s:"'-][^\s:"']{0,255}+ :
            ([^\s"']{1,256}+)""",
        1,
    ),
    # `API_KEY=…`, `--api-key=…`, `"password": "…"`, `token: …`, in any case.
    _assignment("api_key", r"api[_-]?key"),
    _assignment("access_key", r"access[_-]?key"),
    _assignment("private_key", r"private[_-]?key"),
    _assignment("secret", r"secret(?:[_-]?key)?"),
    _assignment("token", "token"),
    _assignment("password", r"pass(?:w(?:or)?d|phrase)"),
    # `--api-key VALUE`, `--password VALUE`: a flag and its value as two arguments (the flag
    # after a space, so a run of dashes is not a run of flag starts).
    _pattern(
        "secret",
        rf"""\ --[a-z0-9_-]{{1,64}}+ {_FLAG_NAME_END} [ \t]++ (?!-) {_VALUE}""",
        2,
        lowercase=True,
    ),
)
"""The patterns ``redact`` applies, in order. Extend with ``Redactor().with_patterns(...)``."""


@dataclass(frozen=True, slots=True)
class Redactor:
    """Replaces secrets in text with ``[REDACTED:<kind>]``; immutable, safe to share.

    ``Redactor()`` uses ``DEFAULT_SECRET_PATTERNS``; ``with_patterns`` adds site-specific ones::

        redactor = Redactor().with_patterns(
            SecretPattern("internal_token", re.compile(r"itk_[a-z0-9]{32}")),
        )
    """

    patterns: tuple[SecretPattern, ...] = DEFAULT_SECRET_PATTERNS
    """Applied in order, one pass each."""

    def redact(self, text: str) -> str:
        """``text`` with every secret the patterns find replaced by its placeholder."""
        lowered: str | None = None  # shared by the lowercase patterns until the text changes
        for secret in self.patterns:
            if secret.lowercase and lowered is None:
                lowered = _lower(text)
            redacted = secret.sub(text, lowered)
            if redacted is not text:
                text, lowered = redacted, None
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
