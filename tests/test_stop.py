"""Graceful stop with judge requests in flight: Ctrl-C once finishes them, twice stops at once."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from tracehint import JudgeClient, JudgeConfig, JudgeReply, StoppedError
from tracehint._mockjudge import MockJudge, MockJudgeConfig

if TYPE_CHECKING:
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


async def read_until(proc: Process, marker: str, seen: bytearray) -> None:
    """Read the process's stderr into ``seen`` until ``marker`` is in it (a readiness signal)."""
    assert proc.stderr is not None
    with anyio.fail_after(30):
        while marker.encode() not in seen:
            seen += await proc.stderr.receive()


async def finish_after(proc: Process, seen: bytearray, seconds: float) -> tuple[int, str]:
    code, rest = await finish(proc, seconds)
    return code, seen.decode() + rest


def check_lines(out: Path) -> list[str]:
    """Every output line is complete JSON; returns the trace ids."""
    data = out.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "torn last line"
    return [json.loads(line)["trace_id"] for line in data.splitlines()]


def cached_rows(cache: Path) -> int:
    with sqlite3.connect(cache) as db:
        (rows,) = db.execute("select count(*) from hints").fetchone()
    return int(rows)


async def test_first_ctrl_c_lets_requests_in_flight_finish(sessions: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "o.jsonl", tmp_path / "c.sqlite3"
    async with MockJudge(MockJudgeConfig(latency=1.0)) as judge:
        async with await anyio.open_process(
            command(judge, sessions, out, cache, "--grace", "20")
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
            command(judge, sessions, out, cache, "--resume")
        ) as proc:
            code, err = await finish(proc, 120)
        assert code == 0, err
    ids = check_lines(out)
    assert len(ids) == len(set(ids))
    # Each prompt was sent once over both runs: answers given before the stop were cached.
    assert max(judge.stats.prompts.values()) == 1


async def test_second_ctrl_c_stops_at_once(sessions: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "o.jsonl", tmp_path / "c.sqlite3"
    # Requests that take a minute: only the second Ctrl-C can end the run quickly.
    async with (
        MockJudge(MockJudgeConfig(latency=60.0)) as judge,
        await anyio.open_process(command(judge, sessions, out, cache, "--grace", "60")) as proc,
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


def traces_by_file(out: Path) -> Counter[str]:
    return Counter(json.loads(line)["source"]["path"] for line in out.read_bytes().splitlines())


async def test_no_new_file_or_request_after_the_first_signal(
    sessions: Path, tmp_path: Path
) -> None:
    out, cache, reference = tmp_path / "o.jsonl", tmp_path / "c.sqlite3", tmp_path / "r.jsonl"
    data = tmp_path / "data"
    shutil.copytree(sessions, data)
    offline = await anyio.run_process(
        [*command_offline(data, reference)], check=False, stderr=subprocess.PIPE
    )
    assert offline.returncode == 0, offline.stderr
    expected = traces_by_file(reference)
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        # Held: the requests the run sends are received and counted, but not answered, so
        # the test knows exactly what is in flight when it signals.
        judge.hold()
        seen = bytearray()
        async with await anyio.open_process(
            command(judge, data, out, cache, "--concurrency", "2", "--grace", "60")
        ) as proc:
            with anyio.fail_after(60):  # both request slots taken: nothing more can be
                await judge.wait_in_flight(2)  # sent until an answer comes back
            proc.send_signal(signal.SIGINT)
            await read_until(proc, "finishing work in flight", seen)
            sent = judge.stats.requests
            judge.release()
            code, err = await finish_after(proc, seen, 60)
        assert code == 130, err
        assert sent == 2
        assert judge.stats.requests == sent, "judge requests were sent after the signal"
        assert judge.stats.by_status[200] == sent  # the requests in flight finished
        assert cached_rows(cache) == sent  # and were cached
        # Only traces whose every site was answered were written, and a file is journaled
        # only when all its traces are in the output: the rest is left for --resume.
        written = traces_by_file(out)
        assert sum(written.values()) < sum(expected.values())
        for record in (json.loads(x) for x in out.read_bytes().splitlines()):
            assert all(t["hint_status"] == "ok" for t in record["turns"] if "tool_error" in t)
        for path in journaled(out):
            assert written[path] == expected[path], path
        # The resumed run finishes the job without asking again for what was answered.
        async with await anyio.open_process(command(judge, data, out, cache, "--resume")) as proc:
            code, err = await finish(proc, 120)
        assert code == 0, err
    assert traces_by_file(out) == expected
    assert max(judge.stats.prompts.values()) == 1


def journaled(out: Path) -> list[str]:
    """The input files the resume journal beside ``out`` says are done."""
    records = [json.loads(line) for line in Path(f"{out}.done").read_bytes().splitlines()]
    return [record["path"] for record in records if "path" in record]  # not the settings line


def command_offline(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tracehint._main", "annotate", str(data), "-o", str(out), "-q"]


async def test_drained_client_finishes_what_is_in_flight_and_sends_nothing_new() -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        judge.hold()
        config = JudgeConfig(url=judge.url, model="m", concurrency=1)
        async with JudgeClient(config) as client:
            results: dict[str, JudgeReply | str] = {}

            async def ask(name: str) -> None:
                try:
                    reply = await client.complete([{"role": "user", "content": name}])
                except StoppedError:
                    results[name] = "stopped"
                else:
                    assert isinstance(reply, JudgeReply)
                    results[name] = reply

            async with anyio.create_task_group() as group:
                group.start_soon(ask, "first")
                with anyio.fail_after(30):
                    await judge.wait_in_flight(1)
                group.start_soon(ask, "second")  # waits for the one slot, or is not sent yet
                client.drain()
                judge.release()
            with pytest.raises(StoppedError):
                await client.complete([{"role": "user", "content": "third"}])
    assert isinstance(results["first"], JudgeReply)
    assert results["second"] == "stopped"
    assert judge.stats.requests == 1
