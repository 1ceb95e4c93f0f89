"""Local vs Ray Data on this machine: Ray's overhead per session, offline and with a judge.

Runs ``tracehint annotate`` on the corpus xN locally and with ``--engine ray`` (a local Ray
instance with 2 CPUs, started by the run and counted in its wall time), offline
(``--layers template,raw``) and with the mock judge (``--layers judge``, latency 50 ms, a cold
cache each time). Start-up is measured apart, as the same two commands on one session: Ray's
start-up is (ray wall - local wall) there (``ray.init``, the actor pool's processes, the first
call, ``ray.shutdown``). The overhead per session is then
((ray - local) on xN - start-up) / (sessions - 1), and the target compares it with the local
cost of a session, (local on xN - local on one) / (sessions - 1). ``ray.init`` +
``ray.shutdown`` alone in a fresh process is reported too. Each run is repeated and the
fastest kept.

On one 2-core machine Ray can only add overhead; what it buys is more machines. With a judge,
throughput is C x actors / L per cluster (Little's law), so it grows with nodes until the
judge's capacity, not the client, is the limit.

    python benchmarks/bench_ray.py [--quick]
"""

from __future__ import annotations

import importlib.util
import shutil
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
    target,
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


def best_of(repeats: int, run: Any, *args: Any) -> tuple[float, dict[str, Any]]:
    """The fastest of ``repeats`` runs."""
    return min((run(*args) for _ in range(repeats)), key=lambda found: found[0])


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, help="corpus copies (default 10, quick 3)")
    parser.add_argument("--repeats", type=int, help="runs per measurement (default 2, quick 1)")
    args = parser.parse_args()
    if importlib.util.find_spec("ray") is None:
        print("ray is not installed: pip install 'tracehint[ray]'; skipped")
        return
    copies = args.copies or (3 if args.quick else 10)
    repeats = args.repeats or (1 if args.quick else 2)
    init_runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", _RAY_STARTUP], capture_output=True, check=True)
        init_runs.append(time.perf_counter() - started)
    ray_init = min(init_runs)
    rows: list[dict[str, Any]] = []
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tracehint-bench-ray-") as folder:
        base = Path(folder)
        files = replicate_corpus(args.corpus, base / "corpus", copies)
        one = base / "one"
        one.mkdir()
        shutil.copy(max(files, key=lambda path: path.stat().st_size), one / "session.jsonl")
        megabytes = total_bytes(files) / 1e6
        with MockJudgeProcess(latency=0.05) as judge:
            for layers, url in (("template,raw", None), ("judge", judge.url)):
                measured = {
                    (engine, size): best_of(repeats, run_one, engine, root, base, layers, url)
                    for engine in ("local", "ray")
                    for size, root in (("one", one), ("all", base / "corpus"))
                }
                local_s, local_stats = measured["local", "all"]
                ray_s, ray_stats = measured["ray", "all"]
                startup = measured["ray", "one"][0] - measured["local", "one"][0]
                sessions = len(files)
                per_session = (local_s - measured["local", "one"][0]) / (sessions - 1)
                overhead = (ray_s - local_s - startup) / (sessions - 1)
                ratios.append(overhead / per_session)
                print(
                    f"{layers:13} local {local_s:6.2f} s, ray {ray_s:6.2f} s, start-up "
                    f"{startup:5.2f} s, overhead {overhead * 1000:5.2f} ms/session "
                    f"({overhead / per_session:.2f}x local)",
                    flush=True,
                )
                for engine, (seconds, stats) in (("local", (local_s, local_stats)),
                                                  ("ray", (ray_s, ray_stats))):  # fmt: skip
                    rows.append(
                        {
                            "layers": layers,
                            "engine": engine,
                            "files": sessions,
                            "traces": stats["traces"],
                            "sites": stats["sites"],
                            "same_traces": stats["traces"] == local_stats["traces"]
                            and stats["sites"] == local_stats["sites"],
                            "wall_seconds": round(seconds, 2),
                            "sessions_per_second": round(sessions / seconds, 1),
                            "judge_requests": stats.get("judge", {}).get("requests"),
                            "startup_seconds": round(startup, 2) if engine == "ray" else None,
                            "ms_per_session": round(1000 * per_session, 2)
                            if engine == "local"
                            else None,
                            "ray_overhead_ms_per_session": round(overhead * 1000, 2)
                            if engine == "ray"
                            else None,
                            "overhead_vs_local": round(overhead / per_session, 2)
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
            "repeats": repeats,
        },
        "ray_init_shutdown_seconds": round(ray_init, 2),
        "rows": rows,
        "tables": [
            table(
                f"Local vs Ray Data, corpus x{copies} ({megabytes:.0f} MB); Ray start-up "
                f"(one session, ray - local) apart; ray.init + shutdown alone {ray_init:.1f} s",
                {
                    "layers": "layers",
                    "engine": "engine",
                    "files": "files",
                    "traces": "traces",
                    "sites": "sites",
                    "same_traces": "same counts",
                    "wall_seconds": "wall s",
                    "sessions_per_second": "sessions/s",
                    "judge_requests": "judge requests",
                    "startup_seconds": "Ray start-up s",
                    "ms_per_session": "local ms/session",
                    "ray_overhead_ms_per_session": "Ray overhead ms/session",
                    "overhead_vs_local": "overhead / local",
                },
                rows,
            ),
        ],
        "targets": [
            target(
                "ray: overhead per session / local cost per session, worst",
                max(ratios),
                2.0,
                at_least=False,
            ),
        ],
    }
    path = write_result("bench_ray", data, quick=args.quick)
    print_tables(data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
