"""Ingestion and tagging without a judge: tracehint vs the floor vs a sync port of the seeds.

The corpus is replicated xN under new names in a temporary folder, read once to warm the page
cache, then each approach runs over all of it (best of the repeats, order alternated):

- ``floor``: read every session file tracehint reads and ``orjson.loads`` it, nothing else: a
  JSONL file line by line, a ``.json``/``.traj`` document whole.
- ``seeds-port (json)`` / ``(orjson)``: ``benchmarks/_seeds_port.py``, the seeds' adapter path
  written plainly and synchronously, with the stdlib parser the seeds would use and with orjson
  (Claude Code JSONL files only: it reads no other format).
- ``tracehint``: ``annotate_files`` with the offline layers (template, raw), output lines
  serialized and dropped by a null sink.

    python benchmarks/bench_ingest.py [--quick] [--copies N]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _seeds_port
import anyio
import orjson
from _common import (
    base_parser,
    print_tables,
    replicate_corpus,
    table,
    target,
    total_bytes,
    warm_page_cache,
    write_result,
)

from tracehint import Annotator, AnnotatorConfig, PipelineConfig, RunStats, annotate_files
from tracehint._ingest._discover import skip_reason

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class NullSink:
    """A line sink that keeps nothing (counts bytes): output cost without disk I/O."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0

    @property
    def buffered(self) -> int:
        return 0

    async def write(self, line: bytes) -> None:
        self.bytes += len(line)
        self.lines += 1

    async def flush(self) -> None:
        return None


def session_files(root: Path) -> list[Path]:
    """Every file under ``root`` that tracehint reads as a session (as its discovery finds)."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.suffix in {".jsonl", ".json", ".traj"}
        and path.is_file()
        and skip_reason(path.name) is None
    )


def floor(paths: Sequence[Path]) -> dict[str, int]:
    """Read every session file and parse it with orjson (JSONL line by line); nothing else."""
    lines = 0
    for path in paths:
        with path.open("rb") as handle:
            if path.suffix != ".jsonl":
                orjson.loads(handle.read())
                lines += 1
                continue
            for raw in handle:
                if raw.strip():
                    orjson.loads(raw)
                    lines += 1
    return {"lines": lines}


async def _tracehint(root: Path) -> dict[str, int]:
    stats = RunStats()
    sink = NullSink()
    async with Annotator(AnnotatorConfig(layers=("template", "raw"))) as annotator:
        await annotate_files(
            [root], chain=annotator.chain, sink=sink, stats=stats, config=PipelineConfig()
        )
    return {
        "lines": stats.lines,
        "traces": stats.traces,
        "sites": stats.sites,
        "issues": stats.input_issues,
        "output_bytes": sink.bytes,
    }


def tracehint(root: Path) -> dict[str, int]:
    """The tracehint pipeline, offline layers, in this process."""
    return anyio.run(_tracehint, root, backend="asyncio")


def timed(function: Callable[[], dict[str, int]]) -> tuple[float, float, dict[str, int]]:
    """Wall seconds, CPU seconds (all threads) and the counts of one run."""
    cpu = time.process_time()
    started = time.perf_counter()
    counts = function()
    return time.perf_counter() - started, time.process_time() - cpu, counts


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, help="corpus copies (default 30, quick 3)")
    parser.add_argument("--repeats", type=int, help="runs per approach (default 3, quick 1)")
    args = parser.parse_args()
    copies = args.copies or (3 if args.quick else 30)
    repeats = args.repeats or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory(prefix="tracehint-bench-ingest-") as folder:
        root = Path(folder) / "corpus"
        paths = replicate_corpus(args.corpus, root, copies)
        sessions = session_files(root)
        size = total_bytes(sessions)
        sizes = {"seeds-port (json)": total_bytes(paths), "seeds-port (orjson)": total_bytes(paths)}
        warm_page_cache(sessions)
        print(f"corpus x{copies}: {len(sessions)} files, {size / 1e6:.1f} MB", flush=True)
        approaches: dict[str, Callable[[], dict[str, int]]] = {
            "floor": lambda: floor(sessions),
            "seeds-port (json)": lambda: _seeds_port.run(paths, parser="json"),
            "seeds-port (orjson)": lambda: _seeds_port.run(paths, parser="orjson"),
            "tracehint": lambda: tracehint(root),
        }
        best: dict[str, tuple[float, float, dict[str, int]]] = {}
        names = list(approaches)
        for repeat in range(repeats):
            for name in names if repeat % 2 == 0 else reversed(names):
                seconds, cpu, counts = timed(approaches[name])
                read = sizes.get(name, size)
                print(f"{name:20} {seconds:7.2f} s  {read / 1e6 / seconds:7.1f} MB/s", flush=True)
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, cpu, counts)

    lines = best["floor"][2]["lines"]
    floor_seconds = best["floor"][0]
    ours_seconds = best["tracehint"][0]
    rows: list[dict[str, Any]] = []
    for name in names:
        seconds, cpu, counts = best[name]
        rows.append(
            {
                "approach": name,
                "seconds": round(seconds, 3),
                "cpu_seconds": round(cpu, 3),
                "mb": round(sizes.get(name, size) / 1e6, 1),
                "mb_per_second": round(sizes.get(name, size) / 1e6 / seconds, 1),
                "lines_per_second": round(lines / seconds),
                "traces": counts.get("traces"),
                "sites": counts.get("sites"),
                # throughput ratios: the seeds port reads only the Claude Code files
                "vs_floor": round(sizes.get(name, size) / seconds / (size / floor_seconds), 3),
                "tracehint_vs_this": round(
                    size / ours_seconds / (sizes.get(name, size) / seconds), 3
                ),
            },
        )
    by_name = {row["approach"]: row for row in rows}
    data = {
        "settings": {
            "copies": copies,
            "files": len(paths),
            "bytes": size,
            "lines": lines,
            "repeats": repeats,
        },
        "rows": rows,
        "tables": [
            table(
                f"Ingestion + tagging, corpus x{copies} ({size / 1e6:.0f} MB, {lines:,} lines, "
                f"best of {repeats})",
                {
                    "approach": "approach",
                    "seconds": "s",
                    "cpu_seconds": "cpu s",
                    "mb": "MB read",
                    "mb_per_second": "MB/s",
                    "lines_per_second": "lines/s",
                    "traces": "traces",
                    "sites": "sites",
                    "vs_floor": "throughput vs floor",
                    "tracehint_vs_this": "tracehint / this",
                },
                rows,
            ),
        ],
        "targets": [
            target("ingest: tracehint / floor throughput", by_name["tracehint"]["vs_floor"], 0.5),
        ],
        "ratios": {
            "tracehint / floor (MB/s)": by_name["tracehint"]["vs_floor"],
            "tracehint / seeds-port json (MB/s)": by_name["seeds-port (json)"]["tracehint_vs_this"],
            "tracehint / seeds-port orjson (MB/s)": by_name["seeds-port (orjson)"][
                "tracehint_vs_this"
            ],
        },
    }
    path = write_result("bench_ingest", data, quick=args.quick)
    print_tables(data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
