"""Grounded corrective templates, one per mistake kind: pure and sync.

A template states only what its site shows: the path the error names, the failing tests, the
exception and its frame, the parameter a validation error names, the tool names of *this*
trace. When a template cannot ground its claim it abstains (returns ``None``) and the next
layer answers: a raw error beats a wrong hint.

Each hint is a forward instruction that reads right both where the seeds' collator puts it
(after the error, above the agent's next message) and where Composer-style training puts it
(above the mistaken call): the fact, then what to do.

``DEFAULT_TEMPLATES`` is read-only; build your own ``Templates`` with
``DEFAULT_TEMPLATES.with_overrides({...})`` and hand it to ``TemplateLayer``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import orjson

from tracehint._classify import SHELL_TOOLS
from tracehint._kinds import ErrorKind
from tracehint._limits import clamp

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tracehint._records import HintRequest

__all__ = ["DEFAULT_TEMPLATES", "Templates"]

_PATH_KEYS = ("file_path", "notebook_path", "path", "filename", "file")


def _code(text: str, limit: int = 120) -> str:
    """``text`` as inline code: one line, bounded, no backticks inside."""
    line = " ".join(text.split()).replace("`", "'")
    return f"`{clamp(line, limit)}`"


def _arguments(req: HintRequest) -> dict[str, object]:
    raw = req.site.tool_input
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _input_path(req: HintRequest) -> str | None:
    """The path argument of a non-shell call (a shell command is never a path)."""
    if req.site.tool_name in SHELL_TOOLS or req.site.command:
        return None
    args = _arguments(req)
    for key in _PATH_KEYS:
        value = args.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if not args and req.site.tool_input:  # bounded JSON cut short: find the key by pattern
        match = re.search(
            r'"(?:file_path|notebook_path|path)"\s*:\s*"([^"]+)"', req.site.tool_input
        )
        if match:
            return match.group(1)
    return None


def _path(req: HintRequest) -> str | None:
    """The path a file-system error is about: named by the error, else the call's argument."""
    return req.site.facts.path or _input_path(req)


def _tool(req: HintRequest) -> str | None:
    return _code(req.site.tool_name, 40) if req.site.tool_name else None


def _has(req: HintRequest, *tools: str) -> str | None:
    """The first of ``tools`` this trace actually has, as inline code."""
    found = next((t for t in tools if t in req.tools_used or t == req.site.tool_name), None)
    return _code(found, 40) if found else None


def _file_not_read(req: HintRequest) -> str | None:
    path, tool = _path(req), _tool(req)
    if path is None or tool is None:
        return None
    reader = _has(req, "Read", "read_file", "view")
    how = f"{reader} {_code(path)}" if reader else f"read {_code(path)}"
    return f"{tool} only changes files read earlier in this session: {how} first, then edit it."


def _file_modified(req: HintRequest) -> str | None:
    path = _path(req)
    if path is None:
        return None
    return (
        f"{_code(path)} changed on disk after it was read: read it again and make the edit "
        "against its current content."
    )


def _edit_param(req: HintRequest) -> str:
    args = _arguments(req)
    for key in ("old_string", "old_str"):
        if key in args or key in (req.site.tool_input or ""):
            return f"`{key}`"
    return "the text to replace"


def _string_not_found(req: HintRequest) -> str | None:
    path = _path(req)
    if path is None:
        return None
    param = _edit_param(req)
    return (
        f"{param} must match {_code(path)} exactly: read the current text of that part of the "
        f"file and copy it into {param} verbatim, whitespace and indentation included."
    )


def _string_not_unique(req: HintRequest) -> str | None:
    path = _path(req)
    if path is None:
        return None
    param = _edit_param(req)
    all_flag = (
        " or set `replace_all` to true if every match should change"
        if "replace_all" in (req.site.tool_input or "") + req.site.error_message
        else ""
    )
    return (
        f"{param} must match exactly one place in {_code(path)}: include enough surrounding "
        f"lines to make it unique{all_flag}."
    )


_LINTER_ERROR = re.compile(r"^- (?P<code>[A-Z]\d+) (?P<msg>.+)$", re.MULTILINE)
_EDITED_FILE = re.compile(r"^\[File: (?P<path>\S+)|^(?P<path2>/\S+?):(?P<line>\d+)$", re.MULTILINE)


def _edit_rejected(req: HintRequest) -> str | None:
    message = req.site.error_message
    found = _LINTER_ERROR.search(message)
    edited = _EDITED_FILE.search(message)
    path = (edited.group("path") or edited.group("path2")) if edited else _input_path(req)
    if found is None and path is None:
        return None
    what = _code(found.group("code") + " " + found.group("msg")) if found else "a syntax error"
    where = f" to {_code(path)}" if path else ""
    indent = "check its indentation, " if found and "Indent" in found.group("msg") else ""
    return (
        f"An edit{where} that introduces {what} is rejected and the file stays unchanged: "
        f"{indent}correct the replacement text and submit the edit again."
    )


