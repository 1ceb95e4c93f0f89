"""Resume after a crash (really ``kill -9``), graceful stop, and output guarantees."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, run_cli
from tracehint import OutputError
from tracehint._resume import FileKeys, file_key, journal_path, prepare_resume


def corpus_many(sessions: Path, tmp_path: Path, copies: int) -> Path:
    """The sessions replicated under new names (so a run takes a moment)."""
    root = tmp_path / "many"
    for i in range(copies):
        target = root / f"copy{i}"
        shutil.copytree(sessions, target)
        for path in sorted(target.rglob("*.jsonl")):
            if path.name.startswith("agent-"):
                continue
            sibling = path.with_suffix("")  # <session>/subagents/… keep their folder
            new = path.with_name(f"c{i}-{path.name}")
            path.rename(new)
            if sibling.is_dir():
                sibling.rename(new.with_suffix(""))
    return root


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tracehint._main", *args]


def trace_ids(path: Path) -> list[tuple[str, str]]:
    """(input path, trace id) of every output line: unique even across copies of a session."""
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    return [(r["source"]["path"], r["trace_id"]) for r in records]


def test_torn_last_line_is_cut(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    good = b'{"trace_id": "a", "turns": [], "source": {"path": "p"}}\n'
    out.write_bytes(good + b'{"trace_id": "b", "tu')
    state = prepare_resume(str(out))
    assert state.trace_done("p", "a")
    assert not state.trace_done("other", "a")
    assert not state.trace_done("p", "b")
    assert state.truncated_bytes == len(b'{"trace_id": "b", "tu')
    assert out.read_bytes() == good


def test_foreign_file_is_not_resumed(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    out.write_text("hello\nworld\n")
    with pytest.raises(OutputError, match="not tracehint output"):
        prepare_resume(str(out))


def test_resume_of_a_finished_run_reads_nothing(sessions: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    stats = tmp_path / "s.json"
    subprocess.run(cli("annotate", str(sessions), "-o", str(out), "-q"), check=True, timeout=120)
    before = out.read_bytes()
    subprocess.run(
        cli(
            "annotate",
            str(sessions),
            "-o",
            str(out),
            "--resume",
            "-q",
            "--stats-json",
            str(stats),
        ),
        check=True,
        timeout=120,
    )
    assert out.read_bytes() == before
    summary = json.loads(stats.read_text())
    assert summary["files"] == 0
    assert summary["files_resumed"] == len(list(sessions.rglob("*.jsonl")))
    assert Path(journal_path(str(out))).exists()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_then_resume_gives_the_same_traces(
    sessions: Path, tmp_path: Path, seed: int
) -> None:
    data = corpus_many(sessions, tmp_path, copies=16)
    reference = tmp_path / "ref.jsonl"
    subprocess.run(cli("annotate", str(data), "-o", str(reference), "-q"), check=True, timeout=300)
    expected = sorted(trace_ids(reference))
    out = tmp_path / "o.jsonl"
    rng = random.Random(seed)  # noqa: S311 -- kill times, not cryptography
    for _ in range(3):
        proc = subprocess.Popen(
            cli(
                "annotate", str(data), "-o", str(out), "-q", *(["--resume"] if out.exists() else [])
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    subprocess.run(
        cli("annotate", str(data), "-o", str(out), "--resume", "-q"), check=True, timeout=300
    )
    got = trace_ids(out)
    assert len(got) == len(set(got)), "a trace was written twice"
    assert sorted(got) == expected
    # Same content too, not just the same ids.
    records = [json.loads(x) for x in reference.read_bytes().splitlines()]
    by_key = {(r["source"]["path"], r["trace_id"]): r for r in records}
    for line in out.read_bytes().splitlines():
        record = json.loads(line)
        assert record == by_key[record["source"]["path"], record["trace_id"]]


def test_sigterm_stops_gracefully(sessions: Path, tmp_path: Path) -> None:
    data = corpus_many(sessions, tmp_path, copies=16)
    out = tmp_path / "o.jsonl"
    proc = subprocess.Popen(
        cli("annotate", str(data), "-o", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Readiness, not a guess: the first trace line is written after the signal handlers are
    # installed (the receiver is opened before the pipeline starts).
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if out.exists() and out.stat().st_size > 0:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 143
    assert "--resume" in err
    assert "traces" in err  # the summary was printed
    data_bytes = out.read_bytes()
    assert data_bytes == b"" or data_bytes.endswith(b"\n")
    for line in data_bytes.splitlines():
        json.loads(line)  # no torn line
    subprocess.run(
        cli("annotate", str(data), "-o", str(out), "--resume", "-q"), check=True, timeout=300
    )
    got = trace_ids(out)
    assert len(got) == len(set(got))


def test_disk_full_stops_the_run() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    result = subprocess.run(
        cli("annotate", str(EXAMPLES), "-o", "/dev/full", "--overwrite"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 2
    assert "cannot write /dev/full" in result.stderr


# -- a resume must continue the same run -------------------------------------------------------


def run_once(tmp_path: Path, *args: str) -> Path:
    """Annotate a copy of the example sessions into ``tmp_path/o.jsonl``; return the copy."""
    sessions = tmp_path / "sessions"
    shutil.copytree(EXAMPLES, sessions)
    result = run_cli("annotate", str(sessions), "-o", str(tmp_path / "o.jsonl"), *args)
    assert result.returncode == 0, result.stderr
    return sessions


@pytest.mark.parametrize(
    ("args", "difference"),
    [
        (["--layers", "raw"], "--layers: template,raw before, raw now"),
        (["--format", "claude_code"], "--format: auto before, claude_code now"),
        (["--drop-reasoning"], "reasoning kept (--drop-reasoning): True before, False now"),
        (["--detect", "tool_error"], "--detect: tool_error,user before, tool_error now"),
        (
            ["--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "m", "--no-judge-check"],
            "--layers: template,raw before, template,judge,raw now; judge model: none before, "
            "m now; judge prompt version: none before, 2 now",
        ),
        (["{extra}"], "inputs: new {extra}"),
    ],
)
def test_resume_with_other_settings_is_refused(
    tmp_path: Path, args: list[str], difference: str
) -> None:
    sessions = run_once(tmp_path)
    out = tmp_path / "o.jsonl"
    extra = tmp_path / "extra.jsonl"
    shutil.copy(next(sessions.glob("*.jsonl")), extra)
    before = out.read_bytes(), Path(journal_path(str(out))).read_bytes()
    args = [a.format(extra=extra) for a in args]
    result = run_cli("annotate", str(sessions), *args, "-o", str(out), "--resume")
    assert result.returncode == 2, result.stderr
    assert f"cannot resume {out}: it was written with other settings" in result.stderr
    assert difference.format(extra=extra) in result.stderr
    assert (out.read_bytes(), Path(journal_path(str(out))).read_bytes()) == before


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
@pytest.mark.parametrize("spelling", ["absolute", "symlink"])
def test_resume_with_inputs_spelled_otherwise_writes_each_trace_once(
    tmp_path: Path, spelling: str
) -> None:
    # The first run names its input relatively and is "killed" after one trace line.
    sessions = run_once(tmp_path / "run")
    out = tmp_path / "run" / "o.jsonl"
    relative = tmp_path / "rel.jsonl"
    result = run_cli("annotate", "sessions", "-o", str(relative), cwd=tmp_path / "run")
    assert result.returncode == 0, result.stderr
    expected = sorted(trace_ids(out))
    assert len(expected) > 1
    out.write_bytes(relative.read_bytes().splitlines(keepends=True)[0])
    journal = Path(journal_path(str(relative)))
    kept = [x for x in journal.read_bytes().splitlines(keepends=True) if b'"run"' in x]
    Path(journal_path(str(out))).write_bytes(b"".join(kept))
    if spelling == "symlink":
        named = tmp_path / "link"
        named.symlink_to(sessions, target_is_directory=True)
    else:
        named = sessions
    result = run_cli("annotate", str(named), "-o", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    got = trace_ids(out)
    assert len(got) == len(set(got)), "a trace was written twice"
    assert sorted(trace_id for _, trace_id in got) == sorted(t for _, t in expected)


def test_file_keys_resolve_as_realpath_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real" / "sub"
    real.mkdir(parents=True)
    (real / "a.jsonl").write_text("{}\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (real / "b.jsonl").symlink_to(real / "a.jsonl")
    (real / "broken.jsonl").symlink_to(tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path / "link")
    keys = FileKeys()
    spellings = [
        f"{tmp_path}/real/sub/a.jsonl",
        f"{tmp_path}/link/sub/a.jsonl",  # through a symlinked folder
        f"{tmp_path}/link/sub/b.jsonl",  # a symlinked file
        f"{tmp_path}//real/./sub/a.jsonl",
        f"{tmp_path}/link/sub/../sub/a.jsonl",  # `..` after a symlink
        "sub/a.jsonl",  # relative to a symlinked working folder
        "./sub/../sub/a.jsonl",
    ]
    for spelling in [*spellings, *spellings]:  # the second time from the folders seen
        key = keys.key(spelling)
        assert key == file_key(spelling)
        assert key is not None
        assert key.path == str((real / "a.jsonl").resolve())
    assert keys.key(str(real / "broken.jsonl")) is None
    assert keys.key("sub/missing.jsonl") is None
    # New folders under folders seen before (one of them through a symlink) resolve from them.
    (real / "deeper" / "deepest").mkdir(parents=True)
    (real / "deeper" / "deepest" / "c.jsonl").write_text("{}\n")
    (tmp_path / "real" / "linked").symlink_to(real / "deeper")
    for spelling in (
        f"{tmp_path}/link/sub/deeper/deepest/c.jsonl",
        f"{tmp_path}/real/linked/deepest/c.jsonl",
        "sub/deeper/../deeper/deepest/c.jsonl",
    ):
        key = keys.key(spelling)
        assert key == file_key(spelling)
        assert key is not None
        assert key.path == str((real / "deeper" / "deepest" / "c.jsonl").resolve())
