"""Trainer-ready teacher context: native ``messages``, both site indexes, teacher/student
messages, the output loader and ``tracehint export``.

Expectations come from the input itself (JSON-equal messages, raw message ids, a chat template
written here), never from tracehint's own rendering.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

import tracehint
from conftest import EXAMPLES, REPO, run_cli
from tracehint import (
    ConfigError,
    ErrorKind,
    HintPlacement,
    InputError,
    Trace,
    read_traces,
    student_messages,
    teacher_messages,
    trace_from_dict,
    trace_to_dict,
)

DATA = REPO / "tests" / "data"


def parallel_rollout() -> list[dict[str, Any]]:
    """An OpenAI-messages rollout: one assistant message with two calls, the second fails."""
    return [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Fix the failing test in src/app.py"},
        {
            "role": "assistant",
            "content": "I'll look at the file and run the tests.",
            "tool_calls": [
                {
                    "id": "call_read",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "src/app.py"}'},
                },
                {
                    "id": "call_cat",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "cat src/conf.py"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_read", "content": "def main():\n    pass\n"},
        {
            "role": "tool",
            "tool_call_id": "call_cat",
            "content": "cat: src/conf.py: No such file or directory",
        },
        {"role": "assistant", "content": "The config file is elsewhere; let me search."},
        {"role": "user", "content": "thanks"},
    ]


async def annotate_rollout(messages: list[dict[str, Any]]) -> Trace:
    async with tracehint.Annotator() as ann:
        return await ann.annotate(messages, trace_id="r1")


# -- OpenAI-messages input: the output messages are the input -----------------------------------


async def test_openai_messages_are_the_input_with_both_indexes() -> None:
    messages = parallel_rollout()
    trace = await annotate_rollout(messages)
    assert list(trace.messages) == messages
    ((turn_index, turn, site),) = list(trace.sites())
    assert site.kind is ErrorKind.FILE_NOT_FOUND
    assert site.mistake_message_index == 2  # the message that made the parallel calls
    assert site.message_index == 5  # the agent's next message
    assert turn.hint is not None
    assert turn.hint.text
    hint = {"role": "user", "content": turn.hint.text}
    for at, k in ((HintPlacement.MISTAKE, 2), (HintPlacement.RECOVERY, 5)):
        teacher = teacher_messages(trace, turn_index, at=at)
        assert teacher == [*messages[:k], hint, *messages[k:]]
        assert student_messages(trace, turn_index, at=at) == messages
    assert teacher_messages(trace, turn, at="mistake", hint_role="system")[2]["role"] == "system"


async def test_openai_output_line_round_trips(tmp_path: Path) -> None:
    messages = parallel_rollout()
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_bytes(orjson.dumps({"id": "r1", "messages": messages}) + b"\n")
    out = tmp_path / "out.jsonl"
    done = run_cli("annotate", str(rollouts), "-o", str(out), "-q")
    assert done.returncode == 0, done.stderr
    (line,) = out.read_bytes().splitlines()
    assert orjson.loads(line)["messages"] == messages
    (trace,) = read_traces(out)
    assert list(trace.messages) == messages
    ((index, _turn, _site),) = list(trace.sites())
    assert teacher_messages(trace, index, at="mistake")[:2] == messages[:2]


async def test_reasoning_is_kept_apart_and_can_be_dropped() -> None:
    messages = parallel_rollout()
    messages[2] = {**messages[2], "reasoning_content": "The test imports conf."}
    trace = await annotate_rollout(messages)
    assert trace.messages[2]["reasoning_content"] == "The test imports conf."
    index = next(trace.sites())[0]
    dropped = student_messages(trace, index, reasoning=False)
    assert "reasoning_content" not in dropped[2]
    assert dropped[2]["tool_calls"] == messages[2]["tool_calls"]
    assert "reasoning_content" not in trace_to_dict(trace, reasoning=False)["messages"][2]
    assert trace.messages[2]["reasoning_content"]  # the trace itself is untouched


async def test_teacher_messages_refuses_what_it_cannot_place() -> None:
    trace = await annotate_rollout(parallel_rollout())
    with pytest.raises(ConfigError, match="not an error site"):
        teacher_messages(trace, 0)
    with pytest.raises(ConfigError, match="hint placement"):
        teacher_messages(trace, next(trace.sites())[0], at="before")
    old = Trace(trace.trace_id, trace.turns, trace.source)  # output of an older tracehint
    with pytest.raises(ConfigError, match="annotate its session again"):
        teacher_messages(old, next(trace.sites())[0])


# -- Claude Code: one assistant message per API message, tool messages in call order ----------


def _cc(kind: str, uuid: str, content: object, message_id: str | None = None) -> bytes:
    message: dict[str, Any] = {"role": kind, "content": content}
    if kind == "assistant":
        message["id"] = message_id or f"msg-{uuid}"
        message["model"] = "claude-test"
    return orjson.dumps(
        {"type": kind, "uuid": uuid, "parentUuid": None, "sessionId": "s", "message": message}
    )


def _use(use_id: str, command: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": use_id, "name": "Bash", "input": {"command": command}}


def _res(use_id: str, text: str, *, error: bool) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": use_id, "content": text, "is_error": error}


def claude_session(tmp_path: Path, *, interleaved: bool) -> Path:
    """Thinking, text and two parallel calls written one block per entry (one message id).

    ``interleaved``: the first call's result arrives before the second call's entry, as
    Claude Code writes it when the first tool finishes quickly.
    """
    first = [
        _cc("user", "u0", "run the tests"),
        _cc("assistant", "a1", [{"type": "thinking", "thinking": "Check git first."}], "M1"),
        _cc("assistant", "a2", [{"type": "text", "text": "Running both."}], "M1"),
        _cc("assistant", "a3", [_use("t1", "git status")], "M1"),
    ]
    second = _cc("assistant", "a4", [_use("t2", "pytest -q tests/test_x.py")], "M1")
    ok = _cc("user", "r1", [_res("t1", "nothing to commit", error=False)])
    failed = _cc(
        "user",
        "r2",
        [_res("t2", "Exit code 127\n/bin/bash: line 1: pytest: command not found", error=True)],
    )
    lines = [*first, ok, second, failed] if interleaved else [*first, second, ok, failed]
    lines.append(_cc("assistant", "a5", [{"type": "text", "text": "Using python -m."}], "M2"))
    path = tmp_path / "session.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("interleaved", [False, True])
async def test_claude_code_parallel_calls_are_one_message(
    tmp_path: Path, interleaved: bool
) -> None:
    out = tmp_path / "out.jsonl"
    done = run_cli(
        "annotate", str(claude_session(tmp_path, interleaved=interleaved)), "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    (trace,) = read_traces(out)
    assert list(trace.messages) == [
        {"role": "user", "content": "run the tests"},
        {
            "role": "assistant",
            "content": "Running both.",
            "reasoning_content": "Check git first.",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "Bash", "arguments": '{"command":"git status"}'},
                },
                {
                    "id": "t2",
                    "type": "function",
                    "function": {
                        "name": "Bash",
                        "arguments": '{"command":"pytest -q tests/test_x.py"}',
                    },
                },
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "nothing to commit"},
        {
            "role": "tool",
            "tool_call_id": "t2",
            "content": "Exit code 127\n/bin/bash: line 1: pytest: command not found",
        },
        {"role": "assistant", "content": "Using python -m."},
    ]
    ((_index, _turn, site),) = list(trace.sites())
    assert (site.mistake_message_index, site.message_index) == (1, 4)
    # the seeds' turns are unchanged: tool calls flattened, results merged into one user turn
    assert [t.role.value for t in trace.turns] == ["user", "assistant", "user", "assistant"]


def assert_well_formed(trace: Trace) -> None:
    """Every tool message answers an earlier call; both indexes of every site are assistant
    messages with the failed call's tool message between them."""
    calls: dict[str, int] = {}
    for index, message in enumerate(trace.messages):
        assert message["role"] in {"system", "user", "assistant", "tool"}, message
        for call in message.get("tool_calls") or ():
            assert isinstance(call["function"]["arguments"], str)
            calls[call["id"]] = index
        if message["role"] == "tool":
            assert message["tool_call_id"] in calls, (trace.trace_id, index)
    for _turn_index, _turn, site in trace.sites():
        recovery, mistake = site.message_index, site.mistake_message_index
        assert recovery is not None
        assert trace.messages[recovery]["role"] == "assistant"
        if mistake is None:  # the result answers no call of the conversation
            continue
        assert trace.messages[mistake]["role"] == "assistant"
        assert mistake < recovery
        between = trace.messages[mistake + 1 : recovery]
        if site.tool_use_id in calls:
            assert calls[site.tool_use_id] == mistake
            assert any(m.get("tool_call_id") == site.tool_use_id for m in between)
        else:  # a text-protocol agent: no function call, the result shown as a user message
            assert not trace.messages[mistake].get("tool_calls")
            assert [m["role"] for m in between] == ["user"], (trace.trace_id, site.tool_use_id)


