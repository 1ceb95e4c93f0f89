"""The judge as a teacher, against the loopback mock judge: default layers, what the judge is
shown, JSON answers, bad answers, ``not_a_mistake`` verdicts and samples."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import orjson
import pytest

from conftest import EXAMPLES
from tracehint import (
    CORRECTION_SYSTEM_PROMPT,
    DEFAULT_TEMPLATES,
    SYSTEM_PROMPT,
    Annotator,
    AnnotatorConfig,
    ConfigError,
    ErrorKind,
    HintSource,
    HintStatus,
    JudgeConfig,
    MemorySink,
    MockAnswer,
    MockJudge,
    MockJudgeConfig,
    PipelineConfig,
    RetryPolicy,
    RunStats,
    Templates,
    annotate_files,
    teacher_messages,
    trace_to_dict,
)
from tracehint._mockjudge import mock_hint

if TYPE_CHECKING:
    from pathlib import Path

    from tracehint import Hint, Trace

TASK = "TASK-MARKER: add a --verbose flag to the CLI and make the tests pass."
INTENT = "INTENT-MARKER: I'll run the tests first to see what fails."
ERROR = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'mycli'"
NEXT = "NEXT-MARKER: the package is not installed; I'll run pip install -e . first."
NO_TEMPLATES = Templates(MappingProxyType({}))


def rollout() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": TASK},
        {
            "role": "assistant",
            "content": INTENT,
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "pytest -x"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call-1", "content": ERROR},
        {"role": "assistant", "content": NEXT},
    ]


def judge_config(url: str, **kw: Any) -> JudgeConfig:
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
    return JudgeConfig(url=url, model="mock-judge", timeout=5.0, retry=retry, **kw)


def annotator_config(url: str, **kw: Any) -> AnnotatorConfig:
    options: dict[str, Any] = {
        "layers": ("judge", "raw"),
        "judge": judge_config(url),
        "use_cache": False,
        "templates": NO_TEMPLATES,
    }
    options.update(kw)
    return AnnotatorConfig(**options)


async def one_site(config: AnnotatorConfig) -> tuple[Trace, Hint]:
    async with Annotator(config) as annotator:
        trace = await annotator.annotate(rollout())
    [(_, turn, _)] = list(trace.sites())
    assert turn.hint is not None
    return trace, turn.hint


def test_default_layers_ask_the_judge_before_the_raw_error() -> None:
    judge = judge_config("http://127.0.0.1:1/v1")
    assert AnnotatorConfig(judge=judge).layer_names() == ("template", "judge", "raw")
    assert AnnotatorConfig().layer_names() == ("template", "raw")
    with pytest.raises(ConfigError, match="samples"):
        AnnotatorConfig(judge=judge, judge_samples=0)


async def test_the_prompt_holds_the_task_and_the_error_but_not_the_next_message() -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        trace, hint = await one_site(annotator_config(judge.url, layers=None))
        [prompt] = judge.stats.prompts
    assert hint.status is HintStatus.OK
    assert hint.source is HintSource.JUDGE
    assert hint.text == mock_hint(prompt)  # the JSON answer was read, not kept as JSON
    assert "TASK-MARKER" in prompt
    assert "INTENT-MARKER" in prompt
    assert "No module named 'mycli'" in prompt
    assert "NEXT-MARKER" not in prompt
    assert judge.stats.system_prompts == {SYSTEM_PROMPT: 1}
    assert judge.stats.response_formats == {"json_schema": 1}
    assert trace_to_dict(trace)["turns"][-1]["hint"] == hint.text


async def test_the_next_message_is_shown_only_when_asked_for() -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        await one_site(annotator_config(judge.url, judge_show_next_action=True))
        [prompt] = judge.stats.prompts
    assert "NEXT-MARKER" in prompt


async def test_default_layers_judge_every_site_no_template_answers(
    sessions: Path,
) -> None:
    # Templates that answer one kind only: the judge must answer every other site.
    only_one = Templates(
        MappingProxyType(
            {ErrorKind.FILE_NOT_READ: DEFAULT_TEMPLATES.by_kind[ErrorKind.FILE_NOT_READ]}
        ),
    )
    sink, stats = MemorySink(), RunStats()
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        config = AnnotatorConfig(judge=judge_config(judge.url), use_cache=False, templates=only_one)
        async with Annotator(config) as annotator:
            await annotate_files(
                [sessions], chain=annotator.chain, sink=sink, stats=stats,
                config=PipelineConfig(max_traces_in_flight=4),
            )  # fmt: skip
        prompts = list(judge.stats.prompts)
        systems = judge.stats.system_prompts
    every = [
        turn for line in sink.lines for turn in orjson.loads(line)["turns"] if "tool_error" in turn
    ]
    sites = [s for s in every if s["detected_by"] == "tool_error"]
    corrections = [s for s in every if s["detected_by"] == "user"]
    assert corrections  # the user's corrections are rephrased by the judge too
    assert all(s["hint_source"] == "judge" for s in corrections)
    judged = [s for s in sites if s["tool_error"] != "file_not_read"]
    assert judged
    assert len(judged) < len(sites)
    for site in sites:
        expected = "template" if site["tool_error"] == "file_not_read" else "judge"
        assert (site["hint_source"], site["hint_status"]) == (expected, "ok"), site["tool_error"]
    # one system message per kind of request, byte for byte, every time
    assert set(systems) == {SYSTEM_PROMPT, CORRECTION_SYSTEM_PROMPT}
    assert systems[CORRECTION_SYSTEM_PROMPT] == len(corrections)
    hints = {mock_hint(p) for p in prompts}
    for site in judged:
        assert site["hint"] in hints
        error = site["error_meta"]["error_message"].strip().splitlines()[0][:40]
        assert any(error in p for p in prompts), error
        if len(site["content"]) > 40:
            assert not any(site["content"] in p for p in prompts)


GOOD_SHAPES = [MockAnswer.PLAIN, MockAnswer.FENCED, MockAnswer.THINK]


@pytest.mark.parametrize("answer", GOOD_SHAPES)
async def test_answers_in_any_good_shape_become_the_same_hint(answer: MockAnswer) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, answers=(answer,))) as judge:
        _, hint = await one_site(annotator_config(judge.url))
        [prompt] = judge.stats.prompts
        assert judge.stats.requests == 1
    assert hint.status is HintStatus.OK
    assert hint.text == mock_hint(prompt)


BAD = [
    (MockAnswer.CUT_OFF, "cut_off", 4),  # the client asks each twice (the budget doubled)
    (MockAnswer.THINK_UNTERMINATED, "unterminated_think", 2),
    (MockAnswer.ESSAY, "too_long", 2),
    (MockAnswer.ECHO, "echo", 2),
    (MockAnswer.GENERIC, "generic", 2),
    (MockAnswer.EMPTY, "empty", 3),  # the client retries an empty body itself
]


@pytest.mark.parametrize(("answer", "reason", "requests"), BAD)
async def test_bad_answers_never_become_hints(
    answer: MockAnswer, reason: str, requests: int
) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, answers=(answer,))) as judge:
        trace, hint = await one_site(annotator_config(judge.url))
        assert judge.stats.requests == requests
    assert hint.source is HintSource.RAW  # the next layer answered
    assert hint.status is HintStatus.OK
    assert hint.judge_reason is not None
    assert reason in hint.judge_reason
    turn = trace_to_dict(trace)["turns"][-1]
    assert turn["hint_source"] == "raw"
    assert reason in turn["judge_reason"]


@pytest.mark.parametrize(("answer", "reason", "requests"), BAD)
async def test_bad_answers_alone_leave_a_failed_site(
    answer: MockAnswer, reason: str, requests: int
) -> None:
    async with MockJudge(MockJudgeConfig(latency=0.0, answers=(answer,))) as judge:
        _, hint = await one_site(annotator_config(judge.url, layers=("judge",)))
        assert judge.stats.requests == requests
    assert hint.status is HintStatus.FAILED
    assert hint.text is None
    assert hint.reason is not None
    assert reason in hint.reason
    assert hint.judge_reason is None  # the reason is the judge's own, in ``reason``


async def test_a_rejected_answer_is_asked_once_more() -> None:
    mock = MockJudgeConfig(latency=0.0, answers=(MockAnswer.GENERIC, MockAnswer.HINT))
    async with MockJudge(mock) as judge:
        async with Annotator(annotator_config(judge.url)) as annotator:
            trace = await annotator.annotate(rollout())
            totals = annotator.stats()
            counters = totals.to_dict() if totals is not None else {}
        assert judge.stats.requests == 2
        assert judge.stats.system_prompts == {SYSTEM_PROMPT: 2}
        last = list(judge.stats.prompts)[-1]
    [(_, turn, _)] = list(trace.sites())
    assert turn.hint is not None
    assert turn.hint.source is HintSource.JUDGE
    assert turn.hint.text == mock_hint(last)
    assert "generic" in last  # the second ask says what was wrong with the first
    assert counters["judge_asked_again"] == 1
    assert counters["judge_rejected"] == {"generic": 1}


async def test_not_a_mistake_keeps_the_site_without_a_hint(tmp_path: Path) -> None:
    cache = tmp_path / "hints.sqlite3"
    mock = MockJudgeConfig(latency=0.0, answers=(MockAnswer.NOT_A_MISTAKE,))
    async with MockJudge(mock) as judge:
        config = annotator_config(judge.url, use_cache=True, cache_path=cache)
        trace, hint = await one_site(config)
        again, cached = await one_site(config)
        assert judge.stats.requests == 1  # the verdict is cached like a hint
    for found in (hint, cached):
        assert found.status is HintStatus.NOT_A_MISTAKE
        assert found.text is None
        assert found.source is HintSource.JUDGE
    assert cached.cached
    turn = trace_to_dict(again)["turns"][-1]
    assert turn["tool_error"]  # the site is kept
    assert (turn["hint"], turn["hint_status"]) == (None, "not_a_mistake")
    with pytest.raises(ConfigError, match="no hint"):
        teacher_messages(trace, len(trace.turns) - 1)


async def test_samples_keep_the_valid_answers_and_pick_one() -> None:
    mock = MockJudgeConfig(
        latency=0.0, answers=(MockAnswer.ESSAY, MockAnswer.HINT, MockAnswer.GENERIC)
    )
    async with MockJudge(mock) as judge:
        async with Annotator(annotator_config(judge.url, judge_samples=3)) as annotator:
            trace = await annotator.annotate(rollout())
            totals = annotator.stats()
            counters = totals.to_dict() if totals is not None else {}
        assert judge.stats.requests == 3
        [prompt] = judge.stats.prompts
    [(_, turn, _)] = list(trace.sites())
    assert turn.hint is not None
    assert turn.hint.text == mock_hint(prompt)
    assert counters["judge_rejected"] == {"too_long": 1, "generic": 1}


async def test_samples_with_no_valid_answer_fall_to_the_next_layer() -> None:
    mock = MockJudgeConfig(latency=0.0, answers=(MockAnswer.ESSAY, MockAnswer.GENERIC))
    async with MockJudge(mock) as judge:
        _, hint = await one_site(annotator_config(judge.url, judge_samples=2))
        assert judge.stats.requests == 4  # two samples, asked twice
    assert hint.source is HintSource.RAW
    assert hint.judge_reason is not None
    assert "asked again" in hint.judge_reason


async def test_most_samples_decide_the_verdict() -> None:
    answers = (MockAnswer.NOT_A_MISTAKE, MockAnswer.HINT, MockAnswer.NOT_A_MISTAKE)
    async with MockJudge(MockJudgeConfig(latency=0.0, answers=answers)) as judge:
        _, hint = await one_site(annotator_config(judge.url, judge_samples=3))
    assert hint.status is HintStatus.NOT_A_MISTAKE


async def run_cli(*args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    result = await anyio.run_process(
        [sys.executable, "-m", "tracehint._main", *args], env=env, check=False
    )
    return result.returncode, result.stderr.decode()


async def test_cli_default_layers_with_a_judge_and_bad_answers(tmp_path: Path) -> None:
    out, stats = tmp_path / "o.jsonl", tmp_path / "s.json"
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text(json.dumps({"messages": rollout()}) + "\n")
    mock = MockJudgeConfig(latency=0.0, answers=(MockAnswer.ESSAY,))
    async with MockJudge(mock) as judge:
        code, err = await run_cli(
            "annotate", str(EXAMPLES), str(rollouts), "-o", str(out), "--no-cache",
            "--judge-url", judge.url, "--judge-model", "m", "--layers", "judge,raw",
            "--stats-json", str(stats), "--judge-samples", "1",
        )  # fmt: skip
        assert code == 0, err
        assert judge.stats.requests > 0
    sites = [
        turn
        for line in out.read_text().splitlines()
        for turn in json.loads(line)["turns"]
        if "tool_error" in turn
    ]
    assert sites
    assert Counter(s["hint_source"] for s in sites) == {"raw": len(sites)}
    assert all("too_long" in s["judge_reason"] for s in sites)
    summary = json.loads(stats.read_text())
    assert summary["judge"]["judge_rejected"] == {"too_long": summary["judge"]["requests"]}
    assert "answers rejected: too_long" in err


async def test_cli_mock_judge_rejects_an_unknown_answer_kind() -> None:
    code, err = await run_cli("mock-judge", "--answers", "hint,nonsense", "--port", "0")
    assert code == 2
    assert "unknown answer kind 'nonsense'" in err


@pytest.mark.parametrize("answer", list(MockAnswer))
async def test_the_mock_judge_sends_each_answer_kind(answer: MockAnswer) -> None:
    async with (
        MockJudge(MockJudgeConfig(latency=0.0, answers=(answer,))) as judge,
        httpx.AsyncClient() as client,
    ):
        body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "p"}]}
        plain = (await client.post(f"{judge.url}/chat/completions", json=body)).json()
        body["response_format"] = {"type": "json_object"}
        structured = (await client.post(f"{judge.url}/chat/completions", json=body)).json()
        assert judge.stats.answers == {answer.value: 2}
        assert judge.stats.response_formats == {"none": 1, "json_object": 1}
    choice = structured["choices"][0]
    content = choice["message"]["content"]
    assert choice["finish_reason"] == ("length" if answer is MockAnswer.CUT_OFF else "stop")
    if answer in {MockAnswer.HINT, MockAnswer.ESSAY, MockAnswer.GENERIC, MockAnswer.ECHO}:
        assert set(orjson.loads(content)) == {"hint", "verdict"}
        assert plain["choices"][0]["message"]["content"] == orjson.loads(content)["hint"]
    if answer is MockAnswer.HINT:
        assert orjson.loads(content) == {"hint": mock_hint("p"), "verdict": "mistake"}
    if answer is MockAnswer.NOT_A_MISTAKE:
        assert orjson.loads(content)["verdict"] == "not_a_mistake"
