"""Ray Data engine: a local Ray instance (``num_cpus=2``) gives the same traces as a local run."""

from __future__ import annotations

import json
import subprocess
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from conftest import EXAMPLES, REPO, assert_not_written, run_cli
from tracehint import (
    AnnotatorConfig,
    HintCache,
    HintChain,
    JudgeAuthError,
    JudgeTotals,
    RawErrorLayer,
    ReaderStats,
    RunStats,
    TemplateLayer,
    annotate_files,
)
from tracehint._judge import JudgeConfig
from tracehint._mockjudge import MockJudge, MockJudgeConfig
from tracehint._output import MemorySink
from tracehint._resume import RunConfig

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ray = pytest.importorskip("ray")
ray_data = pytest.importorskip("tracehint.ray_data")

SECRET = "sk-raytest-" + "Q1w2E3r4T5y6U7i8O9p0" * 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray instance for this module; yields its address."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def folder_lines(folder: Path, prefix: str) -> list[str]:
    return [
        line
        for part in sorted(folder.glob(f"{prefix}-*.jsonl"))
        for line in part.read_text().splitlines()
    ]


async def local_run(paths: list[Path]) -> tuple[list[str], list[str]]:
    sink, issues = MemorySink(), MemorySink()
    await annotate_files(
        paths,
        chain=HintChain((TemplateLayer(), RawErrorLayer())),
        sink=sink,
        stats=RunStats(),
        issue_sink=issues,
    )
    return [x.decode().rstrip("\n") for x in sink.lines], [
        x.decode().rstrip("\n") for x in issues.lines
    ]


def ray_run(
    corpus: Path,
    out: Path,
    config: AnnotatorConfig,
    options: Any = None,
) -> RunStats:
    annotated = ray_data.annotate_dataset(ray_data.read_sessions([corpus]), config, options)
    stats: RunStats = ray_data.write_jsonl(annotated, out)
    return stats


async def test_ray_gives_the_same_traces_as_a_local_run(
    cluster: str, corpus: Path, tmp_path: Path
) -> None:
    assert cluster
    await anyio.Path(corpus / "broken.jsonl").write_bytes(
        b'{"type": "user", "message": {"content": "x"}}\n{bad\n'
    )
    expected, expected_issues = await local_run([corpus])
    out = tmp_path / "out"
    stats = await anyio.to_thread.run_sync(
        ray_run, corpus, out, AnnotatorConfig(), ray_data.RayOptions(batch_size=3)
    )
    got = folder_lines(out, "traces")
    assert len(got) == len(set(got)), "a trace was written twice"
    assert sorted(got) == sorted(expected)
    assert sorted(folder_lines(out, "errors")) == sorted(expected_issues)
    assert len(expected_issues) == 1
    assert stats.traces == len(expected)
    assert stats.files == len([p async for p in anyio.Path(corpus).rglob("*.jsonl")])
    assert stats.input_issues == 1
    assert not list(out.glob("*.part"))


async def test_ray_reads_openhands_session_folders(cluster: str, tmp_path: Path) -> None:
    """A folder of one-event-per-file sessions is one trace per session, as locally."""
    assert cluster
    sessions = REPO / "tests" / "data" / "openhands" / "sessions"
    expected, expected_issues = await local_run([sessions])
    assert expected
    out = tmp_path / "out"
    stats = await anyio.to_thread.run_sync(ray_run, sessions, out, AnnotatorConfig())
    assert sorted(folder_lines(out, "traces")) == sorted(expected)
    assert sorted(folder_lines(out, "errors")) == sorted(expected_issues)
    assert stats.traces == len(expected)
    assert dict(stats.skipped_files) == {"session metadata, not a transcript": 1}  # as locally