def _file_not_found(req: HintRequest) -> str | None:
    path = _path(req)
    if path is None:
        return None
    if req.site.command is not None and not path.startswith(("/", "~")):
        # a shell's relative path resolves against its working directory, which persists
        # between calls: the path may well exist elsewhere
        return (
            f"{_code(path)} is not found from the shell's current working directory (it "
            "persists between calls): check where you are with `pwd`, or use an absolute path."
        )
    lister = _has(req, "Glob", "LS", "find_file", "list_dir", "Bash", "bash")
    how = f" (list its parent folder with {lister})" if lister else " (list its parent folder)"
    return f"{_code(path)} does not exist: check the path{how} before using it."


def _is_a_directory(req: HintRequest) -> str | None:
    path = _path(req)
    if path is None:
        return None
    lister = _has(req, "LS", "Glob", "list_dir", "Bash", "bash")
    how = f" with {lister}" if lister else ""
    return f"{_code(path)} is a directory, not a file: list it{how} and open a file inside it."


def _output_too_large(req: HintRequest) -> str | None:
    path = _path(req)
    if path is None or req.site.tool_name in SHELL_TOOLS:
        return None
    how = (
        "read it in parts with `offset` and `limit`"
        if req.site.tool_name == "Read"
        else ("read it in parts")
    )
    grep = _has(req, "Grep", "grep", "search_file")
    search = f", or search it with {grep} for what you need" if grep else ""
    return f"{_code(path)} is too large to read at once: {how}{search}."


def _command_not_found(req: HintRequest) -> str | None:
    program = req.site.facts.program
    if program is None:
        return None
    if "/" in program:
        return f"There is no program at {_code(program)}: check the path before running it."
    return (
        f"{_code(program)} is not on this environment's PATH: run it the way this project "
        "installs it (its virtualenv or package manager) or use another available tool."
    )


def _plural(items: tuple[str, ...]) -> str:
    return ", ".join(_code(item, 90) for item in items)


def _test_name(node: str) -> str:
    """``tests/x.py::Class::test_y`` → ``test_y``: the name a person searches for."""
    return node.rsplit("::", 1)[-1]


def _test_failed(req: HintRequest) -> str | None:
    facts = req.site.facts
    if facts.tests:
        names = tuple(_test_name(t) for t in facts.tests)
        files = {t.split("::", 1)[0] for t in facts.tests if "::" in t}
        where = f" in {_code(files.pop(), 80)}" if len(files) == 1 else ""
        verb = "fails" if len(names) == 1 else "fail"
        first = f" (first: {_code(facts.key_line, 120)})" if facts.key_line else ""
        return (
            f"{_plural(names)}{where} {verb}{first}: read each failure and fix its cause before "
            "running the tests again."
        )
    if facts.problem == "no test matched the selection" and facts.key_line:
        return (
            f"The test selection ran nothing ({_code(facts.key_line, 80)}): check the marker, "
            "`-k` expression or path against the suite's tests before running it again."
        )
    if facts.exception:
        return (
            f"The tests stop at collection with {_code(facts.exception)}: fix that error "
            "before running them again."
        )
    return None


def _build_failed(req: HintRequest) -> str | None:
    facts = req.site.facts
    if facts.key_line is None:
        return None
    where = f" at {_code(facts.location, 80)}" if facts.location else ""
    return (
        f"The build reports {_code(facts.key_line)}{where}: fix that error first, then build again."
    )


def _lint_failed(req: HintRequest) -> str | None:
    facts = req.site.facts
    if not facts.codes or facts.location is None:
        return None
    return (
        f"The linter reports {_plural(facts.codes)} (first at {_code(facts.location, 80)}): fix "
        "those findings in the code, then run it again."
    )


def _format_failed(req: HintRequest) -> str | None:
    files = req.site.facts.paths
    if not files:
        return None
    check = (
        " (run the formatter without `--check`)" if "--check" in (req.site.command or "") else ""
    )
    return f"The formatter would change {_plural(files)}: format them{check}, then check again."


