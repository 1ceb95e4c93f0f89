"""Corrective templates, one per mistake kind, rendered from the site's context.

Pure and sync. ``DEFAULT_TEMPLATES`` is read-only; build your own ``Templates`` with
``DEFAULT_TEMPLATES.with_overrides({...})`` and hand it to ``TemplateLayer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from tracehint._kinds import ErrorKind
from tracehint._limits import clamp

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tracehint._records import HintRequest

__all__ = ["DEFAULT_TEMPLATES", "Templates"]


def _tool(req: HintRequest) -> str:
    return f"`{req.site.tool_name}`" if req.site.tool_name else "the tool"


def _short(text: str) -> str:
    """First line of a target, bounded: a whole heredoc command does not belong in a hint."""
    first = text.strip().splitlines()[0] if text.strip() else text
    return clamp(first, 120) + (" …" if first != text.strip() and len(first) <= 120 else "")


def _target(req: HintRequest, default: str = "the file") -> str:
    return f"`{_short(req.site.tool_target)}`" if req.site.tool_target else default


def _file_not_read(req: HintRequest) -> str:
    return (
        f"Reminder: Read {_target(req)} with the Read tool before editing or writing it; "
        f"{_tool(req)} refuses files not read in this session."
    )


def _file_modified(req: HintRequest) -> str:
    return (
        f"Reminder: {_target(req)} changed on disk since you read it. "
        "Read it again, then redo the edit against its current content."
    )


def _file_not_found(req: HintRequest) -> str:
    return (
        f"Reminder: {_target(req, 'that path')} does not exist. Check the path first "
        "(list the folder or search with Glob) instead of guessing it, and use absolute paths."
    )


def _is_a_directory(req: HintRequest) -> str:
    return (
        f"Reminder: {_target(req, 'that path')} is a directory, not a file. "
        "List it (ls or Glob) and open a file inside it."
    )


def _string_not_found(req: HintRequest) -> str:
    return (
        f"Reminder: the old_string is not in {_target(req)} exactly as written. Read the "
        "current file and copy the text verbatim, including whitespace and indentation."
    )


def _string_not_unique(req: HintRequest) -> str:
    return (
        f"Reminder: the old_string matches several places in {_target(req)}. Include more "
        "surrounding lines to make it unique, or set replace_all to true if every match "
        "should change."
    )


def _output_too_large(req: HintRequest) -> str:
    return (
        f"Reminder: the output of {_tool(req)} was too large. Read a slice (offset/limit), "
        "search with Grep for the part you need, or filter the command's output."
    )


def _command_not_found(req: HintRequest) -> str:
    command = req.site.tool_target
    program = command.split()[0] if command and command.split() else None
    what = f"`{program}`" if program else "that program"
    return (
        f"Reminder: {what} is not installed or not on PATH here. Check how the project runs it "
        "(a virtualenv, `uv run`, `npx`, a Makefile target) or use another available tool."
    )


def _command_failed(req: HintRequest) -> str:
    code = f" with exit code {req.site.exit_code}" if req.site.exit_code is not None else ""
    command = f" `{_short(req.site.tool_target)}`" if req.site.tool_target else ""
    return (
        f"Reminder: the command{command} failed{code}. Read its error output and fix the "
        "cause before running it again or moving on."
    )


def _timeout(req: HintRequest) -> str:
    return (
        f"Reminder: {_tool(req)} timed out. Run long jobs in the background or with a larger "
        "timeout, or narrow the work so it finishes quickly."
    )


def _permission_denied(req: HintRequest) -> str:
    return (
        f"Reminder: {_tool(req)} was not permitted on {_target(req, 'that target')}. Stay within "
        "the allowed working directories and tools, or ask the user for permission instead "
        "of retrying."
    )


def _hook_blocked(req: HintRequest) -> str:
    return (
        f"Reminder: a project hook blocked {_tool(req)}. Read the hook's message and follow "
        "the rule it enforces instead of retrying the same call."
    )


def _input_validation(req: HintRequest) -> str:
    return (
        f"Reminder: the arguments to {_tool(req)} did not match its schema. Supply every "
        "required parameter with the right type and no unknown ones."
    )


def _json_decode(_req: HintRequest) -> str:
    return (
        "Reminder: tool arguments must be valid JSON. Common mistakes: single quotes (use "
        "double), trailing commas, unescaped newlines in strings."
    )


def _unknown_tool(req: HintRequest) -> str:
    if req.tools_used:
        tools = ", ".join(f"`{t}`" for t in req.tools_used if t != req.site.tool_name)
        if tools:
            return f"Reminder: {_tool(req)} does not exist. Available tools include {tools}."
    return f"Reminder: {_tool(req)} does not exist. Use only the tools you were given."


def _web_fetch_failed(req: HintRequest) -> str:
    return (
        f"Reminder: fetching {_target(req, 'that URL')} failed. Check the URL, try another "
        "source, or continue without it instead of retrying the same request."
    )


def _repeated_failure(req: HintRequest) -> str:
    return (
        f"Reminder: {_tool(req)} has now failed {req.site.consecutive_failures} times in a row. "
        "Stop retrying the same approach: read the error, inspect the current state, and "
        "try a different approach."
    )


def _tool_error(req: HintRequest) -> str | None:
    # The raw error text says more than any generic sentence: defer to the next layer
    # unless there is no text at all.
    if req.site.error_message.strip():
        return None
    return (
        f"Reminder: {_tool(req)} failed. Check its arguments and the current state before retrying."
    )


@dataclass(frozen=True, slots=True)
class Templates:
    """A read-only mapping from mistake kind to template."""

    by_kind: Mapping[ErrorKind, Callable[[HintRequest], str | None]]

    def render(self, request: HintRequest) -> str | None:
        """Render the template for the site's kind, or ``None`` when there is none."""
        template = self.by_kind.get(request.site.kind)
        return template(request) if template is not None else None

    def with_overrides(
        self,
        overrides: Mapping[ErrorKind, Callable[[HintRequest], str | None]],
    ) -> Templates:
        """Return new templates with ``overrides`` replacing or adding kinds."""
        return Templates(MappingProxyType({**self.by_kind, **overrides}))


DEFAULT_TEMPLATES = Templates(
    MappingProxyType(
        {
            ErrorKind.FILE_NOT_READ: _file_not_read,
            ErrorKind.FILE_MODIFIED_SINCE_READ: _file_modified,
            ErrorKind.FILE_NOT_FOUND: _file_not_found,
            ErrorKind.IS_A_DIRECTORY: _is_a_directory,
            ErrorKind.STRING_NOT_FOUND: _string_not_found,
            ErrorKind.STRING_NOT_UNIQUE: _string_not_unique,
            ErrorKind.OUTPUT_TOO_LARGE: _output_too_large,
            ErrorKind.COMMAND_NOT_FOUND: _command_not_found,
            ErrorKind.COMMAND_FAILED: _command_failed,
            ErrorKind.TIMEOUT: _timeout,
            ErrorKind.PERMISSION_DENIED: _permission_denied,
            ErrorKind.HOOK_BLOCKED: _hook_blocked,
            ErrorKind.INPUT_VALIDATION: _input_validation,
            ErrorKind.JSON_DECODE: _json_decode,
            ErrorKind.UNKNOWN_TOOL: _unknown_tool,
            ErrorKind.WEB_FETCH_FAILED: _web_fetch_failed,
            ErrorKind.REPEATED_FAILURE: _repeated_failure,
            ErrorKind.TOOL_ERROR: _tool_error,
        },
    ),
)
"""A template for every mistake kind (``tool_error`` defers to the raw text when it has one)."""
