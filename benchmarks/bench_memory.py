"""Peak RSS of ``tracehint annotate`` (offline layers) on the corpus x2 and x20.

Each run is a ``tracehint annotate`` child of a fresh wrapper process whose
``RUSAGE_CHILDREN.ru_maxrss`` is that child's peak RSS. An empty folder gives the start-up
baseline. Streaming means the peak should not grow with the amount of input: the target is
peak(x20) / peak(x2) <= 1.2.

    python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from _common import (
    annotate_command,
    base_parser,
    print_tables,
    replicate_corpus,
    run_measured,
    table,
    target,
    total_bytes,
    write_result,
)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, help="runs per size, the highest peak kept (default 2)"
    )
    args = parser.parse_args()
    small, large = (2, 20)
    repeats = args.repeats or (1 if args.quick else 2)
    if args.quick:
        large = 6

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tracehint-bench-memory-") as folder:
        base = Path(folder)
        empty = base / "empty"
        empty.mkdir()
        output = base / "out.jsonl"
        for label, copies in (
            ("empty folder", 0),
            (f"corpus x{small}", small),
            (f"corpus x{large}", large),
        ):
            root = empty
            files: list[Path] = []
            if copies:
                root = base / f"x{copies}"
                files = replicate_corpus(args.corpus, root, copies)
            runs = [
                run_measured(annotate_command([root], output, "--layers", "template,raw"))
                for _ in range(repeats)
            ]
            for run in runs:
                if run["returncode"] != 0:
                    raise SystemExit(f"tracehint annotate failed: {run['stderr']}")
            peak = max(run["peak_rss_mb"] for run in runs)
            print(
                f"{label:14} peak RSS {peak:7.1f} MB  ({[r['peak_rss_mb'] for r in runs]})",
                flush=True,
            )
            rows.append(
                {
                    "input": label,
                    "copies": copies,
                    "files": len(files),
                    "input_mb": round(total_bytes(files) / 1e6, 1),
                    "output_mb": round(output.stat().st_size / 1e6, 1),
                    "peak_rss_mb": peak,
                    "peak_rss_runs_mb": [r["peak_rss_mb"] for r in runs],
                    "wall_seconds": round(min(r["wall_seconds"] for r in runs), 2),
                },
            )
    startup = rows[0]["peak_rss_mb"]
    for row in rows:
        row["above_startup_mb"] = round(row["peak_rss_mb"] - startup, 1)
    ratio = rows[2]["peak_rss_mb"] / rows[1]["peak_rss_mb"]
    data = {
        "settings": {"small": small, "large": large, "repeats": repeats, "layers": "template,raw"},
        "rows": rows,
        "ratio_large_small": round(ratio, 3),
        "tables": [
            table(
                "Peak RSS of `tracehint annotate --layers template,raw` (highest of the repeats)",
                {
                    "input": "input",
                    "files": "files",
                    "input_mb": "input MB",
                    "output_mb": "output MB",
                    "peak_rss_mb": "peak RSS MB",
                    "above_startup_mb": "above start-up MB",
                    "wall_seconds": "wall s",
                },
                rows,
            ),
        ],
        "targets": [
            target(f"memory: peak RSS x{large} / x{small}", ratio, 1.2, at_least=False),
        ],
    }
    path = write_result("bench_memory", data, quick=args.quick)
    print_tables(data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