_GIT_ADVICE = {
    "the branch has no upstream branch": (
        "The branch has no upstream yet: push it with `git push -u <remote> <branch>`."
    ),
    "there is nothing to commit": (
        "There is nothing to commit: check `git status` before committing."
    ),
    "no changes are staged for commit": (
        "Nothing is staged: `git add` the files you changed, then commit."
    ),
    "the merge has conflicts": (
        "The merge stopped on conflicts: resolve the conflicted files that `git status` lists, "
        "`git add` them, then continue."
    ),
    "the directory is not a git repository": (
        "This folder is not a git repository: run git from inside the repository."
    ),
    "the pathspec matches no file known to git": (
        "git knows no file at that path: check the path with `git status` or `git ls-files`."
    ),
    "git has no user identity configured": (
        "git has no user identity here: do not commit without the user's name and email set."
    ),
    "another git process holds the index lock": (
        "Another git process holds `.git/index.lock`: wait for it to finish before retrying."
    ),
}


def _git_failed(req: HintRequest) -> str | None:
    problem = req.site.facts.problem
    if problem is None:
        return None
    if problem == "the push was rejected":
        if re.search(r"non-fast-forward|fetch first", req.site.error_message):
            return (
                "The remote has commits this branch lacks: integrate them (`git pull --rebase`) "
                "before pushing again, and do not force-push."
            )
        return None
    return _GIT_ADVICE.get(problem)


def _hook_blocked(req: HintRequest) -> str | None:
    hook = req.site.facts.hook
    if hook is None:
        return None
    if req.site.command and re.search(r"\bgit\b", req.site.command):
        return (
            f"The commit hook checks {_code(hook, 80)} failed, so git did not commit: fix what "
            "they report, then commit again without `--no-verify`."
        )
    return (
        f"The {_code(hook, 60)} hook blocks this call: follow the rule its message states "
        "instead of repeating or working around the call."
    )


def _script_error(req: HintRequest) -> str | None:
    facts = req.site.facts
    if facts.exception is None:
        return None
    where = f" at {_code(facts.frame, 90)}" if facts.frame else ""
    return (
        f"The code raises {_code(facts.exception)}{where}: fix that cause before running it again."
    )


_ALLOWED_DIRS = re.compile(r"allowed working directories for this session: '([^']+)'")


_BLOCKED_TARGET = re.compile(r"^\w+ in '(?P<target>[^']+)' was blocked")
_ASKED_FOR = re.compile(r"requested permissions to (?P<what>\w+(?: (?:from|to|in))? \S+?),? but")


def _permission_denied(req: HintRequest) -> str | None:
    facts, message = req.site.facts, req.site.error_message
    if facts.program is not None:  # the shell could not execute a file
        path = _code(facts.program)
        return (
            f"{path} cannot be executed as it is: run it through its interpreter (such as "
            f"`bash {facts.program}`) or make it executable with `chmod +x` first."
        )
    allowed = _ALLOWED_DIRS.search(message)
    if allowed is not None:
        blocked = _BLOCKED_TARGET.search(message)
        what = f"{_code(blocked.group('target'))} is" if blocked else "That location is"
        return (
            f"{what} outside this session's allowed working directories "
            f"({_code(allowed.group(1))}): work inside them."
        )
    if re.search(r"requires approval|haven't granted|requested permissions", message):
        asked = _ASKED_FOR.search(message)
        if req.site.command is not None:
            subject = _code(req.site.command, 70)
        elif asked is not None:
            subject = f"The request to {asked.group('what')}"
        else:
            subject = _tool(req) or "This call"
        return (
            f"{subject} needs a permission the user has not granted: do the step with the "
            "tools already allowed, or ask the user to grant it."
        )
    if facts.path is not None:
        return (
            f"The OS refuses access to {_code(facts.path)}: use a location you have access to, "
            "such as the project folder."
        )
    return None


_PARAM_PROBLEMS = (
    (re.compile(r"is missing|is required|required parameter"), "supply the required parameter"),
    (re.compile(r"unexpected parameter|was provided|not expected"), "remove the unknown parameter"),
    (re.compile(r"type is expected|expected as|must be"), "give the right type for"),
)


def _input_validation(req: HintRequest) -> str | None:
    param, tool = req.site.facts.parameter, _tool(req)
    if param is None or tool is None:
        return None
    for pattern, what in _PARAM_PROBLEMS:
        if pattern.search(req.site.error_message):
            return f"{tool} rejects these arguments: {what} {_code(param, 40)} and call it again."
    return None


def _json_decode(req: HintRequest) -> str | None:
    tool = _tool(req)
    if tool is None:
        return None
    return (
        f"The arguments of {tool} must be one valid JSON object: double-quoted strings, "
        "escaped newlines, no trailing commas."
    )


def _unknown_tool(req: HintRequest) -> str | None:
    name = req.site.facts.program or req.site.tool_name
    if name is None:
        return None
    others = [t for t in req.tools_used if t != name][:6]
    if not others:
        return None
    return f"There is no {_code(name, 40)} tool here: use one of {_plural(tuple(others))}."