async def test_judged_on_ray_then_seeded_rerun_sends_nothing(
    cluster: str, corpus: Path, tmp_path: Path
) -> None:
    assert cluster
    first_cache, second_cache = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    async with MockJudge(MockJudgeConfig(latency=0.01, require_key=SECRET)) as judge:

        def config(cache: Path) -> AnnotatorConfig:
            return AnnotatorConfig(
                layers=("judge",),
                judge=JudgeConfig(url=judge.url, model="m", api_key=SECRET, concurrency=8),
                cache_path=cache,
            )

        stats = await anyio.to_thread.run_sync(
            ray_run, corpus, tmp_path / "one", config(first_cache)
        )
        cold = judge.stats.requests
        assert cold > 0
        assert stats.judge is not None
        assert stats.judge.requests == cold
        assert stats.hint_status == {"ok": stats.sites}
        # A fresh worker cache seeded from the first run's: nothing is asked again.
        options = ray_data.RayOptions(seed_cache=str(first_cache))
        stats2 = await anyio.to_thread.run_sync(
            ray_run, corpus, tmp_path / "two", config(second_cache), options
        )
        assert judge.stats.requests == cold
    assert stats2.judge is not None
    assert stats2.judge.requests == 0
    assert stats2.judge.cache_hits == stats2.sites
    one, two = folder_lines(tmp_path / "one", "traces"), folder_lines(tmp_path / "two", "traces")
    assert sorted(one) == sorted(two)
    # The key reached the workers (every site was answered) but was written nowhere.
    assert_not_written(SECRET, tmp_path)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("annotate", *args, timeout=300)