def _raw_message_ids(path: Path) -> set[str]:
    """Ids of the model's own messages in a Claude Code file, read with plain json."""
    ids: set[str] = set()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        message = entry.get("message")
        if entry.get("type") != "assistant" or not isinstance(message, dict):
            continue
        if entry.get("isApiErrorMessage") or message.get("model") == "<synthetic>":
            continue
        ids.add(message["id"])
    return ids


async def _annotated(tmp_path: Path, *paths: Path) -> list[Trace]:
    out = tmp_path / "annotated.jsonl"
    done = run_cli("annotate", *map(str, paths), "-o", str(out), "--overwrite", "-q")
    assert done.returncode in {0, 1}, done.stderr
    return list(read_traces(out))


async def test_claude_code_examples_are_well_formed(tmp_path: Path) -> None:
    files = sorted(EXAMPLES.glob("*.jsonl"))
    traces = await _annotated(tmp_path, *files)
    assert sum(1 for t in traces for _ in t.sites()) > 0
    for trace in traces:
        assert_well_formed(trace)
    for file in files:
        mine = [t for t in traces if t.source.path == str(file)]
        assistants = sum(1 for t in mine for m in t.messages if m["role"] == "assistant")
        assert assistants == len(_raw_message_ids(file))


async def test_real_claude_code_sessions_are_well_formed(
    shared_corpus: Path, tmp_path: Path
) -> None:
    roots = [shared_corpus, shared_corpus.parent / "claude_code_more"]
    traces = await _annotated(tmp_path, *(r for r in roots if r.is_dir()))
    sites = 0
    parallel = 0
    for trace in traces:
        assert_well_formed(trace)
        sites += sum(1 for _ in trace.sites())
        parallel += sum(1 for m in trace.messages if len(m.get("tool_calls") or ()) > 1)
    assert sites > 50
    assert parallel > 0
    assert any(t.source.agent_id is not None for t in traces)  # sub-agents: traces of their own


