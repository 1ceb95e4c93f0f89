"""The command line: one module per command; ``main`` parses and dispatches."""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Any

import anyio

from tracehint import __version__
from tracehint._cli import annotate, bench, cache, evaluate, export, mock_judge
from tracehint._cli._common import EXIT_ERROR, EXIT_INTERRUPTED, Parser, tracehint_error
from tracehint._cli._malloc import limit_malloc_arenas
from tracehint._exceptions import TracehintError
from tracehint._output import STDOUT

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ["main"]

_COMMANDS: dict[
    str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], Awaitable[int]]]
] = {
    "annotate": (annotate.add_parser, annotate.run),
    "cache": (cache.add_parser, cache.run),
    "mock-judge": (mock_judge.add_parser, mock_judge.run),
    "bench": (bench.add_parser, bench.run),
    "eval": (evaluate.add_parser, evaluate.run),
    "export": (export.add_parser, export.run),
}
"""Each command: its parser's setup (given the subparsers) and its run (the exit code)."""


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tracehint",
        description="Find the error sites in coding-agent transcripts and give each a short "
        "corrective hint.",
    )
    parser.add_argument("--version", action="version", version=f"tracehint {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser, _run in _COMMANDS.values():
        add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    limit_malloc_arenas()  # before any worker thread allocates (see _malloc)
    args = _parser().parse_args(argv)
    # The objects the imports made live as long as the process: out of the collector's sight,
    # a full collection no longer walks them (about 55,000 objects, 30 ms with the GIL held on
    # a 2-core machine: a stall of the event loop and of every judge request). What the run
    # itself makes is collected as before. A library must leave this to its program.
    gc.freeze()
    if args.command == "annotate" and args.output == STDOUT and args.progress is None:
        args.progress = False if not sys.stderr.isatty() else None
    _add_parser, run = _COMMANDS[args.command]
    try:
        if args.command == "annotate" and args.engine == "ray":
            return annotate.run_ray(args)  # a sync function: Ray runs its own loop
        return anyio.run(run, args)
    except (TracehintError, BaseExceptionGroup) as exc:
        error = tracehint_error(exc)
        if error is None:
            raise
        print(f"tracehint: error: {error}", file=sys.stderr)  # noqa: T201 -- CLI output
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tracehint: interrupted", file=sys.stderr)  # noqa: T201 -- CLI output
        return EXIT_INTERRUPTED
