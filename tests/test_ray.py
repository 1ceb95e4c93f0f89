"""Ray Data engine: a local Ray instance (``num_cpus=2``) gives the same traces as a local run."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from conftest import EXAMPLES, REPO, assert_not_written, run_cli
from tracehint import (
    AnnotatorConfig,
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
    resumed = cli(str(corpus), "-o", str(out), "--engine", "ray", "--resume")
    assert resumed.returncode == 2
    assert "not supported" in resumed.stderr


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
