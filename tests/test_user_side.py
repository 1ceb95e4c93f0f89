"""The user's side of the command line: help texts, option checks, dates, the README."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio

from conftest import EXAMPLES, REPO, run_cli
from tracehint import (
    CachedHint,
    ErrorKind,
    ErrorSite,
    Facts,
    Hint,
    HintCache,
    HintSource,
    HintStatus,
    InputFormat,
    JudgeStats,
    MockJudge,
    MockJudgeConfig,
    Role,
    RunStats,
    Trace,
    TraceSource,
    Turn,
    TurnKind,
)
from tracehint._cli import _parser
from tracehint._progress import InputSize, progress_line
from tracehint._wire import trace_to_dict

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# -- --help ------------------------------------------------------------------------------------


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command and subcommand's parser, with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


def help_entries(text: str) -> dict[str, str]:
    """Each option's entry in a ``--help`` text (its lines joined), by option string."""
    entries: dict[str, str] = {}
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        starts = re.match(r"^  (-[^ ]+(?:, -[^ ]+)*)", line)
        if starts or not line.startswith("    "):
            if current:
                joined = " ".join(part.strip() for part in current)
                for name in re.findall(r"(?:^|, )(-[\w-]+)", current[0].strip()):
                    entries[name] = joined
            current = [line] if starts else []
        else:
            current.append(line)
    return entries


def test_every_help_shows_the_defaults() -> None:
    checked = 0
    for path, parser in parsers(_parser()):
        entries = help_entries(parser.format_help())
        for action in parser._actions:
            default = action.default
            if (
                not action.option_strings
                or action.nargs == 0
                or default in (None, [], argparse.SUPPRESS)
            ):
                continue
            entry = entries[action.option_strings[0]]
            assert "default" in entry, (path, action.option_strings, entry)
            checked += 1
    assert checked > 30
    # The real command says the same.
    result = run_cli("annotate", "--help")
    assert result.returncode == 0
    entries = help_entries(result.stdout)
    assert "(default: 5)" in entries["--max-attempts"]
    assert "(default: 10.0)" in entries["--grace"]
    assert "(default: 64)" in entries["--concurrency"]
    # A flag has nothing to default to; it is not given a misleading "(default: True)".
    assert "default" not in entries["--no-progress"]


