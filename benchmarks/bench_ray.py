"""Local vs Ray Data on this machine: Ray's overhead per session, offline and with a judge.

Runs ``tracehint annotate`` on the corpus xN once locally and once with ``--engine ray`` (a
local Ray instance, started by the run and counted in its wall time), offline
(``--layers template,raw``) and with the mock judge (``--layers judge``, latency 50 ms, a cold
cache each time). Ray's start-up is measured on its own (``ray.init`` + ``ray.shutdown`` in a
fresh process), so the overhead per session is (ray - local - start-up) / files.

On one 2-core machine Ray can only add overhead; what it buys is more machines. With a judge,
throughput is C x actors / L per cluster (Little's law), so it grows with nodes until the
judge's capacity, not the client, is the limit.

    python benchmarks/bench_ray.py [--quick]
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from _common import (
    TRACEHINT_CLI,
    MockJudgeProcess,
    base_parser,
    print_tables,
    replicate_corpus,
    table,
    total_bytes,
    write_result,
)

_RAY_STARTUP = "import ray; ray.init(num_cpus=2, include_dashboard=False); ray.shutdown()"


def timed(command: list[str]) -> tuple[float, dict[str, Any]]:
    """Wall seconds of ``command`` and the ``--stats-json`` it wrote (last argument)."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.decode()[-2000:]}")
    stats: dict[str, Any] = orjson.loads(Path(command[-1]).read_bytes())
    return seconds, stats


def run_one(
    engine: str, root: Path, base: Path, layers: str, judge_url: str | None
) -> tuple[float, dict[str, Any]]:
    label = f"{engine}-{layers.replace(',', '-')}"
    output = base / (f"{label}.jsonl" if engine == "local" else label)
    cache = base / f"{label}.sqlite3"
    cache.unlink(missing_ok=True)
    command = [
        *TRACEHINT_CLI, "annotate", str(root), "-o", str(output), "--overwrite",
        "--no-progress", "-q", "--layers", layers, "--engine", engine, "--cache", str(cache),
    ]  # fmt: skip
    if judge_url is not None:
        command += ["--judge-url", judge_url, "--judge-model", "mock-judge"]
    return timed([*command, "--stats-json", str(base / f"{label}.stats.json")])


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, help="corpus copies (default 10, quick 3)")
    args = parser.parse_args()
    if importlib.util.find_spec("ray") is None:
        print("ray is not installed: pip install 'tracehint[ray]'; skipped")
        return
    copies = args.copies or (3 if args.quick else 10)
    startup_runs = []
    for _ in range(1 if args.quick else 2):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", _RAY_STARTUP], capture_output=True, check=True)
        startup_runs.append(time.perf_counter() - started)
    startup = min(startup_runs)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tracehint-bench-ray-") as folder:
        base = Path(folder)
        files = replicate_corpus(args.corpus, base / "corpus", copies)
        megabytes = total_bytes(files) / 1e6
        with MockJudgeProcess(latency=0.05) as judge:
            for layers, url in (("template,raw", None), ("judge", judge.url)):
                measured = {
                    engine: run_one(engine, base / "corpus", base, layers, url)
                    for engine in ("local", "ray")
                }
                local_s, local_stats = measured["local"]
                for engine, (seconds, stats) in measured.items():
                    overhead = (seconds - local_s - startup) / len(files) if engine == "ray" else 0
                    print(f"{layers:13} {engine:5} {seconds:7.2f} s", flush=True)
                    rows.append(
                        {
                            "layers": layers,
                            "engine": engine,
                            "files": len(files),
                            "traces": stats["traces"],
                            "sites": stats["sites"],
                            "same_traces": stats["traces"] == local_stats["traces"]
                            and stats["sites"] == local_stats["sites"],
                            "wall_seconds": round(seconds, 2),
                            "sessions_per_second": round(len(files) / seconds, 1),
                            "sites_per_second": round(stats["sites"] / seconds, 1),
                            "judge_requests": stats.get("judge", {}).get("requests"),
                            "ray_overhead_ms_per_session": round(overhead * 1000, 1)
                            if engine == "ray"
                            else None,
                        },
                    )
    data = {
        "settings": {
            "copies": copies,
            "files": rows[0]["files"],
            "input_mb": round(megabytes, 1),
            "mock_latency": 0.05,
            "ray_num_cpus": 2,
        },
        "ray_startup_seconds": round(startup, 2),
        "rows": rows,
        "tables": [
            table(
                f"Local vs Ray Data, corpus x{copies} ({megabytes:.0f} MB); Ray start-up "
                f"{startup:.1f} s counted in the Ray wall times",
                {
                    "layers": "layers",
                    "engine": "engine",
                    "files": "files",
                    "traces": "traces",
                    "sites": "sites",
                    "same_traces": "same counts",
                    "wall_seconds": "wall s",
                    "sessions_per_second": "sessions/s",
                    "sites_per_second": "sites/s",
                    "judge_requests": "judge requests",
                    "ray_overhead_ms_per_session": "Ray overhead ms/session",
                },
                rows,
            ),
        ],
        "targets": [],
    }
    path = write_result("bench_ray", data, quick=args.quick)
    print_tables(data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