# -- every format ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder",
    ["anthropic", "atif", "codex", "gemini_cli", "openai_responses", "openhands", "swe_agent"],
)
async def test_every_format_gives_well_formed_messages(tmp_path: Path, folder: str) -> None:
    traces = await _annotated(tmp_path, DATA / folder)
    assert traces
    for trace in traces:
        assert trace.messages
        assert_well_formed(trace)
        # the turns and the messages tell the same conversation
        said = sum(
            1 for t in trace.turns if t.role.value == "assistant" and t.kind.value != "api_error"
        )
        assert said == sum(1 for m in trace.messages if m["role"] == "assistant")


async def test_swe_agent_text_protocol_keeps_what_the_model_saw(tmp_path: Path) -> None:
    """The thought-action format: the model wrote text and was shown the observation."""
    traj = DATA / "swe_agent" / "default" / "marshmallow-code__marshmallow-1867.traj"
    (trace,) = await _annotated(tmp_path, traj)
    steps = json.loads(traj.read_text())["trajectory"]
    said = [m["content"] for m in trace.messages if m["role"] == "assistant"]
    assert said == [step["response"] for step in steps]
    assert not any(m.get("tool_calls") for m in trace.messages)


TOOL = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Run a shell command.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
    },
}


async def test_tool_definitions_travel_with_the_trace(tmp_path: Path) -> None:
    """The tools the agent was given reach the output and the export rows (chat templates
    render them); Anthropic and Responses API definitions are put in the chat shape."""
    anthropic_tool = {
        "name": "bash",
        "description": "Run a shell command.",
        "input_schema": TOOL["function"]["parameters"],  # type: ignore[index]
    }
    records = tmp_path / "records.jsonl"
    records.write_bytes(
        orjson.dumps({"id": "o1", "messages": parallel_rollout(), "tools": [TOOL]})
        + b"\n"
        + orjson.dumps(
            {
                "id": "a1",
                "tools": [anthropic_tool, {"type": "web_search_20250305", "name": "web"}],
                "messages": [
                    {"role": "user", "content": "list files"},
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "tool_use",
                                "id": "u1",
                                "name": "bash",
                                "input": {"command": "ls /nope"},
                            }
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "u1",
                                "is_error": True,
                                "content": "ls: cannot access '/nope': No such file or directory",
                            }
                        ],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": "Wrong path."}]},
                ],
            }
        )
        + b"\n"
    )
    out, rows_path = tmp_path / "out.jsonl", tmp_path / "rows.jsonl"
    for fmt in ("openai", "anthropic"):
        part = tmp_path / f"{fmt}.jsonl"
        part.write_bytes(records.read_bytes().splitlines()[fmt == "anthropic"] + b"\n")
        done = run_cli("annotate", str(part), "-o", str(out), "--format", fmt, "--overwrite")
        assert done.returncode == 0, done.stderr
        (trace,) = read_traces(out)
        assert list(trace.tools) == [TOOL]
        done = run_cli("export", str(out), "-o", str(rows_path), "--overwrite")
        assert done.returncode == 0, done.stderr
        (row,) = [orjson.loads(line) for line in rows_path.read_bytes().splitlines()]
        assert row["tools"] == [TOOL]
    async with tracehint.Annotator() as ann:
        trace = await ann.annotate(parallel_rollout(), tools=[TOOL])
    assert trace_to_dict(trace)["tools"] == [TOOL]


