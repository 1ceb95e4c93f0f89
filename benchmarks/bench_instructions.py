"""CPU work per site counted in instructions (valgrind), which a noisy machine cannot blur.

On a shared VM the clock speed drifts by a third within minutes, so a change of a few percent
in CPU per site cannot be seen in wall or CPU time. ``valgrind --tool=cachegrind`` counts the
instructions a process executes, the same from run to run within a fraction of a percent. Each
approach runs twice, on ``SMALL`` and on ``LARGE`` sites, and the difference divided by the
difference in sites is its work per site (start-up, imports and the fixed costs cancel out):

- ``annotate, offline``: ``tracehint annotate --layers raw`` (output redaction included) on
  ``bench_pipeline``'s generated sessions;
- ``annotate, judged``: ``--layers judge --no-cache --concurrency 256`` against the mock judge
  (its own process, not counted) at L = 50 ms;
- ``bare aiohttp``: ``bench_pipeline``'s bare client sending the same number of requests.

The ratio judged / bare aiohttp is the deterministic counterpart of ``bench_pipeline``'s CPU
per judged site against aiohttp's. Memory stalls are not counted: instructions are a proxy
for CPU time, not a measure of it. Needs ``valgrind`` on the PATH (skipped without it); under
valgrind a run is about 30 times slower (a few minutes in all).

    python benchmarks/bench_instructions.py [--quick]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    MockJudgeProcess,
    annotate_command,
    base_parser,
    print_tables,
    table,
    write_result,
)
from bench_pipeline import judged_command, write_sessions

_VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
_BARE = (
    "import sys; sys.path.insert(0, sys.argv[1]); import anyio, bench_pipeline; "
    "anyio.run(bench_pipeline.bare, sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), 1500)"
)
CONCURRENCY = 256
LATENCY = 0.05


def instructions(command: list[str]) -> int:
    """The instructions ``command`` executes under valgrind (its own process only)."""
    done = subprocess.run([*_VALGRIND, *command], capture_output=True, text=True, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode not in {0, 1} or found is None:
        raise SystemExit(f"valgrind run failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_site(runs: dict[int, int]) -> int:
    (small, low), (large, high) = sorted(runs.items())
    return round((high - low) / (large - small))


def measure(folder: Path, sizes: tuple[int, int], url: str) -> list[dict[str, Any]]:
    offline: dict[int, int] = {}
    judged: dict[int, int] = {}
    bare: dict[int, int] = {}
    for sites in sizes:
        root = folder / f"sessions-{sites}"
        write_sessions(root, sites)
        out = folder / f"out-{sites}.jsonl"
        offline[sites] = instructions(annotate_command([root], out, "--layers", "raw"))
        judged[sites] = instructions(judged_command(root, out, url, CONCURRENCY))
        bare[sites] = instructions(
            [sys.executable, "-c", _BARE, str(BENCH_DIR), url, str(CONCURRENCY), str(sites)]
        )
        print(f"{sites} sites: {offline[sites]:,} / {judged[sites]:,} / {bare[sites]:,}")
    aiohttp = per_site(bare)
    rows = []
    for name, runs in (
        ("annotate, offline (--layers raw)", offline),
        ("annotate, judged (--layers judge)", judged),
        ("bare aiohttp, one request", bare),
    ):
        work = per_site(runs)
        rows.append(
            {
                "approach": name,
                "small": runs[sizes[0]],
                "large": runs[sizes[1]],
                "per_site": work,
                "vs_aiohttp": round(work / aiohttp, 2),
            }
        )
    return rows


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("bench_instructions: skipped (no valgrind on the PATH)")
        return
    sizes = (200, 1000) if args.quick else (500, 2500)
    with (
        tempfile.TemporaryDirectory(prefix="tracehint-bench-instructions-") as name,
        MockJudgeProcess(latency=LATENCY) as server,
    ):
        rows = measure(Path(name), sizes, server.url)
    data = {
        "settings": {"sizes": sizes, "concurrency": CONCURRENCY, "latency_s": LATENCY},
        "rows": rows,
        "tables": [
            table(
                f"Instructions per site (valgrind; {sizes[1]} sites less {sizes[0]})",
                {
                    "approach": "approach",
                    "small": f"instructions, {sizes[0]}",
                    "large": f"instructions, {sizes[1]}",
                    "per_site": "per site",
                    "vs_aiohttp": "/ bare aiohttp request",
                },
                rows,
            )
        ],
        "targets": [],
    }
    write_result("bench_instructions", data, quick=args.quick)
    print_tables(data)


if __name__ == "__main__":
    main()
