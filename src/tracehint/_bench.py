"""``tracehint bench``: how fast is the user's judge deployment, and the pipeline on their data.

``bench judge`` drives an endpoint with realistic hint prompts at several concurrency levels
and reports throughput, latency percentiles, errors, and efficiency against Little's law
(throughput ≈ C / L, with L the latency measured at C = 1). ``bench pipeline`` runs the whole
pipeline on the user's sessions with a cold and then a warm cache.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from tracehint._annotator import Annotator, AnnotatorConfig
from tracehint._exceptions import ConfigError
from tracehint._judge import JudgeClient, JudgeConfig, JudgeReply, RetryPolicy
from tracehint._kinds import ErrorKind
from tracehint._output import MemorySink
from tracehint._pipeline import annotate_files
from tracehint._prompt import build_prompt
from tracehint._records import ErrorSite, HintRequest
from tracehint._stats import RunStats

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["JudgeLevel", "bench_judge", "bench_pipeline", "plot_judge", "sample_prompts"]

# Error sites shaped like the real corpus (kinds, tools, messages), to make realistic prompts.
_SAMPLES: tuple[tuple[ErrorKind, str, str, str], ...] = (
    (
        ErrorKind.FILE_NOT_READ,
        "Write",
        '{"file_path":"/src/app/page.tsx"}',
        "File has not been read yet. Read it first before writing to it.",
    ),
    (
        ErrorKind.COMMAND_FAILED,
        "Bash",
        '{"command":"uv run pytest -x"}',
        (
            "Exit code 1\n=== test session starts ===\n"
            "FAILED test/test_parser.py::test_summary - AssertionError: assert 3 == 4"
        ),
    ),
    (
        ErrorKind.STRING_NOT_FOUND,
        "Edit",
        '{"file_path":"/next.config.js","old_string":"buildCommand"}',
        'String to replace not found in file.\nString:     "buildCommand": "npm run build",',
    ),
    (
        ErrorKind.FILE_NOT_FOUND,
        "Bash",
        '{"command":"ls types/"}',
        "ls: cannot access 'types/': No such file or directory",
    ),
    (
        ErrorKind.COMMAND_NOT_FOUND,
        "Bash",
        '{"command":"pytest"}',
        "Exit code 127\n/bin/bash: line 1: pytest: command not found",
    ),
    (
        ErrorKind.WEB_FETCH_FAILED,
        "WebFetch",
        '{"url":"https://example.com/docs"}',
        "Request failed with status code 404",
    ),
    (
        ErrorKind.INPUT_VALIDATION,
        "Task",
        '{"description":"Explore"}',
        "InputValidationError: The required parameter `prompt` is missing",
    ),
)


def sample_prompts(count: int) -> list[list[dict[str, str]]]:
    """``count`` distinct, realistic judge prompts (distinct so no layer can deduplicate them)."""
    prompts: list[list[dict[str, str]]] = []
    for i in range(count):
        kind, tool, tool_input, message = _SAMPLES[i % len(_SAMPLES)]
        site = ErrorSite(
            kind=kind,
            error_message=f"{message}\n(run {i})",
            tool_use_id=f"toolu_bench_{i}",
            tool_name=tool,
            tool_input=tool_input,
            tool_target=None,
            source_content_excerpt=message[:200],
        )
        request = HintRequest(site, "Let me try that again with a different approach.", (tool,))
        prompts.append(build_prompt(request).messages())
    return prompts


@dataclass(slots=True)
class JudgeLevel:
    """Measurements at one concurrency level."""

    concurrency: int
    requests: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        """Latency percentile in seconds (``q`` in 0..100)."""
        if not self.latencies:
            return None
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1]

    def to_dict(self, base_latency: float | None) -> dict[str, Any]:
        """JSON-ready results; efficiency against Little's law when C=1 latency is known."""
        bound = self.concurrency / base_latency if base_latency else None
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "ok": len(self.latencies),
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.throughput, 1),
            "p50_ms": _ms(self.percentile(50)),
            "p95_ms": _ms(self.percentile(95)),
            "p99_ms": _ms(self.percentile(99)),
            "errors": dict(self.errors),
            "littles_law_bound": round(bound, 1) if bound else None,
            "efficiency": round(self.throughput / bound, 3) if bound else None,
            "client_cpu_ms_per_request": round(1000 * self.cpu_seconds / max(self.requests, 1), 3),
            "client_cpu_share": round(self.cpu_seconds / self.seconds, 3) if self.seconds else None,
        }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 2) if seconds is not None else None