# -- the loader --------------------------------------------------------------------------------


async def test_trace_round_trips_through_its_output_line() -> None:
    trace = await annotate_rollout(parallel_rollout())
    again = trace_from_dict(orjson.loads(orjson.dumps(trace_to_dict(trace))))
    assert again.turns == trace.turns
    assert again.messages == trace.messages
    assert (again.trace_id, again.source) == (trace.trace_id, trace.source)


def test_loader_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    source = '"source": {"path": "s.jsonl", "format": "codex"}'
    path.write_text('{"trace_id": "a", "turns": [], ' + source + "}\n\n[1, 2]\n")
    with pytest.raises(InputError, match=r"out\.jsonl:3: .*expected a JSON object"):
        list(read_traces(path))
    path.write_text('{"trace_id": "a", "turns": [{"role": "wizard", "content": ""}]}\n')
    with pytest.raises(InputError, match=r"out\.jsonl:1: not a tracehint output trace"):
        list(read_traces(path))
    path.write_text('{"trace_id": "a", "turns": [], "source": {"path": "s", "format": "x"}}\n')
    with pytest.raises(InputError, match=r"out\.jsonl:1: .*source format 'x' is not one of"):
        list(read_traces(path))
    with pytest.raises(InputError, match="cannot read"):
        list(read_traces(tmp_path / "missing.jsonl"))


# -- a chat template renders the teacher as the student plus one hint block -----------------

CHATML = (
    "{% for m in messages %}"
    "<|im_start|>{{ m.role }}{{ nl }}"
    "{% if m.reasoning_content %}<think>{{ m.reasoning_content }}</think>{{ nl }}{% endif %}"
    "{% if m.role == 'tool' %}<tool_response id={{ m.tool_call_id }}>{% endif %}"
    "{{ m.content or '' }}"
    "{% if m.role == 'tool' %}</tool_response>{% endif %}"
    '{% for c in m.tool_calls or [] %}{{ nl }}<tool_call>{"name": "{{ c.function.name }}", '
    '"arguments": {{ c.function.arguments }}}</tool_call>{% endfor %}'
    "<|im_end|>{{ nl }}"
    "{% endfor %}"
)


def _render(messages: list[dict[str, Any]]) -> str:
    jinja2 = pytest.importorskip("jinja2")
    template = jinja2.Environment(autoescape=False).from_string(CHATML)
    return str(template.render(messages=messages, nl="\n"))


@pytest.mark.parametrize("at", ["mistake", "recovery"])
async def test_chat_template_teacher_is_student_plus_hint(tmp_path: Path, at: str) -> None:
    traces = await _annotated(
        tmp_path, claude_session(tmp_path, interleaved=True), *EXAMPLES.glob("*.jsonl")
    )
    checked = 0
    for trace in traces:
        for index, turn, _site in trace.sites():
            if turn.hint is None or not turn.hint.text:
                continue
            k = tracehint.site_message_index(trace, index, at=at)
            student = _render(student_messages(trace, index, at=at))
            teacher = _render(teacher_messages(trace, index, at=at))
            block = f"<|im_start|>user\n{turn.hint.text}<|im_end|>\n"
            cut = len(_render(list(trace.messages[:k])))
            assert teacher == student[:cut] + block + student[cut:]
            assert "<tool_call>" in student  # calls are rendered natively, not as text
            checked += 1
    assert checked > 3


# -- export ------------------------------------------------------------------------------------


