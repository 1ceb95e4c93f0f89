"""``tracehint bench``: measure a judge deployment or the pipeline."""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from tracehint._annotator import AnnotatorConfig
from tracehint._cli._common import EXIT_OK
from tracehint._exceptions import ConfigError
from tracehint._judge import JudgeConfig

if TYPE_CHECKING:
    import argparse


def add_parser(commands: Any) -> None:  # noqa: ANN401 -- argparse's private subparsers type
    bench = commands.add_parser("bench", help="measure your judge deployment or the pipeline")
    kinds = bench.add_subparsers(dest="bench", required=True, metavar="WHAT")
    judge = kinds.add_parser(
        "judge",
        help="requests/s and latency of a judge endpoint at several concurrency levels",
    )
    judge.add_argument("--judge-url", required=True, help="base URL, e.g. http://localhost:8000/v1")
    judge.add_argument("--judge-model", required=True, help="model name the endpoint serves")
    judge.add_argument(
        "--concurrency",
        default="1,8,32,128,256",
        help="comma-separated levels",
    )
    judge.add_argument("--requests", type=int, default=256, help="requests per level")
    judge.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per attempt")
    judge.add_argument(
        "--transport",
        choices=["aiohttp", "httpx-aiohttp", "httpx"],
        default="aiohttp",
        help="HTTP client",
    )
    judge.add_argument("--json", action="store_true", help="print JSON instead of a table")
    judge.add_argument("--plot", metavar="FILE.png", help="write a throughput/latency plot")
    pipeline = kinds.add_parser(
        "pipeline",
        help="end-to-end sites/s and hints/s on your sessions, cold and warm cache",
    )
    pipeline.add_argument("paths", nargs="+", metavar="PATH")
    pipeline.add_argument("--judge-url", help="your judge (default: the built-in mock judge)")
    pipeline.add_argument("--judge-model", default="mock-judge", help="model name")
    pipeline.add_argument("--mock-latency", type=float, default=0.05, help="mock judge latency (s)")
    pipeline.add_argument(
        "--concurrency", type=int, default=64, help="judge requests in flight at most"
    )
    pipeline.add_argument("--layers", default="judge", help="hint layers (default: judge)")
    pipeline.add_argument("--json", action="store_true", help="print JSON instead of a table")


_JUDGE_COLUMNS = {
    "concurrency": "C",
    "requests_per_second": "req/s",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "p99_ms": "p99 ms",
    "errors": "errors",
    "efficiency": "vs C/L",
    "client_cpu_ms_per_request": "cpu ms/req",
}


_PIPELINE_COLUMNS = {
    "run": "run",
    "sites": "sites",
    "seconds": "s",
    "sites_per_second": "sites/s",
    "hints_per_second": "hints/s",
    "judge_requests": "requests",
    "cache_hits": "cache hits",
    "failures": "failures",
}


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {n}" for k, n in value.items()) or "0"
    return str(value)


def _table(
    title: str, rows: list[dict[str, Any]], columns: dict[str, str], *, as_json: bool
) -> None:
    if as_json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())  # noqa: T201 -- CLI output
        return
    from rich.console import Console  # noqa: PLC0415 -- only for tables
    from rich.table import Table  # noqa: PLC0415 -- only for tables

    table = Table(title=title)
    for header in columns.values():
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key in columns))
    Console().print(table)


async def run(args: argparse.Namespace) -> int:
    from tracehint._bench import bench_judge, bench_pipeline, plot_judge  # noqa: PLC0415 -- only here

    if args.bench == "judge":
        try:
            levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
        except ValueError as exc:
            raise ConfigError(f"--concurrency must be integers like 1,8,32: {exc}") from exc
        config = JudgeConfig.from_env(
            url=args.judge_url,
            model=args.judge_model,
            timeout=args.judge_timeout,
            transport=args.transport,
        )
        rows = await bench_judge(config, levels, args.requests)
        _table(
            f"judge {args.judge_url} ({args.judge_model})", rows, _JUDGE_COLUMNS, as_json=args.json
        )
        busy = [r for r in rows if (r["client_cpu_share"] or 0) > 0.8]
        if busy:
            print(  # noqa: T201 -- CLI output
                "tracehint: warning: the client used over 80% of a CPU core at concurrency "
                f"{', '.join(str(r['concurrency']) for r in busy)}: the client, not the judge, "
                "may be the bottleneck there",
                file=sys.stderr,
            )
        if args.plot:
            await anyio.to_thread.run_sync(plot_judge, rows, args.plot)
        return EXIT_OK
    async with AsyncExitStack() as stack:
        url = args.judge_url
        if url is None:
            from tracehint._mockjudge import MockJudge, MockJudgeConfig  # noqa: PLC0415 -- only here

            mock = await stack.enter_async_context(
                MockJudge(MockJudgeConfig(latency=args.mock_latency)),
            )
            url = mock.url
        judge = JudgeConfig.from_env(url=url, model=args.judge_model, concurrency=args.concurrency)
        layers = tuple(x.strip() for x in args.layers.split(","))
        rows = await bench_pipeline(args.paths, AnnotatorConfig(layers=layers, judge=judge))
    _table("pipeline", rows, _PIPELINE_COLUMNS, as_json=args.json)
    return EXIT_OK