async def _level(config: JudgeConfig, concurrency: int, requests: int) -> JudgeLevel:
    level_config = replace(config, concurrency=concurrency, retry=RetryPolicy(max_attempts=1))
    prompts = sample_prompts(requests)
    result = JudgeLevel(concurrency, requests, 0.0)
    send, receive = anyio.create_memory_object_stream[list[dict[str, str]]](0)

    async def worker(receive_end: anyio.abc.ObjectReceiveStream[list[dict[str, str]]]) -> None:
        async with receive_end:
            async for messages in receive_end:
                started = time.perf_counter()
                outcome = await client.complete(messages)
                if isinstance(outcome, JudgeReply):
                    result.latencies.append(time.perf_counter() - started)
                else:
                    result.errors[outcome.reason] += 1

    async with JudgeClient(level_config) as client:
        await client.preflight()  # as `annotate` does: a misconfigured judge stops here
        cpu = time.process_time()
        started = time.perf_counter()
        async with anyio.create_task_group() as group, send, receive:
            for _ in range(concurrency):
                group.start_soon(worker, receive.clone())
            for messages in prompts:
                await send.send(messages)
        result.seconds = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu
    return result


async def bench_judge(
    config: JudgeConfig,
    levels: Sequence[int],
    requests: int,
) -> list[dict[str, Any]]:
    """Measure the judge at each concurrency level (C = 1 first, for the base latency)."""
    if any(c < 1 for c in levels):
        raise ConfigError("--concurrency levels must be positive integers")
    results: list[dict[str, Any]] = []
    base = await _level(config, 1, max(min(requests, 20), 5))
    base_latency = base.percentile(50)
    for concurrency in levels:
        count = max(requests, concurrency * 2)
        level = base if concurrency == 1 and requests <= base.requests else None
        level = level or await _level(config, concurrency, count)
        results.append(level.to_dict(base_latency))
    return results


def plot_judge(results: list[dict[str, Any]], path: str) -> None:
    """Write a throughput and latency plot (needs ``pip install 'tracehint[bench]'``)."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 -- optional dependency

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415 -- optional dependency
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'tracehint[bench]'") from exc
    levels = [r["concurrency"] for r in results]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(levels, [r["requests_per_second"] for r in results], "o-", label="measured")
    bounds = [r["littles_law_bound"] for r in results]
    if all(b is not None for b in bounds):
        left.plot(levels, bounds, "--", label="Little's law C/L")
    left.set(xscale="log", xlabel="concurrency", ylabel="requests/s", title="throughput")
    left.legend()
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        right.plot(levels, [r[key] for r in results], "o-", label=key.removesuffix("_ms"))
    right.set(xscale="log", xlabel="concurrency", ylabel="ms", title="latency")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


async def bench_pipeline(
    paths: Sequence[str],
    config: AnnotatorConfig,
    *,
    cache_path: str | None = None,
) -> list[dict[str, Any]]:
    """Run the pipeline on ``paths`` with a cold, then a warm cache; report sites/s and hints/s."""
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        path = cache_path or str(Path(folder) / "bench-cache.sqlite3")
        run_config = replace(config, cache_path=path, use_cache=True)
        for label in ("cold", "warm"):
            stats = RunStats()
            async with Annotator(run_config) as annotator:
                await annotate_files(
                    paths,
                    chain=annotator.chain,
                    sink=MemorySink(),
                    stats=stats,
                    config=run_config.pipeline(),
                )
                judge = annotator.stats()
            seconds = stats.elapsed
            hinted = sum(stats.hints_by_source.values())
            results.append(
                {
                    "run": label,
                    "traces": stats.traces,
                    "sites": stats.sites,
                    "hints": hinted,
                    "seconds": round(seconds, 3),
                    "sites_per_second": round(stats.sites / seconds, 1) if seconds else None,
                    "hints_per_second": round(hinted / seconds, 1) if seconds else None,
                    "judge_requests": judge.requests if judge is not None else 0,
                    "cache_hits": judge.cache_hits if judge is not None else 0,
                    "failures": dict(judge.failures) if judge is not None else {},
                },
            )
    return results
