"""The written traces keep no secret of the transcripts (``--redact-output``, #14 item 10)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import orjson

from conftest import EXAMPLES, assert_not_written, run_cli
from secret_formats import FORMATS
from tracehint import Annotator, AnnotatorConfig, Redactor, SecretPattern, read_traces
from tracehint._redact_records import redact_json_text

if TYPE_CHECKING:
    from pathlib import Path

GITHUB, _ = FORMATS["github classic token"]
ANTHROPIC, _ = FORMATS["anthropic key"]
PASSWORD, MYSQL_LINE = FORMATS["mysql -p"]
AWS, _ = FORMATS["aws access key id"]
JWT, _ = FORMATS["jwt"]
SECRETS = (GITHUB, ANTHROPIC, PASSWORD, AWS, JWT)


def messages() -> list[dict[str, Any]]:
    """A rollout with a secret in every place a trace keeps text."""
    arguments = json.dumps({"command": MYSQL_LINE, "env": {"password": "hunter2-" + PASSWORD}})
    return [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": f"Deploy with GITHUB_TOKEN={GITHUB}, then check the db."},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": f"Using the key {ANTHROPIC} as asked."}],
            "reasoning_content": f"The user gave me {AWS}; I should not print it.",
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "bash", "arguments": arguments},
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call-1",
            "content": f"Error: access denied for {MYSQL_LINE}\nAuthorization: Bearer {JWT}",
        },
        {"role": "assistant", "content": "The password was refused."},
    ]


def write_rollout(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "rollouts.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"id": "r1", "messages": messages()}) + "\n")
    return path


def check_redacted(trace: dict[str, Any]) -> None:
    text = orjson.dumps(trace).decode()
    for secret in SECRETS:
        assert secret not in text
    call = trace["messages"][2]["tool_calls"][0]
    arguments = json.loads(call["function"]["arguments"])  # still valid JSON
    assert set(arguments) == {"command", "env"}
    assert arguments["command"].startswith("mysql -h db -u root -p[REDACTED")
    assert arguments["env"]["password"].startswith("[REDACTED")
    assert call["id"] == "call-1"
    assert call["function"]["name"] == "bash"
    assert [m["role"] for m in trace["messages"]] == [m["role"] for m in messages()]
    assert trace["messages"][3]["tool_call_id"] == "call-1"
    site = next(t for t in trace["turns"] if "tool_error" in t)
    meta = site["error_meta"]
    assert "[REDACTED" in meta["error_message"]
    assert "[REDACTED" in meta["tool_input"]
    assert "[REDACTED" in meta["source_content_excerpt"]


def test_annotate_redacts_the_output_by_default(tmp_path: Path) -> None:
    rollouts = write_rollout(tmp_path)
    out = tmp_path / "out" / "traces.jsonl"
    out.parent.mkdir()
    result = run_cli("annotate", str(rollouts), "-o", str(out), "--layers", "raw")
    assert result.returncode == 0, result.stderr
    [trace] = [json.loads(line) for line in out.read_text().splitlines()]
    check_redacted(trace)
    assert_not_written(PASSWORD, out.parent)
    # The explicit flag is the same.
    again = tmp_path / "out" / "again.jsonl"
    result = run_cli(
        "annotate", str(rollouts), "-o", str(again), "--layers", "raw", "--redact-output"
    )
    assert result.returncode == 0, result.stderr
    assert again.read_bytes() == out.read_bytes()


def test_no_redact_output_writes_the_transcripts_as_read(tmp_path: Path) -> None:
    rollouts = write_rollout(tmp_path)
    out = tmp_path / "traces.jsonl"
    result = run_cli(
        "annotate", str(rollouts), "-o", str(out), "--layers", "raw", "--no-redact-output"
    )
    assert result.returncode == 0, result.stderr
    [trace] = read_traces(out)
    assert list(trace.messages) == messages()  # the input itself
    # Hints are redacted either way: the raw error text never copies the password.
    [(_, turn, _)] = trace.sites()
    assert turn.hint is not None
    assert turn.hint.text is not None
    assert PASSWORD not in turn.hint.text
    assert "[REDACTED:password]" in turn.hint.text


async def test_annotator_redact_output() -> None:
    async with Annotator(AnnotatorConfig(redact_output=True)) as ann:
        trace = await ann.annotate(messages())
    data = orjson.loads(orjson.dumps({"messages": list(trace.messages)}))
    for secret in SECRETS:
        assert secret not in orjson.dumps(data).decode()
    assert all(secret not in turn.content for turn in trace.turns for secret in SECRETS)
    # Off by default: a rollout worker trains on the messages it passed in.
    async with Annotator(AnnotatorConfig()) as ann:
        plain = await ann.annotate(messages())
    assert list(plain.messages) == messages()


def test_the_examples_keep_their_shape_when_redacted(tmp_path: Path) -> None:
    redacted, kept = tmp_path / "r.jsonl", tmp_path / "k.jsonl"
    assert run_cli("annotate", str(EXAMPLES), "-o", str(redacted)).returncode == 0
    assert run_cli("annotate", str(EXAMPLES), "-o", str(kept), "--no-redact-output").returncode == 0
    a = {t.trace_id: t for t in read_traces(redacted)}
    b = {t.trace_id: t for t in read_traces(kept)}
    assert a.keys() == b.keys()
    for trace_id, trace in a.items():
        other = b[trace_id]
        assert len(trace.turns) == len(other.turns)
        assert len(trace.messages) == len(other.messages)
        assert [t.hint for t in trace.turns] == [t.hint for t in other.turns]


def test_json_arguments_stay_valid_when_a_match_spans_a_quote() -> None:
    # A site-specific pattern that takes the closing quote: redacting the JSON as text would
    # break it, so each value is redacted on its own.
    greedy = SecretPattern("greedy", re.compile(r'secret"?:\s*"[^"]*"'))
    redactor = Redactor(patterns=(greedy,))
    text = '{"secret": "abc", "keep": "x", "nested": {"secret": "def"}}'
    found = json.loads(redact_json_text(text, redactor))
    assert found["keep"] == "x"
    assert "abc" not in json.dumps(found)
    assert "def" not in json.dumps(found)
    # Not JSON: redacted as text.
    assert redact_json_text('{"secret": "abc"', redactor) == '{"[REDACTED:greedy]'
