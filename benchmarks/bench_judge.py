"""Judge client throughput: tracehint's JudgeClient vs bare aiohttp vs stock httpx.

All three clients post the same JSON bodies (built from ``sample_prompts``) to the same mock
judge, which runs in its own process (``tracehint mock-judge --port 0``) so its CPU does not
share the client's event loop. Each cell (latency L, concurrency C) runs a pool of C workers
and is repeated twice with the client order rotated; the better of the two runs is kept.

Reported per cell: requests/s, the Little's-law bound C/L (L measured at C = 1 with the bare
aiohttp client), efficiency against the bound, the ratio to bare aiohttp, p50/p95 latency,
client CPU ms per request (``time.process_time`` deltas in this process), the mock server's
CPU share (to see when the server, not the client, is the limit) and errors.

    python benchmarks/bench_judge.py [--quick]
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import httpx
import orjson
from _common import MockJudgeProcess, base_parser, print_tables, table, target, write_result

from tracehint import JudgeClient, JudgeConfig, JudgeReply, RetryPolicy
from tracehint._bench import sample_prompts

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MODEL = "mock-judge"
MAX_TOKENS = 160
CLIENTS = ("tracehint", "aiohttp", "httpx")
HEADERS = {"Content-Type": "application/json"}


@dataclass(slots=True)
class Cell:
    """One run of one client at one (latency, concurrency)."""

    client: str
    latency: float
    concurrency: int
    sent: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: int) -> float | None:
        if len(self.latencies) < 2:
            return round(self.latencies[0] * 1000, 2) if self.latencies else None
        return round(
            statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000, 2
        )


def body(messages: list[dict[str, str]]) -> bytes:
    """The request body every client sends (the same fields JudgeClient sends)."""
    return orjson.dumps(
        {"model": MODEL, "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0.0},
    )


def check_reply(status: int, content: bytes) -> str | None:
    """``None`` for a usable chat completion, else a short error reason."""
    if status != 200:
        return f"http_{status}"
    try:
        data = orjson.loads(content)
        text = data["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return "malformed"
    return None if isinstance(text, str) and text else "empty"


async def drive(
    cell: Cell,
    send: Callable[[list[dict[str, str]]], Awaitable[str | None]],
    prompts: list[list[dict[str, str]]],
    deadline_seconds: float,
    server: MockJudgeProcess,
) -> None:
    """Run ``len(prompts)`` requests through C workers (stop feeding after the deadline)."""
    position = 0
    server_cpu = server.cpu_seconds()
    cpu = time.process_time()
    started = time.perf_counter()
    stop_at = started + deadline_seconds

    async def worker() -> None:
        nonlocal position
        while position < len(prompts) and time.perf_counter() < stop_at:
            messages = prompts[position]
            position += 1
            begun = time.perf_counter()
            try:
                error = await send(messages)
            except Exception as exc:  # noqa: BLE001 -- every failure is counted, none stops the run
                error = type(exc).__name__
            if error is None:
                cell.latencies.append(time.perf_counter() - begun)
            else:
                cell.errors[error] += 1

    async with anyio.create_task_group() as group:
        for _ in range(cell.concurrency):
            group.start_soon(worker)
    cell.seconds = time.perf_counter() - started
    cell.cpu_seconds = time.process_time() - cpu
    cell.server_cpu_seconds = server.cpu_seconds() - server_cpu
    cell.sent = position


async def run_tracehint(
    cell: Cell, url: str, prompts: list[Any], limit: float, server: MockJudgeProcess
) -> None:
    config = JudgeConfig(
        url=url,
        model=MODEL,
        concurrency=cell.concurrency,
        max_tokens=MAX_TOKENS,
        retry=RetryPolicy(max_attempts=1),
    )
    async with JudgeClient(config) as client:
        await client.preflight()  # as `tracehint annotate` does before its first request

        async def send(messages: list[dict[str, str]]) -> str | None:
            outcome = await client.complete(messages)
            return None if isinstance(outcome, JudgeReply) else outcome.reason

        await drive(cell, send, prompts, limit, server)


async def run_aiohttp(
    cell: Cell, url: str, prompts: list[Any], limit: float, server: MockJudgeProcess
) -> None:
    endpoint = url + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=cell.concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=HEADERS
    ) as session:

        async def send(messages: list[dict[str, str]]) -> str | None:
            async with session.post(endpoint, data=body(messages)) as response:
                return check_reply(response.status, await response.read())

        await drive(cell, send, prompts, limit, server)


async def run_httpx(
    cell: Cell, url: str, prompts: list[Any], limit: float, server: MockJudgeProcess
) -> None:
    endpoint = url + "/chat/completions"
    limits = httpx.Limits(
        max_connections=cell.concurrency, max_keepalive_connections=cell.concurrency
    )
    async with httpx.AsyncClient(
        limits=limits, timeout=60.0, headers=HEADERS, trust_env=False
    ) as client:

        async def send(messages: list[dict[str, str]]) -> str | None:
            response = await client.post(endpoint, content=body(messages))
            return check_reply(response.status_code, response.content)

        await drive(cell, send, prompts, limit, server)


RUNNERS = {"tracehint": run_tracehint, "aiohttp": run_aiohttp, "httpx": run_httpx}


def requests_for(concurrency: int, latency: float, seconds: float) -> int:
    """Enough requests for ``seconds`` of steady state at the Little's-law bound."""
    return max(4 * concurrency, math.ceil(concurrency / latency * seconds))


