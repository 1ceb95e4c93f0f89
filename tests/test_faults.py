"""Judge and cache faults through the whole pipeline: the run finishes and nothing is lost.

Everything runs against the real loopback mock judge (faults injected server-side), real
SQLite cache files and the real corpus.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from tracehint import AnnotatorConfig, PipelineConfig, RunStats, annotate_files
from tracehint._annotator import Annotator
from tracehint._judge import JudgeConfig, RetryPolicy
from tracehint._mockjudge import MockJudge, MockJudgeConfig
from tracehint._output import MemorySink

if TYPE_CHECKING:
    from pathlib import Path

RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=0.2)

FLAKY = MockJudgeConfig(
    latency=0.005,
    jitter=0.005,
    rate_429=0.20,
    retry_after=0.05,
    rate_500=0.10,
    rate_hang=0.02,
    rate_garbage=0.02,
    rate_reset=0.03,
    seed=7,
)


async def judged_run(
    paths: list[Path], judge: MockJudge, cache: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Annotate ``paths`` with the judge first; return the traces and the judge counters."""
    config = AnnotatorConfig(
        layers=("judge",),
        judge=JudgeConfig(
            url=judge.url, model="mock-judge", timeout=0.5, retry=RETRY, concurrency=32
        ),
        cache_path=cache,
    )
    sink, stats = MemorySink(), RunStats()
    with anyio.fail_after(60):
        async with Annotator(config) as annotator:
            await annotate_files(
                paths,
                chain=annotator.chain,
                sink=sink,
                stats=stats,
                config=PipelineConfig(max_traces_in_flight=8, concurrency=8),
            )
            totals = annotator.stats()
            counters = totals.to_dict() if totals is not None else {}
    return [orjson.loads(line) for line in sink.lines], counters


def sites_of(traces: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (trace["trace_id"], turn["message_index"]): turn
        for trace in traces
        for turn in trace["turns"]
        if "tool_error" in turn
    }


async def test_mixed_judge_faults_then_rerun_fills_in(shared_corpus: Path, tmp_path: Path) -> None:
    # The whole corpus: enough requests for every fault kind to happen.
    cache = tmp_path / "hints.sqlite3"
    async with MockJudge(FLAKY) as judge:
        traces, counters = await judged_run([shared_corpus], judge, cache)
        injected = judge.stats.faults
        per_prompt = judge.stats.prompts.copy()
    sites = sites_of(traces)
    assert len(sites) > 50
    # Every fault kind really happened.
    assert set(injected) >= {"429", "500", "hang", "garbage", "reset"}, injected
    # Every site ends hinted by the judge or with a recorded failure and its reason.
    statuses = Counter(site["hint_status"] for site in sites.values())
    assert set(statuses) <= {"ok", "failed"}, statuses
    for site in sites.values():
        if site["hint_status"] == "ok" and site["hint_source"] == "user":
            # A user correction the judge failed on falls back to the user's own words.
            assert site["detected_by"] == "user"
            assert site["judge_reason"]
        elif site["hint_status"] == "ok":
            assert site["hint_source"] == "judge"
            assert site["hint"]
        else:
            assert site["hint_source"] is None
            assert site["hint"] is None
            assert site["hint_reason"]
    # Sites with the same context share one request (the prompt holds no later message).
    answered = counters["judge_hinted"] + counters["judge_failed"] + counters["judge_not_a_mistake"]
    assert answered + counters["single_flight_shared"] == counters["sites_asked"]
    assert counters["retries"] > 0
    # No prompt was sent more often than the policy allows (once per attempt; a prompt shared
    # by several sites can be asked again only after an earlier ask failed).
    assert per_prompt
    assert max(per_prompt.values()) <= RETRY.max_attempts * max(
        Counter(site["error_meta"]["error_message"] for site in sites.values()).values()
    )
    assert sum(per_prompt.values()) == counters["requests"]
    # Failed judge requests: a failed site, or a user correction answered by the user's words.
    failed = [
        key
        for key, site in sites.items()
        if site["hint_status"] == "failed" or site["hint_source"] == "user"
    ]

    # A rerun against a healthy judge fills in exactly the failures; the hints it got stay.
    async with MockJudge(MockJudgeConfig(latency=0.0)) as healthy:
        again, counters2 = await judged_run([shared_corpus], healthy, cache)
        rerun_requests = healthy.stats.requests
    sites2 = sites_of(again)
    assert sites2.keys() == sites.keys()
    assert all(site["hint_status"] == "ok" for site in sites2.values())
    for key, site in sites.items():
        if site["hint_status"] == "ok" and key not in failed:
            assert sites2[key]["hint"] == site["hint"]
    assert 0 < rerun_requests <= len(failed) if failed else rerun_requests == 0
    assert counters2["cache_hits"] >= len(sites) - len(failed)


async def cli(*args: str) -> tuple[int, str]:
    result = await anyio.run_process([sys.executable, "-m", "tracehint._main", *args], check=False)
    return result.returncode, result.stderr.decode()


async def test_corrupt_cache_is_a_clear_error(sessions: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hints.sqlite3"
    cache.write_bytes(b"SQLite format 3\x00" + b"\x13\x37" * 4000)
    out = tmp_path / "o.jsonl"
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        code, err = await cli(
            "annotate", str(sessions), "-o", str(out), "--layers", "judge",
            "--judge-url", judge.url, "--judge-model", "m", "--cache", str(cache),
        )  # fmt: skip
        assert judge.stats.requests == 0  # stopped before judging into nowhere
    assert code == 2
    assert str(cache) in err
    assert "--no-cache" in err or "cache clear" in err or "delete" in err
    assert "Traceback" not in err
    # The corrupt file is left for the user to inspect, never overwritten with wrong hints.
    assert cache.read_bytes().startswith(b"SQLite format 3\x00\x13\x37")


async def test_two_runs_share_one_cache(sessions: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hints.sqlite3"
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    async with MockJudge(MockJudgeConfig(latency=0.01, jitter=0.01)) as judge:

        async def run(out: Path) -> None:
            code, err = await cli(
                "annotate", str(sessions), "-o", str(out), "--layers", "judge",
                "--judge-url", judge.url, "--judge-model", "m", "--cache", str(cache),
                "--concurrency", "16", "--stats-json", f"{out}.stats",
            )  # fmt: skip
            assert code == 0, err

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for out in outs:
                    group.start_soon(run, out)
        first = judge.stats.requests
        # A third run finds everything in the shared file.
        third = tmp_path / "c.jsonl"
        await run(third)
        assert judge.stats.requests == first
    results = [
        sites_of([json.loads(line) for line in out.read_text().splitlines()]) for out in outs
    ]
    assert results[0].keys() == results[1].keys()
    for key, site in results[0].items():
        assert site["hint_status"] == "ok"
        assert results[1][key]["hint"] == site["hint"]
    third_sites = sites_of([json.loads(line) for line in third.read_text().splitlines()])
    assert {k: s["hint"] for k, s in third_sites.items()} == {
        k: s["hint"] for k, s in results[0].items()
    }
    summary = json.loads(third.with_name("c.jsonl.stats").read_text())
    assert summary["judge"]["requests"] == 0
    with sqlite3.connect(cache) as db:
        (rows,) = db.execute("select count(*) from hints").fetchone()
    # One row per distinct prompt; each was asked at most once by each of the two runs.
    assert 0 < rows <= len(results[0])
    assert rows <= first <= 2 * rows
