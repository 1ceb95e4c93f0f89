"""Graceful stop with judge requests in flight: Ctrl-C once finishes them, twice stops at once."""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
from typing import TYPE_CHECKING

import anyio
import pytest

from tracehint._mockjudge import MockJudge, MockJudgeConfig

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import Process

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def command(judge: MockJudge, data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tracehint._main", "annotate", str(data), "-o", str(out),
        "--layers", "judge", "--judge-url", judge.url, "--judge-model", "m",
        "--cache", str(cache), "--concurrency", "8", "--no-progress", *extra,
    ]  # fmt: skip


async def wait_in_flight(judge: MockJudge, proc: Process) -> None:
    with anyio.fail_after(30):
        while judge.stats.in_flight < 1:
            assert proc.returncode is None, "the run ended before any request was in flight"
            await anyio.sleep(0.02)


async def finish(proc: Process, seconds: float) -> tuple[int, str]:
    assert proc.stderr is not None
    with anyio.fail_after(seconds):
        err = b"".join([chunk async for chunk in proc.stderr])
        code = await proc.wait()
    return code, err.decode()


def check_lines(out: Path) -> list[str]:
    """Every output line is complete JSON; returns the trace ids."""
    data = out.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "torn last line"
    return [json.loads(line)["trace_id"] for line in data.splitlines()]


def cached_rows(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        (rows,) = db.execute("select count(*) from hints").fetchone()
    return int(rows)


async def test_first_ctrl_c_lets_requests_in_flight_finish(
    shared_corpus: Path, tmp_path: Path
) -> None:
    out, cache = tmp_path / "o.jsonl", tmp_path / "c.sqlite3"
    async with MockJudge(MockJudgeConfig(latency=1.0)) as judge:
        async with await anyio.open_process(
            command(judge, shared_corpus, out, cache, "--grace", "20")
        ) as proc:
            await wait_in_flight(judge, proc)
            proc.send_signal(signal.SIGINT)
            code, err = await finish(proc, 30)
        assert code == 130, err
        assert "finishing work in flight" in err
        assert "--resume" in err
        assert "judge" in err  # the summary was printed
        answered = judge.stats.by_status[200]
        sent = judge.stats.requests
        assert answered == sent  # nothing in flight was dropped
        # What was answered was flushed to the cache before exit.
        assert cached_rows(cache) >= 1
        check_lines(out)
        # The resumed run finishes the job, and does not ask again for what is cached.
        judge.set_config(MockJudgeConfig(latency=0.0))
        async with await anyio.open_process(
            command(judge, shared_corpus, out, cache, "--resume")
        ) as proc:
            code, err = await finish(proc, 120)
        assert code == 0, err
    ids = check_lines(out)
    assert len(ids) == len(set(ids))
    # Each prompt was sent once over both runs: answers given before the stop were cached.
    assert max(judge.stats.prompts.values()) == 1


async def test_second_ctrl_c_stops_at_once(shared_corpus: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "o.jsonl", tmp_path / "c.sqlite3"
    # Requests that take a minute: only the second Ctrl-C can end the run quickly.
    async with (
        MockJudge(MockJudgeConfig(latency=60.0)) as judge,
        await anyio.open_process(
            command(judge, shared_corpus, out, cache, "--grace", "60")
        ) as proc,
    ):
        await wait_in_flight(judge, proc)
        proc.send_signal(signal.SIGINT)
        await anyio.sleep(0.3)
        assert proc.returncode is None  # still waiting for the requests in flight
        proc.send_signal(signal.SIGINT)
        code, err = await finish(proc, 15)
    assert code == 130, err
    assert "Traceback" not in err
    check_lines(out)
