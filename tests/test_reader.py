"""The reader pass (``--detect reader``) against the loopback judge, on real sessions.

The mock judge reads the numbered transcript it is sent and answers findings, or the findings a
reader must drop (message numbers that do not exist or are not an assistant's, quotes not in the
trace, generic hints), or no JSON at all.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import anyio
import orjson
import pytest

from conftest import REPO, run_cli
from tracehint import (
    Annotator,
    AnnotatorConfig,
    ConfigError,
    DetectedBy,
    ErrorKind,
    Finding,
    HintSource,
    JudgeConfig,
    MockJudge,
    MockJudgeConfig,
    ReaderConfig,
    Redactor,
    Trace,
    parse_session,
    place_findings,
    read_findings,
    reader_windows,
    trace_from_dict,
    trace_to_dict,
)
from tracehint._context import message_text
from tracehint._mockjudge import MockReaderAnswer
from tracehint._reader import assistant_turns

DATA = REPO / "tests" / "data" / "claude_code_corrections"
IDE_SESSION = DATA / "9e953218-585f-4692-89df-9e0747a31c68.jsonl"
TESTS_SESSION = DATA / "937c6e6b-27e7-4edd-86f1-ad28f9731841.jsonl"
EVERYTHING = frozenset({DetectedBy.TOOL_ERROR, DetectedBy.USER, DetectedBy.READER})
WINDOW = ReaderConfig(window_chars=20_000, overlap_chars=3_000)


def trace_of(path: Path) -> Trace:
    parsed = parse_session(path.read_bytes(), path=str(path))
    (trace,) = [t for t in parsed.traces if "/" not in t.trace_id]
    return trace


def config(
    url: str, *, cache: Path | None = None, reader: ReaderConfig = WINDOW
) -> AnnotatorConfig:
    return AnnotatorConfig(
        judge=JudgeConfig(url=url, model="mock-judge"),
        layers=("template", "raw"),
        detect=EVERYTHING,
        use_cache=cache is not None,
        cache_path=cache,
        reader=reader,
    )


async def read(
    trace: Trace,
    answers: tuple[MockReaderAnswer, ...],
    cache: Path | None = None,
    reader: ReaderConfig = WINDOW,
) -> tuple[Trace, dict[str, object], MockJudge]:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0, reader_answers=answers)) as judge,
        Annotator(config(judge.url, cache=cache, reader=reader)) as annotator,
    ):
        out = await annotator.annotate_trace(trace)
        totals = annotator.stats()
        stats = totals.to_dict() if totals is not None else {}
    return out, stats, judge


def reader_sites(trace: Trace) -> list[tuple[int, Finding]]:
    return [
        (i, s.finding)
        for i, _, s in trace.sites()
        if s.detected_by is DetectedBy.READER and s.finding is not None
    ]


# -- windows ---------------------------------------------------------------------------------


def test_windows_are_bounded_overlap_and_cover_every_message() -> None:
    trace = trace_of(IDE_SESSION)
    windows = reader_windows(trace, WINDOW, Redactor().redact)
    assert len(windows) > 2
    assert windows[0].first == 0
    assert windows[-1].last == len(trace.messages) - 1
    for before, after in itertools.pairwise(windows):
        assert before.first < after.first <= before.last + 1  # it advances, and overlaps
        assert after.first <= before.last
    for window in windows:
        body = window.user.split("\n", 1)[1]
        assert len(body) <= WINDOW.window_chars + 200
        assert window.assistants
        assert all(trace.messages[i]["role"] == "assistant" for i in window.assistants)
        for index in range(window.first, window.last + 1):
            assert f"[{index}] {trace.messages[index]['role']}:" in window.user
    # One window when it fits.
    big = ReaderConfig(window_chars=100_000)
    (whole,) = reader_windows(trace_of(TESTS_SESSION), big, Redactor().redact)
    assert (whole.first, whole.last) == (0, len(trace_of(TESTS_SESSION).messages) - 1)


def test_the_reader_never_sees_thinking_or_secrets() -> None:
    trace = trace_of(IDE_SESSION)
    thinking = [m["reasoning_content"] for m in trace.messages if m.get("reasoning_content")]
    secret = "sk-ant-api03-" + "x" * 90
    messages = (*trace.messages[:-1], {"role": "user", "content": f"my key is {secret}"})
    windows = reader_windows(
        Trace(trace.trace_id, trace.turns, trace.source, messages=messages),
        WINDOW,
        Redactor().redact,
    )
    text = "\n".join(w.user for w in windows)
    assert secret not in text
    for block in thinking:
        first = block.strip().splitlines()[0]
        if len(first) > 40:
            assert first not in text


# -- one request per window, findings checked --------------------------------------------------


async def test_one_request_per_window_and_findings_become_sites() -> None:
    trace = trace_of(IDE_SESSION)
    windows = reader_windows(trace, WINDOW, Redactor().redact)
    out, stats, judge = await read(trace, (MockReaderAnswer.FINDINGS,))
    assert judge.stats.reader_requests == len(windows)
    reader = stats["reader"]
    assert isinstance(reader, dict)
    assert reader["requests"] == reader["windows"] == len(windows)
    assert reader["prompt_tokens"] > 0
    assert judge.stats.response_formats["json_schema"] == len(windows)
    found = reader_sites(out)
    assert found
    assert reader["findings"] == len(found) + reader["merged"]
    assistants = [i for i, m in enumerate(out.messages) if m["role"] == "assistant"]
    for index, finding in found:
        site = out.turns[index].site
        hint = out.turns[index].hint
        assert site is not None
        assert hint is not None
        assert (hint.source, hint.text) == (HintSource.READER, finding.hint)
        assert site.kind is ErrorKind.FALSE_CLAIM
        assert site.mistake_message_index == finding.message_index
        assert out.messages[finding.message_index]["role"] == "assistant"
        assert " ".join(finding.quote.split()) in " ".join(
            message_text(out.messages[finding.message_index]).split()
        )
        later = [i for i in assistants if i > finding.message_index]
        assert site.message_index == (later[0] if later else finding.message_index)


async def test_findings_on_a_message_with_a_site_are_merged_into_it() -> None:
    trace = trace_of(IDE_SESSION)
    out, stats, _ = await read(trace, (MockReaderAnswer.FINDINGS,))
    merged = [
        (index, site)
        for index, _, site in out.sites()
        if site.finding is not None and site.detected_by is not DetectedBy.READER
    ]
    reader = stats["reader"]
    assert isinstance(reader, dict)
    assert len(merged) == reader["merged"] > 0
    for index, site in merged:
        assert site.finding is not None
        assert site.mistake_message_index == site.finding.message_index
        hint = out.turns[index].hint
        assert hint is not None
        assert hint.source is not HintSource.READER  # its own detector's hint; both reasons kept
    # One site per message, and the output keeps both reasons.
    assert out.site_count == trace.site_count + len(reader_sites(out))
    line = trace_to_dict(out)
    written = [t for t in line["turns"] if "reader" in t]
    assert len(written) == len(merged) + len(reader_sites(out))
    assert trace_from_dict(orjson.loads(orjson.dumps(line))).turns == out.turns


@pytest.mark.parametrize(
    ("answer", "reasons"),
    [
        (MockReaderAnswer.NONE, set()),
        (MockReaderAnswer.BAD_MESSAGE, {"bad_message", "not_assistant"}),
        (MockReaderAnswer.FAKE_QUOTE, {"quote_not_found"}),
        (MockReaderAnswer.BAD_HINT, {"bad_hint"}),
    ],
)
async def test_invalid_findings_are_dropped_and_counted(
    answer: MockReaderAnswer, reasons: set[str]
) -> None:
    trace = trace_of(IDE_SESSION)
    out, stats, judge = await read(trace, (answer,))
    assert reader_sites(out) == []
    assert out.site_count == trace.site_count
    reader = stats["reader"]
    assert isinstance(reader, dict)
    assert set(reader["dropped"]) == reasons
    assert reader["findings"] == 0
    assert reader["failed_windows"] == 0
    assert judge.stats.reader_requests == reader["windows"]


async def test_mixed_answers_keep_only_the_valid_findings() -> None:
    trace = trace_of(IDE_SESSION)
    good, good_stats, _ = await read(trace, (MockReaderAnswer.FINDINGS,))
    mixed, stats, _ = await read(trace, (MockReaderAnswer.MIXED,))
    assert reader_sites(mixed) == reader_sites(good)
    reader = stats["reader"]
    assert isinstance(reader, dict)
    assert {"bad_message", "not_assistant", "quote_not_found", "bad_hint"} <= set(reader["dropped"])
    assert reader["findings"] == good_stats["reader"]["findings"]  # type: ignore[index]


async def test_an_unreadable_answer_is_asked_again_then_fails_uncached(tmp_path: Path) -> None:
    trace = trace_of(TESTS_SESSION)
    cache = tmp_path / "hints.sqlite3"
    one = ReaderConfig(window_chars=100_000)
    out, stats, judge = await read(trace, (MockReaderAnswer.MALFORMED,), cache, one)
    reader = stats["reader"]
    assert isinstance(reader, dict)
    assert reader["windows"] == 1
    assert judge.stats.reader_requests == reader["requests"] == 2  # asked once more, told why
    assert judge.stats.bodies[-1]["messages"][-1]["content"].startswith(
        "That answer cannot be used"
    )
    assert reader["failed_windows"] == 1
    assert reader_sites(out) == []
    # Nothing was cached: the next run asks again, and keeps what it gets.
    again, stats, judge = await read(trace, (MockReaderAnswer.FINDINGS,), cache, one)
    assert judge.stats.reader_requests == 1
    assert reader_sites(again)


async def test_a_warm_rerun_sends_no_request(tmp_path: Path) -> None:
    trace = trace_of(IDE_SESSION)
    cache = tmp_path / "hints.sqlite3"
    cold, cold_stats, cold_judge = await read(trace, (MockReaderAnswer.FINDINGS,), cache)
    assert cold_judge.stats.reader_requests > 0
    warm, stats, judge = await read(trace, (MockReaderAnswer.FINDINGS,), cache)
    assert judge.stats.requests == 0
    reader = stats["reader"]
    assert isinstance(reader, dict)
    assert reader["requests"] == 0
    assert reader["cache_hits"] == reader["windows"] == cold_stats["reader"]["windows"]  # type: ignore[index]
    assert [(i, f.message_index, f.quote, f.hint) for i, f in reader_sites(warm)] == [
        (i, f.message_index, f.quote, f.hint) for i, f in reader_sites(cold)
    ]


def test_the_reader_needs_a_judge() -> None:
    with pytest.raises(ConfigError, match="reader"):
        Annotator(AnnotatorConfig(detect=EVERYTHING))


# -- checking findings, pure -------------------------------------------------------------------


def test_read_findings_checks_every_field() -> None:
    trace = trace_of(TESTS_SESSION)
    (window,) = reader_windows(trace, ReaderConfig(window_chars=100_000), Redactor().redact)
    assistant = max(window.assistants)
    quote = " ".join(message_text(trace.messages[assistant]).split())[:60]
    good = {
        "message": assistant,
        "kind": "unverified_claim",
        "quote": quote,
        "hint": "Run the test suite before you say the mocks keep the tests working.",
    }
    answer = {
        "findings": [
            good,
            {**good, "kind": "typo"},
            {**good, "message": -1},
            {**good, "quote": "tiny"},
            {**good, "hint": "The user later said the tests failed, so run them first."},
            {**good, "hint": "x" * 700},
            good,
        ]
    }
    found = read_findings(f"```json\n{json.dumps(answer)}\n```", window, ReaderConfig())
    assert found.malformed is None
    assert [(f.message_index, f.kind) for f in found.findings] == [
        (assistant, ErrorKind.UNVERIFIED_CLAIM)
    ]
    assert found.dropped == Counter(
        {
            "bad_kind": 1,
            "bad_message": 1,
            "quote_not_found": 1,
            "hindsight": 1,
            "bad_hint": 1,
            "duplicate": 1,
        }
    )
    assert read_findings("<think>hmm</think>\nnot json", window, ReaderConfig()).malformed
    empty = read_findings('{"findings": []}', window, ReaderConfig())
    assert (empty.findings, empty.malformed) == ([], None)


def test_a_finding_on_the_last_message_sits_on_its_own_turn() -> None:
    trace = trace_of(TESTS_SESSION)
    last = max(i for i, m in enumerate(trace.messages) if m["role"] == "assistant")
    quote = " ".join(message_text(trace.messages[last]).split())[:40]
    finding = Finding(ErrorKind.FALSE_CLAIM, last, quote, "Commit the work before you say done.")
    placed, dropped = place_findings(trace, [finding])
    assert not dropped
    ((index, site),) = [(i, s) for i, _, s in placed.sites() if s.finding is not None]
    assert site.message_index == site.mistake_message_index == last
    turns = assistant_turns(placed)
    assert turns is not None
    assert turns[last] == index  # the mistake's own turn: there is no later message


# -- the command line --------------------------------------------------------------------------


async def test_cli_detect_reader_summary_and_warm_rerun(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    shutil.copy(TESTS_SESSION, sessions)
    cache = tmp_path / "hints.sqlite3"
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        runs = []
        for name in ("cold", "warm"):
            out, stats = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
            code, err = await cli(
                "annotate", str(sessions), "-o", str(out), "--stats-json", str(stats),
                "--detect", "tool_error,user,reader", "--layers", "template,raw",
                "--judge-url", judge.url, "--judge-model", "mock-judge", "--cache", str(cache),
                "--reader-window-chars", "100000", "--no-progress",
            )  # fmt: skip
            assert code == 0, err
            runs.append((err, json.loads(stats.read_text()), out))
            if name == "cold":
                assert judge.stats.reader_requests == 1
        assert judge.stats.reader_requests == 1  # the warm rerun sent nothing
    (cold_err, cold, cold_out), (_, warm, warm_out) = runs
    assert "reader     1 windows of 1 traces, 1 requests" in cold_err
    assert cold["judge"]["reader"]["requests"] == 1
    assert warm["judge"]["reader"]["cache_hits"] == 1
    assert warm["judge"]["requests"] == 0
    assert cold["sites_by_detector"].get("reader", 0) + cold["judge"]["reader"]["merged"] > 0
    assert cold_out.read_text() == warm_out.read_text()

    no_judge = run_cli(
        "annotate", str(sessions), "-o", str(tmp_path / "x.jsonl"), "--detect", "reader"
    )
    assert no_judge.returncode == 2
    assert "needs a judge" in no_judge.stderr


async def cli(*args: str) -> tuple[int, str]:
    """``tracehint ARGS`` in a subprocess, while the loopback judge keeps answering."""
    result = await anyio.run_process([sys.executable, "-m", "tracehint._main", *args], check=False)
    return result.returncode, result.stderr.decode()
