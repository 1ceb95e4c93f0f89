"""End-to-end tests of the ``tracehint`` command on real sessions, in a subprocess."""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES, run_cli
from tracehint._cli._malloc import limit_malloc_arenas


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_annotate_sessions_end_to_end(sessions_copy: Path, tmp_path: Path) -> None:
    corpus = sessions_copy
    out, stats_path, errors = (
        tmp_path / "traces.jsonl",
        tmp_path / "stats.json",
        tmp_path / "errors.jsonl",
    )
    result = run_cli(
        "annotate",
        str(corpus),
        "-o",
        str(out),
        "--stats-json",
        str(stats_path),
        "--errors",
        str(errors),
    )
    assert result.returncode == 0, result.stderr
    traces = read_jsonl(out)
    stats = json.loads(stats_path.read_text())
    assert stats["traces"] == len(traces)
    assert stats["files"] == len(list(corpus.rglob("*.jsonl")))
    assert stats["input_issues"] == 0
    assert errors.read_text() == ""
    sites = [t for trace in traces for t in trace["turns"] if "tool_error" in t]
    assert stats["sites"] == len(sites) > 0
    for turn in sites:
        assert turn["role"] == "assistant"
        assert turn["hint"]
        assert turn["hint_source"] in {"template", "raw", "user"}
        assert (turn["hint_source"] == "user") == (turn["detected_by"] == "user")
        meta = turn["error_meta"]
        assert {
            "error_message",
            "tool_name",
            "tool_input",
            "tool_use_id",
            "source_content_excerpt",
        } <= set(meta)
    # Every rejection in this corpus carries the user's words: each is a user correction.
    assert stats["non_mistakes"].get("user_rejected", 0) == 0
    assert stats["sites_by_detector"]["user"] > 0
    for trace in traces:
        assert set(trace) >= {"trace_id", "turns", "final_reward", "source"}
        assert trace["source"]["format"] == "claude_code"
    ids = [t["trace_id"] for t in traces]
    assert len(ids) == len(set(ids))
    # The summary goes to stderr.
    assert "sites" in result.stderr
    assert f"traces     {len(traces)}" in result.stderr


def test_stdout_output_and_no_progress_when_piped() -> None:
    result = run_cli("annotate", str(EXAMPLES), "-o", "-")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines
    assert all(json.loads(line)["trace_id"] for line in lines)
    assert "\r" not in result.stderr  # no live progress bar on a pipe


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    out.write_text("keep me\n")
    result = run_cli("annotate", str(EXAMPLES), "-o", str(out))
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert "--overwrite" in result.stderr
    assert out.read_text() == "keep me\n"
    again = run_cli("annotate", str(EXAMPLES), "-o", str(out), "--overwrite")
    assert again.returncode == 0, again.stderr
    assert out.read_text() != "keep me\n"


def test_layers_option(tmp_path: Path) -> None:
    out = tmp_path / "raw.jsonl"
    result = run_cli("annotate", str(EXAMPLES), "-o", str(out), "--layers", "raw")
    assert result.returncode == 0, result.stderr
    sources = {
        t.get("hint_source") for tr in read_jsonl(out) for t in tr["turns"] if "tool_error" in t
    }
    assert sources == {"raw"}
    bad = run_cli(
        "annotate", str(EXAMPLES), "-o", str(tmp_path / "x.jsonl"), "--layers", "template,oracle"
    )
    assert bad.returncode == 2
    assert "unknown hint layer 'oracle'" in bad.stderr


def test_default_path_is_claude_projects(tmp_path: Path) -> None:
    home = tmp_path / "home"
    projects = home / ".claude" / "projects" / "-some-project"
    projects.mkdir(parents=True)
    for session in EXAMPLES.glob("*.jsonl"):
        shutil.copy(session, projects)
    env = {**os.environ, "HOME": str(home)}
    out = tmp_path / "t.jsonl"
    result = run_cli("annotate", "-o", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out)) >= 2


def test_missing_path_is_reported_not_fatal(tmp_path: Path) -> None:
    out, errors = tmp_path / "t.jsonl", tmp_path / "e.jsonl"
    missing = tmp_path / "nope"
    result = run_cli(
        "annotate", str(missing), str(EXAMPLES), "-o", str(out), "--errors", str(errors)
    )
    assert result.returncode == 0, result.stderr
    issue = json.loads(errors.read_text().splitlines()[0])
    assert issue == {"path": str(missing), "line": None, "reason": "no such file or folder"}
    assert read_jsonl(out)


def test_own_output_inside_the_input_folder_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    shutil.copytree(EXAMPLES, folder)
    alone = tmp_path / "alone.jsonl"
    assert run_cli("annotate", str(EXAMPLES), "-o", str(alone)).returncode == 0
    stats = folder / "stats.jsonl"
    # Relative names, from inside the folder: the output, its journal, the errors file and
    # the stats file all land among the sessions, and a rerun with --resume reads them too.
    for extra in ([], ["--resume"]):
        result = run_cli(
            "annotate", ".", "-o", "out.jsonl", "--errors", "errors.jsonl",
            "--stats-json", stats.name, *extra, cwd=folder,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        summary = json.loads(stats.read_text())
        assert summary["files"] == (2 if not extra else 0)
        assert summary["input_issues"] == 0
    assert (folder / "errors.jsonl").read_text() == ""
    got = sorted(t["trace_id"] for t in read_jsonl(folder / "out.jsonl"))
    assert got == sorted(t["trace_id"] for t in read_jsonl(alone))


def test_stats_json_dash_writes_the_summary_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = run_cli(
        "annotate", str(EXAMPLES), "-o", str(out), "--stats-json", "-", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["traces"] == len(read_jsonl(out)) > 0
    assert not (tmp_path / "-").exists()
    both = run_cli("annotate", str(EXAMPLES), "-o", "-", "--stats-json", "-")
    assert both.returncode == 2
    assert "both write to stdout" in both.stderr


def test_the_summary_reports_the_runs_cpu(tmp_path: Path) -> None:
    result = run_cli(
        "annotate", str(EXAMPLES), "-o", str(tmp_path / "o.jsonl"), "--stats-json", "-"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert 0 < summary["cpu_seconds"] < 60


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_command_line_limits_malloc_arenas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    found = ctypes.util.find_library("c") or ""
    expected = "musl" not in found  # glibc has mallopt, musl does not
    assert limit_malloc_arenas() is expected
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the user's own setting wins
    assert limit_malloc_arenas() is False


def test_the_command_line_keeps_its_startup_objects_out_of_garbage_collection(
    tmp_path: Path,
) -> None:
    # A full collection of the imported modules' objects held the GIL for about 30 ms.
    script = (
        "import gc, sys\n"
        "from tracehint._cli import main\n"
        "before = gc.get_freeze_count()\n"
        "code = main(sys.argv[1:])\n"
        "print(before, gc.get_freeze_count(), code)\n"
    )
    out = tmp_path / "o.jsonl"
    result = subprocess.run(
        [sys.executable, "-c", script, "annotate", str(EXAMPLES), "-o", str(out), "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    before, after, code = (int(word) for word in result.stdout.split())
    assert (before, code) == (0, 0)
    assert after > 10_000  # the imports' objects, frozen once the command line is parsed
    assert out.read_text(encoding="utf-8").count("\n") > 0