def test_negative_grace_is_rejected(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    for value in ("-1", "-0.5", "nan", "soon"):
        result = run_cli("annotate", str(REPO / "examples"), "-o", str(out), "--grace", value)
        assert result.returncode == 2, (value, result.stderr)
        assert "--grace" in result.stderr
        assert not out.exists()
    result = run_cli("annotate", str(REPO / "examples"), "-o", str(out), "--grace", "0", "-q")
    assert result.returncode == 0, result.stderr


# -- cache stats -------------------------------------------------------------------------------


async def test_cache_stats_prints_dates(tmp_path: Path) -> None:
    cache = tmp_path / "hints.sqlite3"
    async with HintCache(cache) as hints:
        for key, created in (("a", 1_700_000_000.25), ("b", 1_750_000_000.0)):
            await hints.put(key, CachedHint("Read the file first.", "m", created, 10, 5))
    text = run_cli("cache", "stats", "--cache", str(cache))
    assert text.returncode == 0, text.stderr
    lines = dict(line.split(maxsplit=1) for line in text.stdout.splitlines())
    assert lines["oldest"] == "2023-11-14T22:13:20Z"
    assert lines["newest"] == "2025-06-15T15:06:40Z"
    assert not re.search(r"\d{10}\.\d", text.stdout)  # no unix time left anywhere
    found = run_cli("cache", "stats", "--json", "--cache", str(cache))
    data = json.loads(found.stdout)
    assert (data["oldest"], data["newest"]) == ("2023-11-14T22:13:20Z", "2025-06-15T15:06:40Z")
    empty = run_cli("cache", "stats", "--json", "--cache", str(tmp_path / "empty.sqlite3"))
    assert json.loads(empty.stdout)["oldest"] is None


# -- the README --------------------------------------------------------------------------------


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def every_field() -> dict[str, object]:
    """An output line with every optional field set."""
    values: dict[str, Any] = dict.fromkeys(Facts.__slots__, "x")
    facts = Facts(**values | {"paths": ("x",), "tests": ("x",), "codes": ("x",), "status": 404})
    site = ErrorSite(
        kind=ErrorKind.COMMAND_FAILED,
        error_message="boom",
        tool_use_id="t1",
        tool_name="Bash",
        tool_input='{"command": "make"}',
        tool_target="make",
        source_content_excerpt="[TOOL_RESULT (ERROR)] boom",
        consecutive_failures=2,
        failed_calls=1,
        exit_code=2,
        repeats=1,
        earlier_errors=("boom",),
        facts=facts,
        command="make",
        message_index=3,
        mistake_message_index=1,
    )
    hint = Hint(
        "Run make in the project root.",
        HintSource.JUDGE,
        HintStatus.OK,
        reason="r",
        model="m",
        judge_reason="j",
    )
    trace = Trace(
        trace_id="s",
        turns=(
            Turn(Role.USER, "[TOOL_RESULT (ERROR)] boom", TurnKind.TOOL_RESULTS),
            Turn(Role.ASSISTANT, "fixing", site=site, hint=hint),
        ),
        source=TraceSource("p", InputFormat.CLAUDE_CODE, "s", "a", "general-purpose", "d"),
    )
    return trace_to_dict(trace)


def keys(data: object) -> set[str]:
    if isinstance(data, dict):
        return set(data) | {k for value in data.values() for k in keys(value)}
    if isinstance(data, list):
        return {k for value in data for k in keys(value)}
    return set()


def test_readme_explains_every_output_field() -> None:
    line = every_field()
    fields = keys({k: v for k, v in line.items() if k != "messages"})
    assert {"consecutive_failures", "failed_calls", "repeats", "earlier_errors", "facts"} <= fields
    assert {"source_content_excerpt", "source_role", "message_index", "key_line"} <= fields
    documented = set(re.findall(r"`([a-z_]+)`", readme_section("Output format")))
    assert fields - documented == set()
    assert "underlying_kind" not in (REPO / "README.md").read_text()


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``.gitignore`` patterns (the simple forms this repo uses) cover ``path``."""
    parts = path.strip("/").split("/")
    for pattern in patterns:
        folder = pattern.endswith("/")
        name = pattern.strip("/")
        anchored = pattern.startswith("/") or "/" in name
        candidates = [parts[0]] if anchored else parts[:-1] if folder else parts
        if any(fnmatch.fnmatch(part, name) for part in candidates):
            return True
    return False


def test_quick_start_writes_where_gitignore_covers_it() -> None:
    intro = (REPO / "README.md").read_text().split("\n## ", 1)[0]
    quick = intro.split("```bash", 1)[1].split("```", 1)[0]
    outputs = re.findall(r"\s-o\s+(\S+)", quick)
    assert outputs
    patterns = [
        line.strip()
        for line in (REPO / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for output in outputs:
        # The output and the resume journal beside it.
        for path in (output, f"{output}.done"):
            assert ignored(path, patterns), path
    assert not ignored("src/tracehint/_main.py", patterns)


# -- --progress --------------------------------------------------------------------------------

PROGRESS = re.compile(rb"tracehint: files \d+.*\n")


async def test_progress_into_a_file_prints_a_plain_line_every_few_seconds(tmp_path: Path) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        judge.hold()  # the run waits on its judge requests while the test reads its lines
        command = [
            sys.executable, "-m", "tracehint._main", "annotate", str(EXAMPLES),
            "-o", str(tmp_path / "o.jsonl"), "--layers", "judge", "--no-cache",
            "--judge-url", judge.url, "--judge-model", "m", "--concurrency", "2",
            "--progress", "--progress-every", "0.2",
        ]  # fmt: skip
        async with await anyio.open_process(command) as proc:
            assert proc.stderr is not None
            seen = b""

            def settled() -> list[str]:
                """Lines printed once both requests were in flight and the total measured."""
                return [
                    line
                    for line in (x.decode() for x in PROGRESS.findall(seen))
                    if "judge 2 in flight" in line and re.search(r"files \d+/2 ", line)
                ]

            with anyio.fail_after(60):  # a line now and then, while nothing else happens
                while len(settled()) < 3:
                    seen += await proc.stderr.receive()
            held = settled()
            judge.release()
            with anyio.fail_after(60):
                seen += b"".join([chunk async for chunk in proc.stderr])
                assert await proc.wait() == 0, seen.decode()
    assert b"\r" not in seen
    assert b"\x1b" not in seen  # no terminal control sequences, no colours
    for line in held:
        assert re.search(r"judge 2 in flight, (\d+\.\d|-) req/s, 2 sent", line), line
        assert re.search(r"sites \d+/\d+ hinted", line), line
        assert re.search(r"ETA (\d+[smh]|-)", line), line


def test_progress_line_shows_the_judge_and_an_eta() -> None:
    stats = RunStats(files=3, traces=4, bytes_read=50_000_000, sites_found=10, sites_hinted=5)
    stats.finished = stats.started + 10.0
    judge = JudgeStats(requests=40, in_flight=3)
    line = progress_line(
        stats, judge=judge, total=InputSize(files=7, bytes=100_000_000), request_rate=4.0
    )
    assert line.startswith("tracehint: files 3/7  traces 4  sites 5/10 hinted")
    assert "judge 3 in flight, 4.0 req/s, 40 sent" in line
    # Half the bytes read in 10 s, but 5 of the 20 sites to expect hinted: 30 s to go.
    assert "ETA 30s" in line
    assert "elapsed 10s" in line
    assert "judge" not in progress_line(stats)
    assert "ETA -" in progress_line(stats)  # no total yet


# -- the tests run anywhere ----------------------------------------------------------------

COLLECT_PLUGIN = """
import json, os

def pytest_collection_finish(session):
    items = []
    for item in session.items:
        spec = getattr(item, "callspec", None)
        params = {k: str(v) for k, v in spec.params.items()} if spec else {}
        items.append({"id": item.nodeid, "fixtures": list(item.fixturenames), "params": params})
    with open(os.environ["TRACEHINT_COLLECTED"], "w") as out:
        json.dump(items, out)
"""


def test_tests_need_the_shared_corpus_only_for_corpus_wide_checks(tmp_path: Path) -> None:
    (tmp_path / "collected_plugin.py").write_text(COLLECT_PLUGIN)
    found = tmp_path / "collected.json"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TRACEHINT_COLLECTED": str(found)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "collected_plugin", str(REPO / "tests")],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    items = json.loads(found.read_text())
    needs_shared = [
        item["id"]
        for item in items
        if "shared_corpus" in item["fixtures"] or item["params"].get("claude_corpus") == "shared"
    ]
    shipped = [item["id"] for item in items if {"sessions", "sessions_copy"} & {*item["fixtures"]}]
    on_both = [item["id"] for item in items if item["params"].get("claude_corpus") == "tests/data"]
    # Tests that need real sessions use the ones shipped in tests/data; only checks of the
    # whole corpus (and their twins on the shipped sessions) still need ../shared.
    assert len(shipped) >= 15, shipped
    assert len(on_both) >= 10, on_both
    assert len(needs_shared) <= 30, needs_shared
    for name in ("test_stop.py", "test_resume.py", "test_judge_cli.py", "test_cli.py"):
        assert not [i for i in needs_shared if name in i], name
