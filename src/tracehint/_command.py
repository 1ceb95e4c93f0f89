"""What a failed shell command's output says, read from its structure: pure and sync.

A shell tool's result is the command's own output. Only some of it is the error: the exit-code
header, the lines a program writes to report a failure (``ls: cannot access 'x': No such file
or directory``), a test runner's summary, the last lines of a traceback. This module finds those
parts and the facts they ground (the missing path, the failing tests, the exception and its
frame, the git problem, the hook's failing checks), and says which kind of failure the output
shows. Words anywhere else in the output (a test's docstring, a log line, a pasted file) are
never evidence.

The program that ran is read from the command itself (``uv run pytest -x`` runs pytest), so a
runner's output is only taken for a test run when a test runner ran, and so on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracehint._kinds import ErrorKind
from tracehint._needles import Prefiltered, prefiltered
from tracehint._records import Facts

__all__ = ["CommandReport", "analyse_command", "programs_of", "split_exit_header"]

_EXIT_HEADER = re.compile(r"\A\s*(?:Error: )?Exit code:? (-?\d+)\s*\n?")


def split_exit_header(text: str) -> tuple[int | None, str]:
    """``Exit code N`` at the start of a shell result (Claude Code, Codex) → ``(N, rest)``."""
    match = _EXIT_HEADER.match(text)
    if match is None:
        return None, text
    return int(match.group(1)), text[match.end() :]


# -- which programs a command runs --------------------------------------------------------

_SEPARATORS = re.compile(r"&&|\|\||;|\||\n|\(|\)")
# Words that run the next word: ``uv run pytest``, ``npx tsc``, ``python -m pytest``.
_LAUNCHERS = frozenset(
    {
        "sudo",
        "env",
        "time",
        "nohup",
        "exec",
        "command",
        "npx",
        "bunx",
        "pnpx",
        "poetry",
        "pipenv",
        "hatch",
        "pdm",
        "rye",
        "uv",
        "uvx",
        "run",
        "timeout",
        "xargs",
    },
)
_ENV_ASSIGNMENT = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"python(?:\d(?:\.\d+)?)?")


# A shell line's tokens as ``shlex.shlex(posix=True, punctuation_chars=";&|()<>")`` with
# ``whitespace_split`` and no comments splits it (the same tokens), in one regex pass instead
# of a Python loop per character: whitespace, a run of punctuation, or a word of plain
# characters, quoted strings and escaped characters. A quote or escape that ends nowhere is
# what shlex rejects (``ValueError``).
_TOKEN = re.compile(
    r"""[ \t\r\n]+"""
    r"""|(?P<punct>[;&|()<>]+)"""
    r"""|(?P<word>(?:[^ \t\r\n;&|()<>'"\\]+|'[^']*'|"(?:[^"\\]|\\.)*"|\\.)+)"""
    r"""|(?P<bad>.)""",
    re.DOTALL,
)
_WORD_PART = re.compile(r"""'([^']*)'|"((?:[^"\\]|\\.)*)"|\\(.)|([^'"\\]+)""", re.DOTALL)
_QUOTED_ESCAPE = re.compile(r'\\(["\\])')
_SEPARATOR_CHARS = frozenset(";&|()\n")
_REDIRECT_CHARS = frozenset("<>")


def _word(source: str) -> str:
    """A word's value: quotes removed, escapes resolved (as shlex does in POSIX mode)."""
    if "'" not in source and '"' not in source and "\\" not in source:
        return source
    parts: list[str] = []
    for single, double, escaped, plain in _WORD_PART.findall(source):
        if double:
            parts.append(_QUOTED_ESCAPE.sub(r"\1", double))
        else:  # at most one group of a part is not empty
            parts.append(single or escaped or plain)
    return "".join(parts)


def _tokens(command: str) -> list[str]:
    """The tokens shlex makes of ``command``; raises ``ValueError`` where shlex does."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(command):
        kind = match.lastgroup
        if kind == "word":
            tokens.append(_word(match.group()))
        elif kind == "punct":
            tokens.append(match.group())
        elif kind == "bad":
            raise ValueError("No closing quotation")
    return tokens


def _segments(command: str) -> list[list[str]]:
    """The simple commands of a shell line, as words (quotes respected)."""
    segments: list[list[str]] = [[]]
    try:
        tokens = _tokens(command)
    except ValueError:  # unbalanced quotes: split on the separators themselves
        return [segment.split() for segment in _SEPARATORS.split(command)]
    for token in tokens:
        if token and _SEPARATOR_CHARS.issuperset(token):
            segments.append([])
        elif token and _REDIRECT_CHARS.issuperset(token):
            continue
        else:
            segments[-1].append(token)
    return [segment for segment in segments if segment]


def programs_of(command: str) -> tuple[tuple[str, ...], ...]:
    """The programs a shell command runs, each with the words after it (bounded).

    ``cd x && uv run pytest -q`` → ``(("cd", "x"), ("pytest", "-q"))``. ``python -m M`` and
    ``npm run S`` / ``yarn S`` keep their module or script name as the second word.
    """
    found: list[tuple[str, ...]] = []
    for segment in _segments(command[:2000]):
        words = segment
        launched = False
        while words and (
            _ENV_ASSIGNMENT.match(words[0])
            or words[0] in _LAUNCHERS
            # a launcher's own options and numbers: ``timeout 60 pytest``, ``uv run --frozen``
            or (launched and (words[0].startswith("-") or words[0].isdigit()))
        ):
            launched = launched or words[0] in _LAUNCHERS
            words = words[1:]
        if not words:
            continue
        program = words[0].rsplit("/", 1)[-1]
        if words[1:2] == ["-m"] and _PYTHON.fullmatch(program):
            found.append(tuple(words[2:8]))
            continue
        found.append((program, *words[1:8]))
    return tuple(found)


_TEST_RUNNERS = frozenset(
    {"pytest", "py.test", "jest", "vitest", "mocha", "ava", "tap", "rspec", "phpunit", "tox",
     "nox", "unittest", "nose2", "ctest", "bats"},
)  # fmt: skip
_BUILDERS = frozenset(
    {"tsc", "mypy", "pyright", "basedpyright", "javac", "gcc", "g++", "cc", "clang", "clang++",
     "make", "cmake", "ninja", "mvn", "gradle", "webpack", "vite", "esbuild", "rollup", "swiftc",
     "dotnet", "msbuild", "bazel"},
)  # fmt: skip
_LINTERS = frozenset(
    {"ruff", "eslint", "flake8", "pylint", "shellcheck", "golangci-lint", "rubocop", "stylelint",
     "hadolint", "yamllint", "markdownlint", "biome", "oxlint", "tslint", "pyflakes", "vulture"},
)  # fmt: skip
_FORMATTERS = frozenset({"black", "prettier", "gofmt", "rustfmt", "isort", "clang-format"})
_PACKAGE_SCRIPTS = frozenset({"npm", "yarn", "pnpm", "bun"})


@dataclass(frozen=True, slots=True)
class _Ran:
    """What kinds of programs a command ran."""

    tests: bool = False
    build: bool = False
    lint: bool = False
    format: bool = False
    git: str | None = None
    """The git subcommand, when git ran."""


def _ran(programs: tuple[tuple[str, ...], ...]) -> _Ran:  # noqa: C901, PLR0912 -- per family
    tests = build = lint = fmt = False
    git: str | None = None
    for words in programs:
        program, rest = words[0], words[1:]
        sub = rest[0] if rest else ""
        if program in _TEST_RUNNERS:
            tests = True
        elif program in _BUILDERS:
            build = True
        elif program in _LINTERS:
            if program == "ruff" and sub == "format":
                fmt = True
            else:
                lint = True
        elif program in _FORMATTERS:
            fmt = True
        elif program in {"go", "cargo", "mix", "deno", "swift", "dotnet", "zig"}:
            if sub == "test":
                tests = True
            elif sub in {"build", "check", "vet", "compile", "run"}:
                build = True
            elif sub in {"clippy", "lint"}:
                lint = True
            elif sub in {"fmt", "format"}:
                fmt = True
        elif program in _PACKAGE_SCRIPTS:
            script = rest[1] if sub == "run" and len(rest) > 1 else sub
            if script.startswith("test"):
                tests = True
            elif script.startswith(("build", "typecheck", "type-check", "tsc", "compile")):
                build = True
            elif script.startswith("lint"):
                lint = True
            elif script.startswith(("format", "fmt", "prettier")):
                fmt = True
        elif program == "git" and git is None:
            git = next((w for w in rest if not w.startswith("-")), "")
    return _Ran(tests, build, lint, fmt, git)


# -- the parts of an output that are errors ---------------------------------------------------

_MISSING_PATH = (
    # GNU tools: ls: cannot access 'x': No such file or directory / cat: x: No such file ...
    prefiltered(
        r"^(?:[\w.+/-]+: )+(?:cannot (?:access|stat|open|remove|find)|can't open|"
        r"cannot read from|unable to open)? ?'?(?P<path>[^'\n:]+?)'?: No such file or directory",
        re.MULTILINE | re.IGNORECASE,
    ),
    # zsh: (eval):1: no such file or directory: x / (eval):cd:1: no such file or directory: x
    prefiltered(r"^\(eval\):(?:\w+:)?\d+: no such file or directory: (?P<path>.+)$", re.MULTILINE),
    # bash: cd: x: No such file or directory (matched above); python: can't open file 'x'
    prefiltered(r"can't open file '(?P<path>[^']+)': \[Errno 2\]"),
    # pytest: ERROR: file or directory not found: x
    prefiltered(r"^ERROR: file or directory not found: (?P<path>\S+)", re.MULTILINE),
    # ruff and other linters: x:1:1: E902 No such file or directory
    prefiltered(r"^(?P<path>\S+?):\d+:\d+: E902 No such file or directory", re.MULTILINE),
    # node: Error: Cannot find module '/abs/x.js' / ENOENT: no such file or directory, open 'x'
    prefiltered(r"ENOENT: no such file or directory, \w+ '(?P<path>[^']+)'"),
    prefiltered(r"Error: Cannot find module '(?P<path>[./][^']+)'"),
)
_NOT_FOUND_PROGRAM = (
    prefiltered(
        r"^(?:/bin/|/usr/bin/)?(?:ba|z|da)?sh: (?:line \d+: )?(?P<prog>[^\s:]+): "
        r"(?:command )?not found",
        re.MULTILINE,
    ),
    prefiltered(r"^\(eval\):\d+: command not found: (?P<prog>\S+)", re.MULTILINE),
    prefiltered(r"^zsh: command not found: (?P<prog>\S+)", re.MULTILINE),
    prefiltered(r"^(?P<prog>[^\s:]+): command not found", re.MULTILINE),
    prefiltered(r"'(?P<prog>[^']+)' is not recognized as an internal or external command"),
)
_EXEC_DENIED = (
    prefiltered(r"^\(eval\):\d+: permission denied: (?P<path>.+)$", re.MULTILINE),
    prefiltered(
        r"^(?:/bin/)?(?:ba|z)?sh: (?:line \d+: )?(?P<path>[^\s:]+): Permission denied", re.MULTILINE
    ),
)
_OS_DENIED = prefiltered(
    r"^(?:[\w.+/-]+: )+(?:cannot \w+ )?'?(?P<path>[^'\n:]+?)'?: (?:Permission denied|"
    r"Operation not permitted)|\bEACCES: permission denied, \w+ '(?P<path2>[^']+)'",
    re.MULTILINE,
)
_TIMED_OUT = prefiltered(r"\A\s*Command timed out after|\A\s*Timeout: command|timed out after \d")

_PY_TRACEBACK = prefiltered(r"^Traceback \(most recent call last\):", re.MULTILINE)
_PY_FRAME = prefiltered(
    r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)', re.MULTILINE
)
_PY_EXCEPTION = prefiltered(
    r"^(?P<exc>(?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning|"
    r"NotFound|Failure|Fault))(?::\s*(?P<msg>.*))?$",
    re.MULTILINE,
)
_JS_EXCEPTION = prefiltered(
    r"^(?:Uncaught )?(?P<exc>[A-Z]\w*Error)(?: \[\w+\])?: (?P<msg>.+)\n\s+at (?P<frame>.+)$",
    re.MULTILINE,
)

_PYTEST_FAILED = prefiltered(r"^(?:FAILED|ERROR) (?P<test>\S+::\S+?)(?: - .*)?$", re.MULTILINE)
_PYTEST_HEADER = prefiltered(r"^_{3,} (?P<test>[\w.\[\]-]+(?:\.[\w\[\]-]+)*) _{3,}$", re.MULTILINE)
_PYTEST_ASSERT = prefiltered(r"^E\s{2,}(?P<line>\S.*)$", re.MULTILINE)
_PYTEST_SUMMARY = prefiltered(r"^=+ .*?\b(?P<n>\d+) (?:failed|error)", re.MULTILINE)
_JEST_FAILED = prefiltered(r"^\s*● (?P<test>.+?)$", re.MULTILINE)
_JEST_SUMMARY = prefiltered(r"^Tests?:\s+(?P<n>\d+) failed", re.MULTILINE)
_VITEST_FAILED = prefiltered(
    r"^\s*(?:FAIL|×|✗|✕)\s+(?P<test>\S.*?)(?:\s+\d+ms)?$",  # noqa: RUF001 -- runners' marks
    re.MULTILINE,
)
_GO_FAILED = prefiltered(r"^\s*--- FAIL: (?P<test>\S+)", re.MULTILINE)
_CARGO_FAILED = prefiltered(r"^test (?P<test>\S+) \.\.\. FAILED$", re.MULTILINE)
_CARGO_SUMMARY = prefiltered(r"^test result: FAILED\. \d+ passed; (?P<n>\d+) failed", re.MULTILINE)
_MIX_FAILED = prefiltered(r"^\s+\d+\) test (?P<test>.+?) \(", re.MULTILINE)
_RSPEC_FAILED = prefiltered(r"^rspec (?P<test>\./\S+:\d+)", re.MULTILINE)

_BUILD_ERROR = (
    # Next.js / webpack: "> Build error occurred" then the error
    prefiltered(
        r"^> Build error occurred\n\[?(?P<msg>\w*(?:Error|Exception)\b[^\]\n]*)", re.MULTILINE
    ),
    # tsc: src/x.ts(12,5): error TS2322: ... / src/x.ts:12:5 - error TS2322: ...
    prefiltered(
        r"^(?P<loc>\S+?(?:\(\d+,\d+\)|:\d+:\d+)):? -? ?error (?P<code>TS\d+): (?P<msg>.+)$",
        re.MULTILINE,
    ),
    # pyright: /abs/x.py:184:17 - error: Type of ... (also inside a CI log: "[job] | ...")
    prefiltered(r"^(?:.*\| )?\s*(?P<loc>\S+?:\d+:\d+) - error: (?P<msg>.+)$", re.MULTILINE),
    # mypy / gcc / go: x.py:12: error: msg  /  x.c:3:5: error: msg / ./x.go:3:5: undefined: foo
    prefiltered(r"^(?P<loc>\S+?:\d+(?::\d+)?): (?:fatal )?error: (?P<msg>.+)$", re.MULTILINE),
    # rustc: error[E0308]: mismatched types\n  --> src/main.rs:4:5
    prefiltered(r"^error\[(?P<code>E\d+)\]: (?P<msg>.+)\n\s*--> (?P<loc>\S+)$", re.MULTILINE),
    prefiltered(r"^(?P<loc>\./\S+?\.go:\d+:\d+): (?P<msg>.+)$", re.MULTILINE),
)
_LINT_FINDING = (
    # ruff/flake8 concise: path:line:col: CODE message
    prefiltered(r"^(?P<loc>\S+?:\d+:\d+): (?P<code>[A-Z]+\d+) (?P<msg>.+)$", re.MULTILINE),
    # ruff full: CODE message\n --> path:line:col
    prefiltered(r"^(?P<code>[A-Z]+\d+) (?P<msg>.+)\n\s*--> (?P<loc>\S+)$", re.MULTILINE),
    # eslint: "  12:5  error  msg  rule-name" under the file's path
    prefiltered(
        r"^\s+(?P<loc>\d+:\d+)\s+error\s+(?P<msg>.+?)\s{2,}(?P<code>[\w@/-]+)$", re.MULTILINE
    ),
    # pylint: path:line:col: C0114: msg
    prefiltered(r"^(?P<loc>\S+?:\d+:\d+): (?P<code>[A-Z]\d{4}): (?P<msg>.+)$", re.MULTILINE),
)
_FORMAT_FINDING = prefiltered(
    r"^(?:.*\| )?(?:would reformat |Would reformat: |\[warn\] |Diff in )(?P<path>\S+)",
    re.MULTILINE,
)
_FORMAT_SUMMARY = prefiltered(
    r"\d+ files? would be reformatted|Code style issues found|would reformat", re.IGNORECASE
)
_NO_TESTS = prefiltered(
    r"^=* ?(?:no tests (?:ran|collected)|.*\b\d+ deselected\b.*\b0 selected|"
    r"\d+ deselected in [\d.]+s)",
    re.MULTILINE,
)
_GIT_PROBLEMS = (
    ("has no upstream branch", "the branch has no upstream branch"),
    ("nothing to commit", "there is nothing to commit"),
    ("no changes added to commit", "no changes are staged for commit"),
    ("CONFLICT", "the merge has conflicts"),
    ("[rejected]", "the push was rejected"),
    ("failed to push some refs", "the push was rejected"),
    ("not a git repository", "the directory is not a git repository"),
    ("did not match any file(s) known to git", "the pathspec matches no file known to git"),
    (
        "Your local changes to the following files would be overwritten",
        "local changes would be overwritten",
    ),
    ("index.lock': File exists", "another git process holds the index lock"),
    ("is not a commit and a branch", "the start point is not a commit"),
    ("already exists", "the name already exists"),
    ("Please tell me who you are", "git has no user identity configured"),
    ("unknown revision or path not in the working tree", "the revision or path is unknown"),
    ("does not appear to be a git repository", "the remote is not a git repository"),
    ("Authentication failed", "authentication to the remote failed"),
)
_GIT_FATAL = prefiltered(r"^(?:fatal|error): (?P<msg>.+)$", re.MULTILINE)
_PRE_COMMIT_FAILED = prefiltered(r"^(?P<hook>[^\n.]{3,}?)\.{3,}\s*Failed$", re.MULTILINE)
_PRE_COMMIT_ID = prefiltered(r"^- hook id: (?P<hook>\S+)", re.MULTILINE)
_HUSKY = prefiltered(r"husky - (?P<hook>[\w-]+) (?:hook exited|script failed)", re.IGNORECASE)
_GIT_HOOK = prefiltered(r"\b(?P<hook>pre-commit|commit-msg|pre-push) hook\b.{0,40}\b(?:fail|exit)")

_ERROR_WORD = re.compile(
    r"\berror\b|\bERR!|\bfatal\b|\bfailed\b|\bFAIL\b|\bexception\b|\bdenied\b|"
    r"\bnot found\b|\binvalid\b|\bcannot\b|\bcan't\b|\bunable\b|\bmissing\b|\bpanic\b|"
    r"\bincorrect\b|\bunauthori[sz]ed\b|\bforbidden\b|\brefused\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class CommandReport:
    """What a failed command's output shows."""

    kind: ErrorKind | None
    """``None``: nothing specific; the caller's fallback applies."""
    facts: Facts


def _tail(text: str, lines: int = 40, chars: int = 6000) -> str:
    """The last lines of an output, where runners and tracebacks put their verdict."""
    tail = text[-chars:]
    return "\n".join(tail.splitlines()[-lines:])


def _head(text: str, chars: int = 3000) -> str:
    return text[:chars]


def _first(patterns: tuple[Prefiltered, ...], text: str, group: str) -> str | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match is not None:
            value = match.group(group)
            if value and value.strip():
                return value.strip()
    return None


def _unique(items: list[str], limit: int = 3) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        item = item.strip()  # noqa: PLW2901 -- normalising in place
        if item and item not in seen:
            seen[item] = None
    return tuple(list(seen)[:limit])


def _failing_tests(text: str) -> tuple[tuple[str, ...], bool]:
    """The names of failing tests, and whether a runner's failure verdict is in ``text``."""
    names: list[str] = []
    verdict = False
    for pattern in (_PYTEST_FAILED, _GO_FAILED, _CARGO_FAILED, _MIX_FAILED, _RSPEC_FAILED):
        found = [m.group("test") for m in pattern.finditer(text)]
        names += found
        verdict = verdict or bool(found)
    if not names:
        names += [m.group("test") for m in _PYTEST_HEADER.finditer(text)]
        names += [m.group("test") for m in _JEST_FAILED.finditer(text)]
        names += [m.group("test") for m in _VITEST_FAILED.finditer(text)]
    verdict = verdict or any(
        p.search(text) for p in (_PYTEST_SUMMARY, _JEST_SUMMARY, _CARGO_SUMMARY)
    )
    verdict = verdict or bool(re.search(r"^FAIL\s", text, re.MULTILINE))
    return _unique(names), verdict


def _exception(text: str) -> tuple[str | None, str | None]:
    """The last exception of a Python traceback or a Node error, and its innermost frame."""
    tracebacks = list(_PY_TRACEBACK.finditer(text))
    if tracebacks:
        last = text[tracebacks[-1].end() :]
        frames = list(_PY_FRAME.finditer(last))
        exceptions = list(_PY_EXCEPTION.finditer(last))
        exc = None
        if exceptions:
            found = exceptions[-1]
            msg = (found.group("msg") or "").strip()
            exc = f"{found.group('exc')}: {msg}" if msg else found.group("exc")
        frame = None
        if frames:
            f = frames[-1]
            frame = f"{f.group('file')}:{f.group('line')} in {f.group('func')}"
        return exc, frame
    js = _JS_EXCEPTION.search(text)
    if js is not None:
        return f"{js.group('exc')}: {js.group('msg').strip()}", js.group("frame").strip()
    # An exception line on its own (a script that printed only its last line).
    bare = _PY_EXCEPTION.search(_tail(text, 5))
    if (
        bare is not None
        and bare.group("msg")
        and ("." in bare.group("exc") or "Error" in bare.group("exc"))
    ):
        return f"{bare.group('exc')}: {bare.group('msg').strip()}", None
    return None, None


def _clip(text: str | None, limit: int = 160) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key_line(text: str) -> str | None:
    """The most telling error line of an output: the last line that reads like an error."""
    # From the last line up: one search per line, most outputs end with their error.
    for line in reversed(_tail(text, 30).split("\n")):
        if _ERROR_WORD.search(line) is not None:
            stripped = line.strip()
            if not stripped.lower().startswith(("npm warn", "warning:")):
                return _clip(stripped)
    return None


def analyse_command(  # noqa: C901, PLR0911, PLR0912 -- one branch per failure class, in order
    output: str,
    command: str | None,
    *,
    stderr: str | None = None,
) -> CommandReport:
    """Classify a failed shell command from its output (exit header already removed).

    ``stderr``, when the format keeps it apart, is where error lines are looked for first.
    """
    errors = stderr if stderr and stderr.strip() else output
    head, tail = _head(errors), _tail(errors)
    window = head if len(errors) <= len(head) else f"{head}\n{tail}"
    programs = programs_of(command) if command else ()
    ran = _ran(programs)

    if _TIMED_OUT.search(output[:300]):
        return CommandReport(ErrorKind.TIMEOUT, Facts())

    program = _first(_NOT_FOUND_PROGRAM, window, "prog")
    if program is not None:
        return CommandReport(ErrorKind.COMMAND_NOT_FOUND, Facts(program=program))

    # A test run: the runner's own verdict and the failing tests' names.
    if ran.tests or _PYTEST_SUMMARY.search(tail) or _CARGO_SUMMARY.search(tail):
        missing = _first(_MISSING_PATH[3:4], window, "path")
        if missing is not None:
            return CommandReport(ErrorKind.FILE_NOT_FOUND, Facts(path=missing))
        tests, verdict = _failing_tests(output)
        if verdict or tests:
            first = _PYTEST_ASSERT.search(output)
            line = _clip(first.group("line"), 120) if first is not None else None
            return CommandReport(ErrorKind.TEST_FAILED, Facts(tests=tests, key_line=line))
        nothing = _NO_TESTS.search(tail)
        if nothing is not None:
            return CommandReport(
                ErrorKind.TEST_FAILED,
                Facts(
                    problem="no test matched the selection",
                    key_line=_clip(nothing.group(0).strip("= ")),
                ),
            )
        if "error collecting" in output.lower() or "errors during collection" in output.lower():
            exc, frame = _exception(output)
            return CommandReport(ErrorKind.TEST_FAILED, Facts(exception=_clip(exc), frame=frame))

    if ran.git is not None:
        hook = _git_hook(output)
        if hook is not None:
            return CommandReport(
                ErrorKind.HOOK_BLOCKED, Facts(hook=hook, problem=_key_line(output))
            )
        problem = next((said for marker, said in _GIT_PROBLEMS if marker in window), None)
        fatal = _GIT_FATAL.search(window)
        if problem is not None or fatal is not None:
            line = _clip(fatal.group(0)) if fatal is not None else None
            return CommandReport(ErrorKind.GIT_FAILED, Facts(problem=problem, key_line=line))

    missing = _first(_MISSING_PATH, window, "path")
    if missing is not None:
        return CommandReport(ErrorKind.FILE_NOT_FOUND, Facts(path=missing.strip()))

    denied = _first(_EXEC_DENIED, window, "path")
    if denied is not None:
        return CommandReport(ErrorKind.PERMISSION_DENIED, Facts(path=denied, program=denied))
    os_denied = _OS_DENIED.search(window)
    if os_denied is not None:
        path = os_denied.group("path") or os_denied.group("path2")
        return CommandReport(ErrorKind.PERMISSION_DENIED, Facts(path=path))

    if ran.build or ran.lint or ran.format:
        report = _checker(errors, ran)
        if report is not None:
            return report
    else:  # a check script (make check, act, a CI job) whose output is a checker's findings
        report = _checker(errors, _Ran(format=bool(_FORMAT_SUMMARY.search(tail)), build=True))
        if (report is not None and report.facts.location is not None) or (
            report is not None and report.kind is ErrorKind.FORMAT_FAILED
        ):
            return report

    exc, frame = _exception(errors)
    if exc is not None:
        return CommandReport(ErrorKind.SCRIPT_ERROR, Facts(exception=_clip(exc), frame=frame))

    search = _search_segment(programs)
    if search is not None and len(errors.strip()) <= len("Error"):
        # grep, rg and friends exit 1 when nothing matches: an answer, not a broken command
        return CommandReport(None, Facts(problem="no match", key_line=search))
    return CommandReport(None, Facts(key_line=_key_line(errors)))


_SEARCHERS = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "ack", "git"})


