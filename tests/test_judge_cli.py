"""``tracehint annotate`` with a judge, end to end: real corpus, loopback server, real cache."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from conftest import EXAMPLES, assert_not_written, read_only
from tracehint._mockjudge import MockJudge, MockJudgeConfig

SECRET = "sk-test-" + "Z9y8X7w6V5u4T3s2R1q0" * 2


async def annotate(*args: str, key: str | None = SECRET) -> tuple[int, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"TRACEHINT_JUDGE_API_KEY", "OPENAI_API_KEY"}
    }
    if key is not None:
        env["TRACEHINT_JUDGE_API_KEY"] = key
    result = await anyio.run_process(
        [sys.executable, "-m", "tracehint._main", "annotate", *args],
        env=env,
        check=False,
    )
    return result.returncode, result.stderr.decode()


def judged_sites(out: Path) -> list[dict[str, Any]]:
    """The site turns of an output file, in a stable order (traces are written as finished)."""
    traces = sorted(
        (json.loads(line) for line in out.read_text().splitlines()), key=lambda t: t["trace_id"]
    )
    return [t for trace in traces for t in trace["turns"] if "tool_error" in t]


async def test_judge_run_then_warm_rerun(sessions: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hints.sqlite3"
    out1, out2, stats2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "s.json"
    async with MockJudge(MockJudgeConfig(latency=0.01, require_key=SECRET)) as judge:
        common = ["--judge-url", judge.url, "--judge-model", "mock-judge", "--cache", str(cache)]
        code, err = await annotate(str(sessions), "-o", str(out1), "--layers", "judge", *common)
        assert code == 0, err
        cold_requests = judge.stats.requests
        sites = judged_sites(out1)
        assert sites
        assert all(s["hint_source"] == "judge" and s["hint"].startswith("Mock hint") for s in sites)
        # Identical prompts were asked once: fewer requests than sites.
        assert 0 < cold_requests <= len(sites)
        code, err = await annotate(
            str(sessions),
            "-o",
            str(out2),
            "--layers",
            "judge",
            "--stats-json",
            str(stats2),
            *common,
        )
        assert code == 0, err
        assert judge.stats.requests == cold_requests  # the warm rerun sent nothing
        assert judge.stats.authorization_headers == [f"Bearer {SECRET}"]
    assert [s["hint"] for s in judged_sites(out2)] == [s["hint"] for s in sites]
    summary = json.loads(stats2.read_text())
    assert summary["judge"]["requests"] == 0
    assert summary["judge"]["cache_hits"] == len(sites)
    # The key is sent, but never written anywhere.
    assert_not_written(SECRET, tmp_path)
    assert SECRET not in err


async def test_failed_sites_are_recorded_and_filled_on_rerun(
    sessions: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hints.sqlite3"
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    async with MockJudge(MockJudgeConfig(latency=0.0, rate_500=1.0)) as judge:
        common = [
            "--judge-url", judge.url, "--judge-model", "m", "--cache", str(cache),
            "--layers", "judge", "--max-attempts", "2",
        ]  # fmt: skip
        code, err = await annotate(str(sessions), "-o", str(out1), *common)
        assert code == 1, err  # some sites failed: exit 1, the count on stderr
        every = judged_sites(out1)
        failed = [s for s in every if s["detected_by"] == "tool_error"]
        assert f"{len(failed)} of {len(every)} site(s) failed" in err
        # The user's corrections fall back to the user's own words when the judge fails.
        corrected = [s for s in every if s["detected_by"] == "user"]
        assert corrected
        for site in corrected:
            assert (site["hint_source"], site["hint_status"]) == ("user", "ok")
            assert "http_500" in site["judge_reason"]
        assert "The server had an error (mock judge)." in err  # the server's words
        assert all(s["hint_source"] is None and s["hint_status"] == "failed" for s in failed)
        assert all("http_500" in s["hint_reason"] for s in failed)
        assert "failures: http_500" in err
        judge.set_config(MockJudgeConfig(latency=0.0))
        code, err = await annotate(str(sessions), "-o", str(out2), *common)
        assert code == 0, err
    assert all(s["hint_status"] == "ok" for s in judged_sites(out2))


async def test_auth_failure_stops_early(tmp_path: Path) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, require_key="right")) as judge:
        code, err = await annotate(
            str(EXAMPLES), "-o", str(tmp_path / "o.jsonl"), "--no-cache",
            "--judge-url", judge.url, "--judge-model", "m", "--layers", "judge",
            key="wrong",
        )  # fmt: skip
        assert code == 2, err
        assert "HTTP 401" in err
        assert "TRACEHINT_JUDGE_API_KEY" in err
        assert judge.stats.requests <= 64  # stopped early, not one failure per site


async def test_cache_commands(tmp_path: Path) -> None:
    cache = tmp_path / "hints.sqlite3"
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        code, err = await annotate(
            str(EXAMPLES), "-o", str(tmp_path / "o.jsonl"), "--cache", str(cache),
            "--judge-url", judge.url, "--judge-model", "m", "--layers", "judge",
        )  # fmt: skip
        assert code == 0, err
    run = [sys.executable, "-m", "tracehint._main", "cache"]
    stats = await anyio.run_process([*run, "stats", "--json", "--cache", str(cache)])
    data = json.loads(stats.stdout)
    assert data["entries"] > 0
    assert data["by_model"] == {"m": data["entries"]}
    merged = tmp_path / "merged.sqlite3"
    result = await anyio.run_process([*run, "merge", str(cache), "--cache", str(merged)])
    assert f"merged {data['entries']}" in result.stdout.decode()
    cleared = await anyio.run_process([*run, "clear", "--cache", str(cache)])
    assert f"removed {data['entries']}" in cleared.stdout.decode()


async def test_read_only_cache_is_read_and_not_written(tmp_path: Path) -> None:
    folder = tmp_path / "shared-cache"
    cache = folder / "hints.sqlite3"
    out1, out2, stats2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "s.json"
    async with MockJudge(MockJudgeConfig(latency=0.01)) as judge:
        common = ["--judge-url", judge.url, "--judge-model", "mock-judge", "--cache", str(cache)]
        code, err = await annotate(str(EXAMPLES), "-o", str(out1), "--layers", "judge", *common)
        assert code == 0, err
        cold_requests = judge.stats.requests
        assert cold_requests > 0
        data = cache.read_bytes()
        with read_only(cache, folder):
            code, err = await annotate(
                str(EXAMPLES), "-o", str(out2), "--layers", "judge",
                "--stats-json", str(stats2), *common,
            )  # fmt: skip
        assert code == 0, err
        assert judge.stats.requests == cold_requests  # every hint came from the cache
    assert f"warning: the cache {cache} is read-only" in err
    assert "new hints will not be kept" in err
    assert [s["hint"] for s in judged_sites(out2)] == [s["hint"] for s in judged_sites(out1)]
    assert json.loads(stats2.read_text())["judge"]["cache_hits"] == len(judged_sites(out1))
    assert cache.read_bytes() == data
