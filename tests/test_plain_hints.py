"""Hints are plain text: no control characters reach the output or the cache (#14 item 7)."""

from __future__ import annotations

import json
import sqlite3
import sys
import unicodedata
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from tracehint import Hint, HintSource, HintStatus
from tracehint._mockjudge import MockAnswer, MockJudge, MockJudgeConfig, control_hint, mock_hint
from tracehint._plaintext import plain_text

if TYPE_CHECKING:
    from pathlib import Path

ESC = "\x1b"

# (text, what plain_text makes of it)
CASES: list[tuple[str, str]] = [
    ("plain ASCII, kept.\nSecond line.", "plain ASCII, kept.\nSecond line."),
    ("café, 日本語, emoji 👨\u200d👩\u200d👧", "café, 日本語, emoji 👨\u200d👩\u200d👧"),
    ("nul\x00byte", "nulbyte"),
    (f"{ESC}[1;31mred{ESC}[0m text", "red text"),
    (f"{ESC}[2J{ESC}[Hcleared", "cleared"),
    (f"title{ESC}]0;owned{ESC}\\ and{ESC}]8;;http://x\x07link{ESC}]8;;\x07", "title andlink"),
    (f"save{ESC}7 restore{ESC}8", "save restore"),
    ("\x9b31mC1 CSI", "C1 CSI"),
    ("bell\x07", "bell"),
    ("back\x08\x08space", "backspace"),
    ("hidden\rshown", "hidden\nshown"),
    ("windows\r\nline", "windows\nline"),
    ("rtl \u202eevil\u202c end", "rtl evil end"),
    ("isolate \u2066x\u2069 \u200e\u200f\u061c", "isolate x "),
    ("line\u2028sep\u2029para\x85next", "line\nsep\npara\nnext"),
    ("tab\there", "tab here"),
    ("zero\u200bwidth\ufeff\u00ad", "zerowidth"),
    ("tags \U000e0049\U000e0047\U000e004e", "tags "),
    ("surrogate \ud800 gone", "surrogate  gone"),
    ("del\x7f vt\x0b ff\x0c", "del vt\n ff\n"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_plain_text_keeps_text_and_newlines(text: str, expected: str) -> None:
    cleaned = plain_text(text)
    assert cleaned == expected
    assert plain_text(cleaned) == cleaned


def _is_plain(text: str) -> bool:
    return all(
        c == "\n"
        or (unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Zl", "Zp"})
        or c in "\u200c\u200d"
        for c in text
    )


def test_every_hint_record_is_plain_text() -> None:
    dirty = control_hint("Read the file before you edit it.")
    hint = Hint(dirty, HintSource.JUDGE, HintStatus.OK, reason=f"x{ESC}[31m", judge_reason="\x00y")
    assert hint.text == "Read the file before you edit it."
    assert (hint.reason, hint.judge_reason) == ("x", "y")
    assert Hint(None, None, HintStatus.NO_HINT).text is None


def _rollout(i: int, error: str, command: str = "make test") -> dict[str, Any]:
    return {
        "id": f"rollout-{i}",
        "messages": [
            {"role": "user", "content": f"Fix the build {i}"},
            {
                "role": "assistant",
                "content": "Running it.",
                "tool_calls": [
                    {
                        "id": f"call-{i}",
                        "type": "function",
                        "function": {"name": "bash", "arguments": json.dumps({"command": command})},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": f"call-{i}", "content": error},
            {"role": "assistant", "content": "Let me look."},
        ],
    }


def _hints(out: Path) -> list[str]:
    return [
        turn["hint"]
        for line in out.read_text().splitlines()
        for turn in json.loads(line)["turns"]
        if turn.get("hint")
    ]


async def _annotate(*args: str) -> tuple[int, str]:
    result = await anyio.run_process(
        [sys.executable, "-m", "tracehint._main", "annotate", *args], check=False
    )
    return result.returncode, result.stderr.decode()


async def test_judge_hints_with_control_characters_are_cleaned_before_cache_and_output(
    tmp_path: Path,
) -> None:
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text(
        "\n".join(json.dumps(_rollout(i, f"Error: target {i} failed")) for i in range(3)) + "\n"
    )
    cache = tmp_path / "hints.sqlite3"
    config = MockJudgeConfig(latency=0.0, answers=(MockAnswer.CONTROL,))
    async with MockJudge(config) as judge:
        common = [str(rollouts), "--layers", "judge", "--judge-url", judge.url]
        common += ["--judge-model", "mock-judge", "--cache", str(cache), "--overwrite"]
        code, err = await _annotate(*common, "-o", str(tmp_path / "a.jsonl"))
        assert code == 0, err
        assert judge.stats.answers == {MockAnswer.CONTROL.value: 3}
        prompts = list(judge.stats.prompts)
        # What was written and what was cached is the hint as plain text.
        hints = _hints(tmp_path / "a.jsonl")
        assert sorted(hints) == sorted(mock_hint(p) for p in prompts)
        assert all(_is_plain(h) for h in hints)
        with sqlite3.connect(cache) as db:
            cached = [row[0] for row in db.execute("SELECT text FROM hints")]
        assert sorted(cached) == sorted(hints)

        # A cache written by an older version holds hints as they were received: read back,
        # they are plain text too.
        with sqlite3.connect(cache) as db:
            db.execute("UPDATE hints SET text = ?  || text || ?", (f"{ESC}[31m\u202e", "\x07\x00"))
        code, err = await _annotate(*common, "-o", str(tmp_path / "b.jsonl"))
        assert code == 0, err
        assert judge.stats.requests == 3  # all three came from the cache
    assert sorted(_hints(tmp_path / "b.jsonl")) == sorted(hints)


def test_template_and_raw_hints_are_plain_text(tmp_path: Path) -> None:
    from conftest import run_cli  # noqa: PLC0415 -- the shared helper

    colored = f"Error: {ESC}[31mbuild{ESC}[0m failed\r\x07 at step \u202e2\x00"
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text(
        json.dumps(_rollout(0, colored))
        + "\n"
        # a command the template quotes, with control characters in it
        + json.dumps(
            _rollout(1, "Error: No such file or directory: 'x.py'", f"python x.py{ESC}[2J\x08")
        )
        + "\n"
    )
    for layers in ("template", "raw"):
        out = tmp_path / f"{layers}.jsonl"
        result = run_cli("annotate", str(rollouts), "-o", str(out), "--layers", layers)
        assert result.returncode == 0, result.stderr
        hints = _hints(out)
        assert len(hints) == 2
        assert all(_is_plain(h) for h in hints), hints
        assert any("build failed" in h for h in hints), hints
    assert any("build failed\n at step 2" in h for h in hints), hints  # the raw error text
