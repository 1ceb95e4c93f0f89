"""What every command shares: exit codes, the help formatter, argument types, errors."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from tracehint._exceptions import TracehintError

EXIT_OK = 0


EXIT_FAILED = 1


EXIT_ERROR = 2


EXIT_INTERRUPTED = 130


EXIT_TERMINATED = 143


class HelpFormatter(argparse.HelpFormatter):
    """Says every option's default in its help (unless the help already does)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            text == argparse.SUPPRESS
            or "default" in text
            or action.nargs == 0  # a flag: its help says what it turns on
            or default in (None, [], argparse.SUPPRESS)
        ):
            return action.help
        return f"{text} (default: %(default)s)".lstrip()


class Parser(argparse.ArgumentParser):
    """An argument parser (and, through ``add_subparsers``, its subcommands) with defaults shown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 -- argparse's signature
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def parse_seconds(value: str) -> float:
    """A number of seconds, zero or more (argparse ``type``)."""
    try:
        found = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of seconds, got {value!r}") from None
    if not found >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {value!r}")
    return found


def parse_temperature(value: str) -> float | None:
    if value.strip().lower() == "none":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number or none, got {value!r}") from None


def parse_json_object(value: str) -> dict[str, Any]:
    try:
        found = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(found, dict):
        raise argparse.ArgumentTypeError("must be a JSON object ({...})")
    return found


def tracehint_error(exc: BaseException) -> TracehintError | None:
    """The first ``TracehintError`` in ``exc`` (task groups wrap errors in groups)."""
    if isinstance(exc, TracehintError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = tracehint_error(inner)
            if found is not None:
                return found
    return None