def test_cli_engine_ray(cluster: str, corpus: Path, tmp_path: Path) -> None:
    out, stats = tmp_path / "out", tmp_path / "s.json"
    result = cli(
        str(corpus), "-o", str(out), "--engine", "ray", "--ray-address", cluster,
        "--stats-json", str(stats), "--errors", str(tmp_path / "e.jsonl"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(stats.read_text())
    assert summary["traces"] == len(folder_lines(out, "traces")) > 0
    assert "sites" in result.stderr
    # A second run will not mix its traces into a folder that holds some.
    again = cli(str(corpus), "-o", str(out), "--engine", "ray", "--ray-address", cluster)
    assert again.returncode == 2
    assert "--overwrite" in again.stderr
    # A resume of a finished run reads nothing again and writes nothing twice.
    before = sorted(folder_lines(out, "traces"))
    resumed = cli(
        str(corpus), "-o", str(out), "--engine", "ray", "--ray-address", cluster, "--resume",
        "--stats-json", str(stats),
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    again_summary = json.loads(stats.read_text())
    assert again_summary["files_resumed"] == summary["files"]
    assert again_summary["traces"] == 0
    assert sorted(folder_lines(out, "traces")) == before
    # Other settings are refused.
    other = cli(
        str(corpus), "-o", str(out), "--engine", "ray", "--ray-address", cluster, "--resume",
        "--layers", "raw",
    )  # fmt: skip
    assert other.returncode == 2
    assert "other settings" in other.stderr


def test_stats_merge() -> None:
    a, b = RunStats(files=2, sites=3), RunStats(files=1, sites=4)
    a.sites_by_kind["timeout"] = 1
    b.sites_by_kind.update({"timeout": 2, "file_not_found": 1})
    a.judge = JudgeTotals(requests=5, max_in_flight=4, min_in_flight_limit=8, notes=["n1"])
    a.judge.failures["timeout"] = 1
    b.judge = JudgeTotals(requests=2, max_in_flight=7, min_in_flight_limit=3, notes=["n1", "n2"])
    b.judge.failures.update({"timeout": 2, "http_500": 1})
    b.judge.reader = ReaderStats(windows=2, findings=1)
    total = RunStats()
    total.merge(a.to_dict())
    total.merge(b.to_dict())
    assert (total.files, total.sites) == (3, 7)
    assert total.sites_by_kind == {"timeout": 3, "file_not_found": 1}
    assert total.judge is not None
    assert (total.judge.requests, total.judge.max_in_flight) == (7, 7)
    assert total.judge.min_in_flight_limit == 3
    assert total.judge.failures == {"timeout": 3, "http_500": 1}
    assert total.judge.notes == ["n1", "n2"]
    assert total.judge.reader is not None
    assert (total.judge.reader.windows, total.judge.reader.findings) == (2, 1)
    assert JudgeTotals.from_dict(total.judge.to_dict()) == total.judge


async def test_auth_failure_on_the_workers_is_a_clear_error(cluster: str, tmp_path: Path) -> None:
    assert cluster
    async with MockJudge(MockJudgeConfig(latency=0.0, require_key="right")) as judge:
        config = AnnotatorConfig(
            layers=("judge",),
            judge=JudgeConfig(url=judge.url, model="m", api_key="wrong"),
            use_cache=False,
        )
        with pytest.raises(JudgeAuthError, match="HTTP 401") as caught:
            await anyio.to_thread.run_sync(ray_run, EXAMPLES, tmp_path / "out", config)
    assert "TRACEHINT_JUDGE_API_KEY" in str(caught.value)


def test_trace_lines_give_their_path_and_id_without_a_full_parse(shared_corpus: Path) -> None:
    lines = [line.encode() for line in anyio.run(local_run, [shared_corpus])[0]]
    assert lines
    for line in lines:
        record = json.loads(line)
        expected = (record["source"]["path"], record["trace_id"])
        assert ray_data.path_and_trace_id(line + b"\n") == expected
    # Any other shape is parsed whole.
    odd = json.dumps({"source": {"path": "p"}, "trace_id": "t", "turns": []}).encode()
    assert ray_data.path_and_trace_id(odd) == ("p", "t")


def folder_run(
    corpus: Path, out: Path, config: AnnotatorConfig, options: Any = None, *, resume: bool = False
) -> RunStats:
    run = RunConfig(layers=config.layer_names())
    state = ray_data.prepare_folder(out, run, resume=resume)
    stats: RunStats = ray_data.annotate_folder([corpus], out, config, options, resume=state)
    return stats


async def test_folder_runs_give_the_local_traces_and_resume_without_duplicates(
    cluster: str, corpus: Path, tmp_path: Path
) -> None:
    assert cluster
    expected, expected_issues = await local_run([corpus])
    out = tmp_path / "out"
    options = ray_data.RayOptions(batch_size=4)
    stats = await anyio.to_thread.run_sync(folder_run, corpus, out, AnnotatorConfig(), options)
    got = folder_lines(out, "traces")
    assert sorted(got) == sorted(expected)
    assert sorted(folder_lines(out, "errors")) == sorted(expected_issues)
    assert stats.traces == len(expected)
    assert not list(out.glob("*.part"))
    # An interrupted run: one call's journal never made it (its traces did), another call
    # left only a half-written part (it is renamed, then its journal, when it finishes).
    journals = sorted(out.glob("done-*.jsonl"))
    assert len(journals) > 2
    journals[0].unlink()
    lost = journals[-1].name.removeprefix("done-")
    (out / f"traces-{lost}").rename(out / f"traces-{lost}.part")
    journals[-1].unlink()
    resumed = await anyio.to_thread.run_sync(
        partial(folder_run, resume=True), corpus, out, AnnotatorConfig(), options
    )
    assert sorted(folder_lines(out, "traces")) == sorted(expected)
    assert resumed.files_resumed > 0
    assert 0 < resumed.traces < len(expected)
    assert resumed.traces + resumed.traces_resumed >= 1


async def test_one_judge_client_per_actor_and_hints_merged_back(
    cluster: str, corpus: Path, tmp_path: Path
) -> None:
    assert cluster
    cache, merged = tmp_path / "worker.sqlite3", tmp_path / "driver.sqlite3"
    async with MockJudge(MockJudgeConfig(latency=0.01)) as judge:
        config = AnnotatorConfig(
            layers=("judge",),
            judge=JudgeConfig(url=judge.url, model="m", concurrency=8),
            cache_path=cache,
        )
        options = ray_data.RayOptions(batch_size=3, actors=1, export_hints=True)
        stats = await anyio.to_thread.run_sync(
            folder_run, corpus, tmp_path / "out", config, options
        )
        assert judge.stats.model_lists == 1  # one preflight: one client for the actor
        assert stats.judge is not None
        assert stats.judge.requests == judge.stats.requests > 0
    assert stats.hint_status == {"ok": stats.sites}
    count = await anyio.to_thread.run_sync(ray_data.merge_hints, tmp_path / "out", merged)
    assert count >= judge.stats.requests
    assert not list((tmp_path / "out").glob("hints-*.jsonl"))
    async with HintCache(merged) as driver:
        assert (await driver.stats()).entries == judge.stats.requests


async def test_hard_linked_sessions_in_one_call_are_each_read(
    cluster: str, corpus: Path, tmp_path: Path
) -> None:
    assert cluster
    first = min([p async for p in anyio.Path(corpus).rglob("*.jsonl")])
    await anyio.Path(first).with_name("linked-copy.jsonl").hardlink_to(first)
    expected, _ = await local_run([corpus])
    options = ray_data.RayOptions(batch_size=10_000)
    stats = await anyio.to_thread.run_sync(
        folder_run, corpus, tmp_path / "out", AnnotatorConfig(), options
    )
    assert sorted(folder_lines(tmp_path / "out", "traces")) == sorted(expected)
    assert stats.traces == len(expected)