@pytest.fixture
def annotated(tmp_path: Path) -> Path:
    out = tmp_path / "annotated.jsonl"
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_bytes(orjson.dumps({"id": "r1", "messages": parallel_rollout()}) + b"\n")
    done = run_cli(
        "annotate", str(rollouts), *map(str, EXAMPLES.glob("*.jsonl")), "-o", str(out), "-q"
    )
    assert done.returncode in {0, 1}, done.stderr
    return out


@pytest.mark.parametrize("at", ["mistake", "recovery"])
def test_export_rows_are_prompt_completion_teacher_prompt(
    annotated: Path, tmp_path: Path, at: str
) -> None:
    rows_path = tmp_path / "sites.jsonl"
    done = run_cli("export", str(annotated), "-o", str(rows_path), "--at", at)
    assert done.returncode == 0, done.stderr
    assert "rows from" in done.stderr
    rows = [orjson.loads(line) for line in rows_path.read_bytes().splitlines()]
    traces = {t.trace_id: t for t in read_traces(annotated)}
    hinted = sum(
        1
        for t in traces.values()
        for _, turn, _ in t.sites()
        if turn.hint is not None and turn.hint.text
    )
    assert len(rows) == hinted > 3
    for row in rows:
        trace = traces[row["trace_id"]]
        k = row["message_index"]
        assert k == row[f"{at}_message_index" if at == "mistake" else "recovery_message_index"]
        assert row["prompt"] == list(trace.messages[:k])
        assert row["completion"] == [trace.messages[k]]
        assert row["completion"][0]["role"] == "assistant"
        assert row["teacher_prompt"] == [*row["prompt"], {"role": "user", "content": row["hint"]}]
        assert row["at"] == at
        assert row["kind"] in {k.value for k in ErrorKind}


def test_export_filters_by_layer_and_refuses_to_clobber(annotated: Path, tmp_path: Path) -> None:
    rows_path = tmp_path / "sites.jsonl"
    done = run_cli("export", str(annotated), "-o", str(rows_path), "--sources", "template")
    assert done.returncode == 0, done.stderr
    rows = [orjson.loads(line) for line in rows_path.read_bytes().splitlines()]
    assert {row["hint_source"] for row in rows} == {"template"}
    again = run_cli("export", str(annotated), "-o", str(rows_path))
    assert again.returncode == 2
    assert "already exists" in again.stderr
    itself = run_cli("export", str(annotated), "-o", str(annotated), "--overwrite")
    assert itself.returncode == 2
    assert "one of the inputs" in itself.stderr
    bad = run_cli("export", str(annotated), "-o", str(tmp_path / "x.jsonl"), "--sources", "magic")
    assert bad.returncode == 2
    assert "unknown layer magic" in bad.stderr


def test_export_of_a_session_file_says_what_it_is(tmp_path: Path) -> None:
    session = next(EXAMPLES.glob("*.jsonl"))
    done = run_cli("export", str(session), "-o", str(tmp_path / "rows.jsonl"))
    assert done.returncode == 2
    assert f"{session}:1: not a tracehint output trace" in done.stderr
    assert not (tmp_path / "rows.jsonl").exists()


def test_export_parquet(annotated: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    jsonl, parquet = tmp_path / "sites.jsonl", tmp_path / "sites.parquet"
    assert run_cli("export", str(annotated), "-o", str(jsonl), "--at", "mistake").returncode == 0
    done = run_cli("export", str(annotated), "-o", str(parquet), "--at", "mistake")
    assert done.returncode == 0, done.stderr
    table = pq.read_table(parquet).to_pylist()
    rows = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    assert len(table) == len(rows)

    def plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in m.items() if v is not None} for m in messages]

    for got, want in zip(table, rows, strict=True):
        assert got["hint"] == want["hint"]
        assert plain(got["prompt"]) == want["prompt"]
        assert plain(got["teacher_prompt"]) == want["teacher_prompt"]


def test_export_loads_with_datasets(
    annotated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    jsonl, parquet = tmp_path / "sites.jsonl", tmp_path / "sites.parquet"
    for path in (jsonl, parquet):
        done = run_cli("export", str(annotated), "-o", str(path))
        assert done.returncode == 0, done.stderr
    expected = len(jsonl.read_bytes().splitlines())
    for kind, path in (("json", jsonl), ("parquet", parquet)):
        rows = datasets.load_dataset(
            kind, data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
        )
        assert len(rows) == expected
        assert {"prompt", "completion", "teacher_prompt", "hint"} <= set(rows.column_names)
        first = rows[0]
        assert first["completion"][0]["role"] == "assistant"
        assert first["teacher_prompt"][-1]["content"] == first["hint"]