def _search_segment(ran: tuple[tuple[str, ...], ...]) -> str | None:
    """The search a command ends with (``grep -l useTodos``), when it ends with one."""
    programs = list(ran)
    while programs and programs[-1][0] in _FILTERS:
        programs.pop()
    if not programs:
        return None
    last = programs[-1]
    if last[0] not in _SEARCHERS or (last[0] == "git" and last[1:2] != ("grep",)):
        return None
    words: list[str] = []
    for word in last:
        if word.isdigit() and words:  # ``2>/dev/null`` after the pattern
            break
        words.append(word)
    return " ".join(words)


_FILTERS = frozenset({"head", "tail", "sort", "uniq", "wc", "cut", "less", "more", "cat", "tr"})


def _checker(errors: str, ran: _Ran) -> CommandReport | None:
    """Build, lint and format failures, from the checker's own finding lines."""
    if ran.format:
        files = _unique([m.group("path") for m in _FORMAT_FINDING.finditer(errors)])
        if files or _FORMAT_SUMMARY.search(errors):
            return CommandReport(ErrorKind.FORMAT_FAILED, Facts(paths=files))
    if ran.lint:
        findings = [m for p in _LINT_FINDING for m in p.finditer(errors)]
        if findings:
            first = findings[0]
            codes = _unique([m.group("code") for m in findings], limit=5)
            return CommandReport(
                ErrorKind.LINT_FAILED,
                Facts(codes=codes, location=first.group("loc"), key_line=_clip(first.group("msg"))),
            )
    if ran.build or ran.lint:
        for pattern in _BUILD_ERROR:
            match = pattern.search(errors)
            if match is not None:
                groups = match.groupdict()
                code = groups.get("code")
                return CommandReport(
                    ErrorKind.BUILD_FAILED,
                    Facts(
                        location=groups.get("loc"),
                        key_line=_clip(match.group("msg")),
                        codes=(code,) if code else (),
                    ),
                )
    return None


def _git_hook(output: str) -> str | None:
    """The failing checks of a git hook (pre-commit framework, husky) that stopped git."""
    failed = _unique([m.group("hook") for m in _PRE_COMMIT_FAILED.finditer(output)])
    if failed:
        ids = _unique([m.group("hook") for m in _PRE_COMMIT_ID.finditer(output)])
        return ", ".join(ids or failed)
    for pattern in (_HUSKY, _GIT_HOOK):
        match = pattern.search(output)
        if match is not None:
            return match.group("hook")
    return None
