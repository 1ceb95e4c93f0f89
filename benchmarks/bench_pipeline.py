"""The whole pipeline with a judge against a bare aiohttp client, on one loopback judge.

Generated Claude Code sessions hold N error sites, every one different (so no cache hit and no
shared prompt): ``tracehint annotate --layers judge --no-cache --concurrency C`` reads them,
tags, builds prompts, redacts, asks the mock judge (its own process, latency L) and writes the
traces; a bare ``aiohttp`` client sends the same number of requests (bodies of the same size)
with C workers to the same mock. Both rates are requests per second of their own run (the
pipeline's from its ``--stats-json``: judge requests / pipeline seconds, interpreter start-up
left out); the ratio per cell is the target. Also the pipeline's CPU per judged site (the
run's ``cpu_seconds`` from the same ``--stats-json``: every thread, start-up left out).

    python benchmarks/bench_pipeline.py [--quick]
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
from _common import (
    MockJudgeProcess,
    annotate_command,
    base_parser,
    print_tables,
    run_measured,
    table,
    target,
    write_result,
)

SITES_PER_SESSION = 20
HEADERS = {"Content-Type": "application/json"}


def _entry(kind: str, uuid: str, parent: str | None, content: object, msg: str = "") -> bytes:
    message: dict[str, Any] = {"role": kind, "content": content}
    if kind == "assistant":
        message["id"] = msg or f"m-{uuid}"
        message["model"] = "claude-bench"
    return orjson.dumps(
        {
            "type": kind,
            "uuid": uuid,
            "parentUuid": parent,
            "sessionId": "bench",
            "cwd": "/home/dev/project",
            "message": message,
        }
    )


def write_sessions(folder: Path, sites: int) -> int:
    """Sessions of ``SITES_PER_SESSION`` failed commands, each error different; the files."""
    folder.mkdir(parents=True)
    files = math.ceil(sites / SITES_PER_SESSION)
    number = 0
    for file in range(files):
        lines = [_entry("user", f"u{file}", None, "Make the build pass and run the tests.")]
        parent = f"u{file}"
        for step in range(SITES_PER_SESSION):
            number += 1
            call, result, reply = f"a{file}-{step}", f"r{file}-{step}", f"b{file}-{step}"
            command = f"npm run build -- --target=module{number}"
            use = {
                "type": "tool_use",
                "id": f"t{number}",
                "name": "Bash",
                "input": {"command": command},
            }
            lines.append(_entry("assistant", call, parent, [use]))
            error = (
                f"Exit code 2\nsrc/module{number}.ts({number % 300 + 1},{number % 40 + 1}): "
                f"error TS2322: Type 'string' is not assignable to type 'Widget{number}'.\n"
                f"Found 1 error in src/module{number}.ts:{number % 300 + 1}"
            )
            block = {
                "type": "tool_result",
                "tool_use_id": f"t{number}",
                "content": error,
                "is_error": True,
            }
            lines.append(_entry("user", result, call, [block]))
            text = {"type": "text", "text": f"The type of Widget{number} is wrong; fixing it."}
            lines.append(_entry("assistant", reply, result, [text]))
            parent = reply
        (folder / f"session-{file:05}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return files


def judged_command(root: Path, output: Path, url: str, concurrency: int, *extra: str) -> list[str]:
    """``tracehint annotate --layers judge --no-cache`` against the mock judge at ``url``."""
    return annotate_command(
        [root],
        output,
        "--layers",
        "judge",
        "--no-cache",
        "--judge-url",
        url,
        "--judge-model",
        "mock-judge",
        "--concurrency",
        str(concurrency),
        *extra,
    )


def pipeline(root: Path, folder: Path, url: str, concurrency: int) -> dict[str, Any]:
    stats_path = folder / "stats.json"
    command = judged_command(
        root, folder / "out.jsonl", url, concurrency, "--stats-json", str(stats_path)
    )
    run = run_measured(command)
    if run["returncode"] not in {0, 1}:
        raise SystemExit(f"tracehint annotate failed: {run['stderr']}")
    stats = orjson.loads(stats_path.read_bytes())
    requests = stats["judge"]["requests"]
    seconds = stats["elapsed_seconds"]
    return {
        "requests": requests,
        "seconds": seconds,
        "rate": requests / seconds if seconds else 0.0,
        # The run's own CPU (from its --stats-json: interpreter start-up and imports left out).
        "cpu_ms_per_site": 1000 * stats["cpu_seconds"] / max(1, stats["sites"]),
        "failed": sum(stats["judge"].get("failures", {}).values()),
    }


async def bare(url: str, concurrency: int, requests: int, size: int) -> dict[str, Any]:
    """``requests`` chat completions with ``concurrency`` workers over one aiohttp session."""
    endpoint = url + "/chat/completions"
    padding = "x" * max(0, size - 200)
    connector = aiohttp.TCPConnector(limit=concurrency)
    sent = 0
    errors = 0
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:

        async def worker() -> None:
            nonlocal sent, errors
            while sent < requests:
                sent += 1
                body = orjson.dumps(
                    {
                        "model": "mock-judge",
                        "messages": [
                            {"role": "system", "content": "You write hints."},
                            {"role": "user", "content": f"site {sent} {padding}"},
                        ],
                        "max_tokens": 160,
                        "temperature": 0.0,
                    }
                )
                async with session.post(endpoint, data=body) as response:
                    data = await response.read()
                    if response.status != 200 or b"choices" not in data:
                        errors += 1

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker)
        seconds = time.perf_counter() - started
    return {"requests": requests, "seconds": seconds, "rate": requests / seconds, "errors": errors}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="steady-state seconds per cell (default 3)")
    args = parser.parse_args()
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    cells = [(0.05, 64), (0.05, 256), (0.2, 64), (0.2, 256)]
    rows: list[dict[str, Any]] = []
    for latency, concurrency in cells:
        sites = max(4 * concurrency, math.ceil(concurrency / latency * seconds))
        with tempfile.TemporaryDirectory(prefix="tracehint-bench-pipeline-") as name:
            folder = Path(name)
            root = folder / "sessions"
            files = write_sessions(root, sites)
            with MockJudgeProcess(latency=latency) as server:
                ours = pipeline(root, folder, server.url, concurrency)
                theirs = anyio.run(bare, server.url, concurrency, ours["requests"], 1500)
        ratio = ours["rate"] / theirs["rate"] if theirs["rate"] else None
        row = {
            "latency_s": latency,
            "concurrency": concurrency,
            "sessions": files,
            "requests": ours["requests"],
            "pipeline_rps": round(ours["rate"], 1),
            "aiohttp_rps": round(theirs["rate"], 1),
            "ratio": None if ratio is None else round(ratio, 3),
            "pipeline_cpu_ms_per_site": round(ours["cpu_ms_per_site"], 3),
            "errors": ours["failed"] + theirs["errors"],
        }
        rows.append(row)
        print(row, flush=True)
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    cpu = max(r["pipeline_cpu_ms_per_site"] for r in rows)
    data = {
        "settings": {"cells": cells, "seconds": seconds, "sites_per_session": SITES_PER_SESSION},
        "rows": rows,
        "tables": [
            table(
                "annotate with a judge vs a bare aiohttp client (same mock judge, same requests)",
                {
                    "latency_s": "L s",
                    "concurrency": "C",
                    "sessions": "sessions",
                    "requests": "requests",
                    "pipeline_rps": "annotate req/s",
                    "aiohttp_rps": "aiohttp req/s",
                    "ratio": "annotate / aiohttp",
                    "pipeline_cpu_ms_per_site": "annotate CPU ms/site",
                    "errors": "errors",
                },
                rows,
            )
        ],
        "targets": [
            target("pipeline: annotate / bare aiohttp req/s, worst cell", min(ratios), 0.95),
            target("pipeline: CPU ms per judged site, worst cell", cpu, 0.2, at_least=False),
        ],
    }
    write_result("bench_pipeline", data, quick=args.quick)
    print_tables(data)


if __name__ == "__main__":
    main()
