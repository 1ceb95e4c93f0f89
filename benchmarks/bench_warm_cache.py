"""Warm judge cache: a rerun must send no judge request and run at offline speed.

A mock judge (latency 0.05 s) runs in its own process. ``tracehint annotate --layers judge
--cache FILE`` runs on the corpus xN with a fresh cache (cold), then again (warm); the same
input is also annotated with the offline layers (``--layers template,raw``). Sites/s come from
each run's ``--stats-json`` (time inside the pipeline, interpreter start-up excluded); the
process wall time is reported too. The copies hold the same sites, so even the cold run asks
the judge once per distinct prompt and serves the rest from the cache / single flight.

    python benchmarks/bench_warm_cache.py [--quick] [--copies N]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from _common import (
    MockJudgeProcess,
    annotate_command,
    base_parser,
    print_tables,
    replicate_corpus,
    run_measured,
    table,
    target,
    total_bytes,
    warm_page_cache,
    write_result,
)

LATENCY = 0.05


def annotate(root: Path, folder: Path, name: str, *extra: str) -> dict[str, Any]:
    """One ``tracehint annotate`` run; its ``--stats-json`` plus wall time and peak RSS."""
    stats_path = folder / f"{name}.stats.json"
    run = run_measured(
        annotate_command([root], folder / f"{name}.jsonl", "--stats-json", str(stats_path), *extra),
    )
    if run["returncode"] != 0:
        raise SystemExit(f"tracehint annotate ({name}) failed: {run['stderr']}")
    stats: dict[str, Any] = orjson.loads(stats_path.read_bytes())
    judge = stats.get("judge", {})
    elapsed = stats["elapsed_seconds"]
    return {
        "run": name,
        "sites": stats["sites"],
        "hints": sum(stats["hints_by_source"].values()),
        "hints_by_source": stats["hints_by_source"],
        "pipeline_seconds": elapsed,
        "wall_seconds": round(run["wall_seconds"], 3),
        "sites_per_second": round(stats["sites"] / elapsed, 1) if elapsed else None,
        "judge_requests": judge.get("requests"),
        "cache_hits": judge.get("cache_hits"),
        "single_flight_shared": judge.get("single_flight_shared"),
        "judge_failures": judge.get("failures"),
        "peak_rss_mb": run["peak_rss_mb"],
    }


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, help="corpus copies (default 5, quick 1)")
    parser.add_argument(
        "--repeats", type=int, help="warm and offline runs each, best kept (default 3)"
    )
    args = parser.parse_args()
    copies = args.copies or (1 if args.quick else 5)
    repeats = args.repeats or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory(prefix="tracehint-bench-cache-") as name:
        folder = Path(name)
        root = folder / "corpus"
        paths = replicate_corpus(args.corpus, root, copies)
        warm_page_cache(paths)
        size = total_bytes(paths)
        cache = str(folder / "cache.sqlite3")
        with MockJudgeProcess(latency=LATENCY) as server:
            judge = [
                "--judge-url",
                server.url,
                "--judge-model",
                "mock-judge",
                "--layers",
                "judge",
                "--cache",
                cache,
            ]
            cold = annotate(root, folder, "cold", *judge)
            print(
                f"cold     {cold['sites_per_second']} sites/s, {cold['judge_requests']} requests",
                flush=True,
            )
            warm_runs: list[dict[str, Any]] = []
            offline_runs: list[dict[str, Any]] = []
            for _ in range(repeats):
                warm_runs.append(annotate(root, folder, "warm", *judge))
                offline_runs.append(annotate(root, folder, "offline", "--layers", "template,raw"))
                print(
                    f"warm     {warm_runs[-1]['sites_per_second']} sites/s, "
                    f"{warm_runs[-1]['judge_requests']} requests; "
                    f"offline  {offline_runs[-1]['sites_per_second']} sites/s",
                    flush=True,
                )

    def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return min(runs, key=lambda r: r["pipeline_seconds"])

    warm, offline = best(warm_runs), best(offline_runs)
    warm_requests = max(r["judge_requests"] or 0 for r in warm_runs)
    warm["judge_requests"] = warm_requests
    rows = [cold, warm, offline]
    speed = warm["sites_per_second"] / offline["sites_per_second"]
    data = {
        "settings": {
            "copies": copies,
            "files": len(paths),
            "bytes": size,
            "mock_latency": LATENCY,
            "repeats": repeats,
            "concurrency": 64,
        },
        "rows": rows,
        "warm_runs": warm_runs,
        "offline_runs": offline_runs,
        "ratios": {
            "warm sites/s / offline sites/s": round(speed, 3),
            "warm sites/s / cold sites/s": round(
                warm["sites_per_second"] / cold["sites_per_second"], 3
            ),
            "cold judge requests / sites": round(
                (cold["judge_requests"] or 0) / max(cold["sites"], 1), 3
            ),
        },
        "tables": [
            table(
                f"Judge cache, corpus x{copies} ({size / 1e6:.0f} MB), mock judge L = {LATENCY} s",
                {
                    "run": "run",
                    "sites": "sites",
                    "hints": "hints",
                    "pipeline_seconds": "pipeline s",
                    "wall_seconds": "wall s",
                    "sites_per_second": "sites/s",
                    "judge_requests": "judge requests",
                    "cache_hits": "cache hits",
                    "single_flight_shared": "shared in flight",
                    "judge_failures": "failures",
                },
                rows,
            ),
        ],
        "targets": [
            target(
                "warm cache: judge requests sent by the warm runs", warm_requests, 0, at_least=False
            ),
            target("warm cache: warm sites/s / offline sites/s", speed, 0.9),
        ],
    }
    path = write_result("bench_warm_cache", data, quick=args.quick)
    print_tables(data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
