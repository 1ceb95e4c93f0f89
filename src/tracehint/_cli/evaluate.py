"""``tracehint eval``: score annotated traces against hand labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracehint._cli._common import EXIT_OK
from tracehint._quality import (
    load_corrections,
    load_labels,
    load_traces,
    score,
    score_corrections,
)

if TYPE_CHECKING:
    import argparse


def add_parser(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
    evaluate = commands.add_parser(
        "eval",
        help="score annotated traces against hand labels (kind accuracy, wrong/specific hints)",
        description="Score `tracehint annotate` output against label files (see "
        "quality/labels/README.md). Exit 1 when a hint is wrong, a non-mistake became a site, "
        "or kind accuracy is below --min-kind.",
    )
    evaluate.add_argument("labels", type=Path, metavar="LABELS", help="a label file or folder")
    evaluate.add_argument("traces", type=Path, nargs="+", metavar="TRACES", help="output JSONL")
    evaluate.add_argument("--min-kind", type=float, default=0.9, help="default: 0.9")
    evaluate.add_argument(
        "--corrections",
        type=Path,
        metavar="REPLIES",
        help="also score the user-correction sites against reply labels (a file or folder, "
        "see quality/corrections/README.md); exit 1 on a site on a reply that is no correction",
    )
    evaluate.add_argument(
        "--verbose", "-v", action="store_true", help="list each site not specific"
    )
    evaluate.add_argument("--json", action="store_true", help="print the counts as JSON")


async def run(args: argparse.Namespace) -> int:
    report = score(load_labels([args.labels]), load_traces(args.traces))
    if args.json:
        verdicts = report.verdicts
        print(  # noqa: T201 -- CLI output
            json.dumps(
                {
                    "labelled_mistakes": len(report.scores),
                    "found": len(report.found),
                    "kind_accuracy": round(report.kind_accuracy, 4),
                    "hints": dict(verdicts),
                    "specific_share": round(report.specific_share, 4),
                    "spurious": len(report.spurious),
                    "unread": len(report.unread),
                },
                indent=2,
            ),
        )
    else:
        print(report.summary())  # noqa: T201 -- CLI output
    if args.verbose:
        for item in report.found:
            if item.verdict != "specific" or not item.kind_right:
                print(  # noqa: T201 -- CLI output
                    f"[{item.verdict}] {item.label.file} {item.label.call_id}: "
                    f"{item.label.kind.value} -> {item.site.kind if item.site else '-'} "
                    f"{item.why}",
                )
        for site, why in report.spurious:
            print(f"[spurious] {site.path} {site.call_id}: {why}")  # noqa: T201 -- CLI output
    bad = report.verdicts["wrong"] > 0 or report.spurious or report.kind_accuracy < args.min_kind
    if args.corrections is not None:
        bad = _eval_corrections(args) or bad
    return 1 if bad else EXIT_OK


def _eval_corrections(args: argparse.Namespace) -> bool:
    """``eval --corrections``: score the reply sites; whether one is on no correction."""
    replies = score_corrections(load_corrections([args.corrections]), load_traces(args.traces))
    if not args.json:
        print(replies.summary())  # noqa: T201 -- CLI output
    if args.verbose:
        for label in replies.missed:
            print(f"[missed] {label.file}: {label.quote!r}")  # noqa: T201 -- CLI output
        for site, why in replies.wrong:
            print(f"[wrong] {site.path} {site.trace_id}: {why}")  # noqa: T201 -- CLI output
    return bool(replies.wrong)
