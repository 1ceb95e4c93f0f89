"""The ``tracehint`` command line."""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio
import orjson

from tracehint import __version__
from tracehint._exceptions import TracehintError
from tracehint._hints.layers import HintChain, HintLayer, RawErrorLayer, TemplateLayer, build_layers
from tracehint._ingest._discover import DEFAULT_CLAUDE_DIR
from tracehint._output import STDOUT, JsonlSink
from tracehint._pipeline import PipelineConfig, annotate_files
from tracehint._progress import progress
from tracehint._stats import RunStats

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracehint",
        description="Find the error sites in coding-agent transcripts and give each a short "
        "corrective hint.",
    )
    parser.add_argument("--version", action="version", version=f"tracehint {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    annotate = commands.add_parser(
        "annotate",
        help="annotate session files and write one JSON trace per line",
        description="Read Claude Code session files (and folders of them, recursively), tag "
        "every error site, give it a hint, and write one JSON trace per line.",
    )
    annotate.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help=f"session files or folders (default: {DEFAULT_CLAUDE_DIR})",
    )
    annotate.add_argument(
        "-o", "--output", required=True, help="output JSONL file, or - for stdout"
    )
    annotate.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output file if it exists",
    )
    annotate.add_argument(
        "--layers",
        default="template,raw",
        help="hint layers in the order they are asked, first answer wins (default: template,raw)",
    )
    annotate.add_argument("--stats-json", metavar="FILE", help="also write the summary as JSON")
    annotate.add_argument(
        "--errors",
        metavar="FILE",
        help="write every input issue (file, line, reason) as JSONL",
    )
    bar = annotate.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress line even when stderr is not a terminal",
    )
    bar.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="never show the progress line",
    )
    annotate.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="do not print the summary on stderr",
    )
    return parser


def _layers(spec: str) -> tuple[HintLayer, ...]:
    available: dict[str, HintLayer] = {"template": TemplateLayer(), "raw": RawErrorLayer()}
    return build_layers(spec.split(","), available)


async def _annotate(args: argparse.Namespace) -> int:
    chain = HintChain(_layers(args.layers))
    paths = args.paths or [str(DEFAULT_CLAUDE_DIR.expanduser())]
    stats = RunStats()
    async with AsyncExitStack() as stack:
        sink = await stack.enter_async_context(JsonlSink(args.output, overwrite=args.overwrite))
        issues = (
            await stack.enter_async_context(JsonlSink(args.errors, overwrite=True))
            if args.errors
            else None
        )
        async with progress(stats, enabled=args.progress):
            await annotate_files(
                paths,
                chain=chain,
                sink=sink,
                stats=stats,
                issue_sink=issues,
                config=PipelineConfig(),
            )
    if args.stats_json:
        await anyio.Path(args.stats_json).write_bytes(
            orjson.dumps(stats.to_dict(), option=orjson.OPT_INDENT_2) + b"\n",
        )
    if not args.quiet:
        print(stats.summary(), file=sys.stderr)  # noqa: T201 -- the summary is CLI output
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "annotate" and args.output == STDOUT and args.progress is None:
        args.progress = False if not sys.stderr.isatty() else None
    try:
        return anyio.run(_annotate, args)
    except TracehintError as exc:
        print(f"tracehint: error: {exc}", file=sys.stderr)  # noqa: T201 -- CLI output
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tracehint: interrupted", file=sys.stderr)  # noqa: T201 -- CLI output
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