async def measure(args: Any) -> dict[str, Any]:
    quick: bool = args.quick
    latencies = (0.05, 0.2)
    levels = (16, 64) if quick else (16, 64, 256)
    steady = 1.0 if quick else 3.0
    deadline = 3.0 if quick else 5.0
    repeats = 1 if quick else 2
    base_requests = 8 if quick else 20
    most = max(requests_for(c, min(latencies), steady) for c in levels)
    prompts = sample_prompts(most)

    rows: list[dict[str, Any]] = []
    base_rows: list[dict[str, Any]] = []
    for latency in latencies:
        with MockJudgeProcess(latency=latency) as server:
            # What the mock really delivers at C = 1 (every client, one request at a time).
            base: dict[str, float] = {}
            for client in CLIENTS:
                cell = Cell(client, latency, 1)
                await RUNNERS[client](cell, server.url, prompts[:base_requests], 60.0, server)
                p50 = statistics.median(cell.latencies) if cell.latencies else math.nan
                base[client] = p50
                base_rows.append(
                    {
                        "latency_s": latency,
                        "client": client,
                        "requests": cell.sent,
                        "p50_ms": round(p50 * 1000, 2),
                        "p95_ms": cell.percentile_ms(95),
                        "overhead_ms": round((p50 - latency) * 1000, 2),
                        "errors": dict(cell.errors),
                    },
                )
            measured_latency = base["aiohttp"]
            for concurrency in levels:
                count = requests_for(concurrency, latency, steady)
                best: dict[str, Cell] = {}
                for repeat in range(repeats):
                    order = CLIENTS if repeat % 2 == 0 else tuple(reversed(CLIENTS))
                    for client in order:
                        cell = Cell(client, latency, concurrency)
                        await RUNNERS[client](cell, server.url, prompts[:count], deadline, server)
                        print(
                            f"L={latency} C={concurrency} {client:9} {cell.throughput:8.1f} req/s "
                            f"({len(cell.latencies)} ok, {sum(cell.errors.values())} errors, "
                            f"{cell.seconds:.2f} s)",
                            flush=True,
                        )
                        if client not in best or cell.throughput > best[client].throughput:
                            best[client] = cell
                bound = concurrency / measured_latency
                bare = best["aiohttp"].throughput
                for client in CLIENTS:
                    cell = best[client]
                    rows.append(
                        {
                            "latency_s": latency,
                            "concurrency": concurrency,
                            "client": client,
                            "requests": cell.sent,
                            "ok": len(cell.latencies),
                            "seconds": round(cell.seconds, 3),
                            "requests_per_second": round(cell.throughput, 1),
                            "bound_c_over_l": round(bound, 1),
                            "efficiency": round(cell.throughput / bound, 3),
                            "vs_aiohttp": round(cell.throughput / bare, 3) if bare else None,
                            "p50_ms": cell.percentile_ms(50),
                            "p95_ms": cell.percentile_ms(95),
                            "client_cpu_ms_per_request": round(
                                1000 * cell.cpu_seconds / max(cell.sent, 1), 3
                            ),
                            "client_cpu_share": round(cell.cpu_seconds / cell.seconds, 2),
                            "server_cpu_share": round(cell.server_cpu_seconds / cell.seconds, 2),
                            "errors": dict(cell.errors),
                        },
                    )
    return {
        "rows": rows,
        "base_rows": base_rows,
        "levels": list(levels),
        "latencies": list(latencies),
    }


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ours = [r for r in rows if r["client"] == "tracehint"]
    worst_ratio = min((r["vs_aiohttp"] for r in ours if r["vs_aiohttp"] is not None), default=None)
    worst_efficiency = min((r["efficiency"] for r in ours), default=None)
    return [
        target("judge: tracehint / bare aiohttp, worst cell", worst_ratio, 0.95),
        target("judge: tracehint / Little's-law bound C/L, worst cell", worst_efficiency, 0.9),
    ]


def ratios(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Reference points: how close the bare client itself gets to the bound, per client worst."""
    found: dict[str, float | None] = {}
    for client in CLIENTS:
        mine = [r for r in rows if r["client"] == client]
        found[f"{client}: worst efficiency vs C/L"] = min(
            (r["efficiency"] for r in mine), default=None
        )
        found[f"{client}: worst req/s vs bare aiohttp"] = min(
            (r["vs_aiohttp"] for r in mine if r["vs_aiohttp"] is not None), default=None
        )
    return found


COLUMNS = {
    "latency_s": "L s",
    "concurrency": "C",
    "client": "client",
    "requests_per_second": "req/s",
    "bound_c_over_l": "C/L",
    "efficiency": "vs C/L",
    "vs_aiohttp": "vs aiohttp",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "client_cpu_ms_per_request": "client cpu ms/req",
    "client_cpu_share": "client cpu",
    "server_cpu_share": "server cpu",
    "errors": "errors",
}
BASE_COLUMNS = {
    "latency_s": "L s (set)",
    "client": "client",
    "requests": "requests",
    "p50_ms": "p50 ms",
    "p95_ms": "p95 ms",
    "overhead_ms": "p50 - L ms",
    "errors": "errors",
}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    measured = anyio.run(measure, args, backend="asyncio")
    rows = measured["rows"]
    data = {
        "settings": {
            "latencies": measured["latencies"],
            "levels": measured["levels"],
            "clients": list(CLIENTS),
            "bound_uses": "p50 latency of bare aiohttp at C = 1",
        },
        "rows": rows,
        "base_rows": measured["base_rows"],
        "tables": [
            table("Mock judge latency delivered at C = 1", BASE_COLUMNS, measured["base_rows"]),
            table("Judge client throughput (best of the repeats)", COLUMNS, rows),
        ],
        "targets": targets(rows),
        "ratios": ratios(rows),
    }
    path = write_result("bench_judge", data, quick=args.quick)
    print_tables(data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