_STATUS_ADVICE = {
    404: "the page is not at that URL: find the right address instead of guessing it",
    403: "the site refuses this client: use another source",
    401: "the site requires a login: use another source",
}


def _web_fetch_failed(req: HintRequest) -> str | None:
    status = req.site.facts.status
    args = _arguments(req)
    url = args.get("url")
    if status is None or not isinstance(url, str):
        return None
    advice = _STATUS_ADVICE.get(status)
    if advice is None and status >= 500:
        advice = "the server failed: use another source rather than repeating the request"
    if advice is None:
        return None
    return f"{_code(url, 100)} answers HTTP {status}: {advice}."


def _timeout(req: HintRequest) -> str | None:
    command = req.site.command
    if command is None:
        return None
    return (
        f"{_code(command, 80)} runs past the tool's time limit: run it in the background or "
        "with a larger timeout, or narrow it so it finishes in time."
    )


def _command_failed(req: HintRequest) -> str | None:
    facts, command = req.site.facts, req.site.command
    if command is None:
        return None
    if facts.problem == "no match" and facts.key_line:
        return (
            f"{_code(facts.key_line, 80)} matches nothing (grep-like tools exit 1 when nothing "
            "matches): search elsewhere or with another pattern, or treat it as absent."
        )
    if facts.key_line is None or len(facts.key_line.split()) < 2:
        return None
    code = f" with exit code {req.site.exit_code}" if req.site.exit_code is not None else ""
    return (
        f"{_code(command, 70)} fails{code} on {_code(facts.key_line, 140)}: resolve that error "
        "before running it again."
    )


def _repeat_prefix(req: HintRequest) -> str:
    n = req.site.repeats
    if n <= 0:
        return ""
    times = "once" if n == 1 else f"{n} times"
    return (
        f"This same call already failed the same way {times} before: change the approach "
        "instead of repeating it. "
    )


@dataclass(frozen=True, slots=True)
class Templates:
    """A read-only mapping from mistake kind to template (``None``: the template abstains)."""

    by_kind: Mapping[ErrorKind, Callable[[HintRequest], str | None]]
    reads_context: bool = True
    """Whether a template may read the request's context (the user's task, the agent's intent
    and next message), not only its site. The default templates read only the site, so only
    the site is redacted before them; your own templates get every text redacted."""

    def render(self, request: HintRequest) -> str | None:
        """Render the template for the site's kind, or ``None`` when it abstains."""
        template = self.by_kind.get(request.site.kind)
        if template is None:
            return None
        text = template(request)
        if text is None:
            return None
        return _repeat_prefix(request) + text

    def with_overrides(
        self,
        overrides: Mapping[ErrorKind, Callable[[HintRequest], str | None]],
    ) -> Templates:
        """Return new templates with ``overrides`` replacing or adding kinds."""
        return Templates(MappingProxyType({**self.by_kind, **overrides}), reads_context=True)


DEFAULT_TEMPLATES = Templates(
    MappingProxyType(
        {
            ErrorKind.FILE_NOT_READ: _file_not_read,
            ErrorKind.FILE_MODIFIED_SINCE_READ: _file_modified,
            ErrorKind.FILE_NOT_FOUND: _file_not_found,
            ErrorKind.IS_A_DIRECTORY: _is_a_directory,
            ErrorKind.STRING_NOT_FOUND: _string_not_found,
            ErrorKind.STRING_NOT_UNIQUE: _string_not_unique,
            ErrorKind.EDIT_REJECTED: _edit_rejected,
            ErrorKind.OUTPUT_TOO_LARGE: _output_too_large,
            ErrorKind.COMMAND_NOT_FOUND: _command_not_found,
            ErrorKind.COMMAND_FAILED: _command_failed,
            ErrorKind.TEST_FAILED: _test_failed,
            ErrorKind.BUILD_FAILED: _build_failed,
            ErrorKind.LINT_FAILED: _lint_failed,
            ErrorKind.FORMAT_FAILED: _format_failed,
            ErrorKind.GIT_FAILED: _git_failed,
            ErrorKind.SCRIPT_ERROR: _script_error,
            ErrorKind.TIMEOUT: _timeout,
            ErrorKind.PERMISSION_DENIED: _permission_denied,
            ErrorKind.HOOK_BLOCKED: _hook_blocked,
            ErrorKind.INPUT_VALIDATION: _input_validation,
            ErrorKind.JSON_DECODE: _json_decode,
            ErrorKind.UNKNOWN_TOOL: _unknown_tool,
            ErrorKind.WEB_FETCH_FAILED: _web_fetch_failed,
        },
    ),
    reads_context=False,
)
"""A grounded template for every mistake kind but ``tool_error`` (the raw text answers it)."""
