"""``tracehint bench`` against the loopback mock judge (a smoke test of the command, not timing)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import anyio

from conftest import EXAMPLES
from tracehint._mockjudge import MockJudge, MockJudgeConfig


async def test_bench_judge_reports_each_level(tmp_path: Path) -> None:
    plot = tmp_path / "curve.png"
    async with MockJudge(MockJudgeConfig(latency=0.02)) as judge:
        result = await anyio.run_process(
            [
                sys.executable, "-m", "tracehint._main", "bench", "judge",
                "--judge-url", judge.url, "--judge-model", "m",
                "--concurrency", "1,4", "--requests", "12", "--json", "--plot", str(plot),
            ],
            check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    rows = json.loads(result.stdout)
    assert [r["concurrency"] for r in rows] == [1, 4]
    for row in rows:
        assert row["ok"] == row["requests"]
        assert row["p50_ms"] >= 15  # the mock's 20 ms latency is really measured
        assert 0 < row["efficiency"] <= 1.5
    assert rows[1]["requests_per_second"] > rows[0]["requests_per_second"]
    assert plot.read_bytes().startswith(b"\x89PNG")


async def test_bench_pipeline_cold_then_warm() -> None:
    result = await anyio.run_process(
        [
            sys.executable, "-m", "tracehint._main", "bench", "pipeline", str(EXAMPLES),
            "--mock-latency", "0.01", "--json",
        ],
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    cold, warm = json.loads(result.stdout)
    assert cold["run"] == "cold"
    assert cold["judge_requests"] > 0
    assert warm["judge_requests"] == 0
    assert warm["cache_hits"] == cold["sites"]


async def test_bench_judge_table_counts_errors() -> None:
    async with MockJudge(MockJudgeConfig(latency=0.005, rate_500=0.5, seed=3)) as judge:
        result = await anyio.run_process(
            [
                sys.executable, "-m", "tracehint._main", "bench", "judge",
                "--judge-url", judge.url, "--judge-model", "m",
                "--concurrency", "2", "--requests", "40",
            ],
            check=False,
        )  # fmt: skip
        sent = judge.stats.requests
        failed = judge.stats.by_status[500]
    assert result.returncode == 0, result.stderr.decode()
    table = result.stdout.decode()
    assert "req/s" in table
    assert "http_500" in table
    # Each request is sent once (no retries): 20 at C=1 for the base latency, then 40 at C=2,
    # and the errors shown for C=2 are the server's 500s among those.
    assert sent == 20 + 40
    shown = int(re.search(r"http_500 (\d+)", table)[1])  # type: ignore[index]
    assert 0 < shown <= failed
