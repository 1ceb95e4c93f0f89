"""``tracehint export``: one training row per hinted site."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import anyio

from tracehint._cli._common import EXIT_OK
from tracehint._exceptions import ConfigError
from tracehint._export import ExportOptions, export_sites
from tracehint._kinds import HintSource
from tracehint._teacher import HintPlacement

if TYPE_CHECKING:
    import argparse


def add_parser(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
    export = commands.add_parser(
        "export",
        help="write one training row per hinted site (prompt, completion, teacher_prompt)",
        description="Read `tracehint annotate` output and write one row per hinted site in the "
        "conversational prompt/completion layout Hugging Face datasets and TRL read: `prompt` "
        "(the messages before the target), `completion` (the target assistant message), "
        "`teacher_prompt` (the prompt with the hint appended). Parquet when OUT ends in "
        ".parquet (pip install 'tracehint[parquet]'), else JSONL.",
    )
    export.add_argument(
        "traces", nargs="+", metavar="TRACES", help="annotate output files or folders (Ray)"
    )
    export.add_argument("-o", "--output", required=True, metavar="OUT", help="rows file")
    export.add_argument(
        "--at",
        choices=[p.value for p in HintPlacement],
        default=HintPlacement.RECOVERY.value,
        help="the target: the agent's message after the failed result (recovery, the "
        "default), or the message whose call failed (mistake)",
    )
    export.add_argument(
        "--hint-role", default="user", help="role of the hint message (default: user)"
    )
    export.add_argument(
        "--sources",
        help="only hints from these layers, comma-separated (e.g. template,judge; "
        "default: every layer)",
    )
    export.add_argument(
        "--drop-reasoning", action="store_true", help="leave the assistants' thinking out"
    )
    export.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    export.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")


async def run(args: argparse.Namespace) -> int:
    sources: frozenset[str] | None = None
    if args.sources:
        sources = frozenset(s.strip() for s in args.sources.split(",") if s.strip())
        unknown = sources - {s.value for s in HintSource}
        if unknown:
            known = ", ".join(s.value for s in HintSource)
            raise ConfigError(f"--sources: unknown layer {', '.join(sorted(unknown))}; use {known}")
    options = ExportOptions(
        at=HintPlacement(args.at),
        hint_role=args.hint_role,
        reasoning=not args.drop_reasoning,
        sources=sources,
        overwrite=args.overwrite,
    )
    stats = await anyio.to_thread.run_sync(export_sites, args.traces, args.output, options)
    if not args.quiet:
        print(f"tracehint: {stats.summary()}", file=sys.stderr)  # noqa: T201 -- CLI output
    return EXIT_OK
