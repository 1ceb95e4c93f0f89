"""Real token formats never reach the judge nor a hint (#14 item 9).

``FORMATS`` (tests/secret_formats.py) holds fake tokens of real formats, each in a transcript
line; here they are redacted one by one, sent end to end through a loopback judge (whose
recorded requests are searched for them), and quoted by the templates.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from secret_formats import FORMATS
from tracehint import (
    ErrorKind,
    ErrorSite,
    Facts,
    HintRequest,
    RawErrorLayer,
    TemplateLayer,
    build_prompt,
    redact,
)
from tracehint._mockjudge import MockJudge, MockJudgeConfig

if TYPE_CHECKING:
    from pathlib import Path

MAX_REACHING_THE_JUDGE = 2
"""Of the formats (at least 43), at most this many may reach the judge."""


def fragments(secret: str, size: int = 12) -> list[str]:
    """Every window of ``size`` characters of ``secret`` (the whole of a short one)."""
    if len(secret) <= size:
        return [secret]
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def leaks(secret: str, text: str) -> bool:
    """Whether ``text`` holds ``secret`` or a 12-character piece of it."""
    return any(piece in text for piece in fragments(secret))


def test_the_table_is_big_enough() -> None:
    assert len(FORMATS) >= 43


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_is_redacted(name: str) -> None:
    secret, line = FORMATS[name]
    redacted = redact(line)
    assert not leaks(secret, redacted), redacted
    assert "[REDACTED" in redacted
    assert redact(redacted) == redacted


def _rollout(name: str, line: str) -> dict[str, Any]:
    """A rollout whose task, intent, failing call (JSON) and error all hold ``line``."""
    return {
        "id": f"secret-{name.replace(' ', '-')}",
        "messages": [
            {"role": "user", "content": f"Set up the deployment. The line is:\n{line}"},
            {
                "role": "assistant",
                "content": f"I'll run it:\n{line}",
                "tool_calls": [
                    {
                        "id": "call-1",
                        "type": "function",
                        "function": {"name": "bash", "arguments": json.dumps({"command": line})},
                    },
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call-1",
                "content": f"Error: authentication failed\n{line}",
            },
            {"role": "assistant", "content": "The credential was refused."},
        ],
    }


def _sent_texts(bodies: list[dict[str, Any]]) -> list[str]:
    return [
        message["content"]
        for body in bodies
        for message in body["messages"]
        if isinstance(message.get("content"), str)
    ]


async def test_at_most_two_formats_reach_the_judge_end_to_end(tmp_path: Path) -> None:
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text(
        "".join(json.dumps(_rollout(name, line)) + "\n" for name, (_, line) in FORMATS.items())
    )
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        result = await anyio.run_process(
            [
                sys.executable, "-m", "tracehint._main", "annotate", str(rollouts),
                "-o", str(tmp_path / "out.jsonl"), "--layers", "judge", "--no-cache",
                "--judge-url", judge.url, "--judge-model", "mock-judge",
            ],
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        bodies = list(judge.stats.bodies)
        prompts = list(judge.stats.prompts)
    assert len(prompts) == len(FORMATS)  # every site was asked, once
    assert len(bodies) == min(len(FORMATS), 100)
    sent = "\n".join([*_sent_texts(bodies), *prompts])
    reached = [name for name, (secret, _) in FORMATS.items() if leaks(secret, sent)]
    assert len(reached) <= MAX_REACHING_THE_JUDGE, reached
    assert "[REDACTED:" in sent


def _site(command: str, error: str, key_line: str) -> HintRequest:
    site = ErrorSite(
        kind=ErrorKind.COMMAND_FAILED,
        error_message=error,
        tool_use_id="toolu_1",
        tool_name="Bash",
        tool_input=json.dumps({"command": command}),
        tool_target=command,
        source_content_excerpt=error[:200],
        exit_code=128,
        facts=Facts(key_line=key_line),
        command=command,
    )
    return HintRequest(site, "", ("Bash",))


@pytest.mark.parametrize("prefix", ["", "cd /srv/releases/current && ", "x" * 40 + " && "])
def test_templates_never_copy_a_url_password_even_when_they_clamp(prefix: str) -> None:
    password = "Zq8" + "-vL2mN9pR4sT7uW1yB5cD3fG6hJ0kQ"
    command = f"{prefix}git clone https://deploy:{password}@git.example.com/org/repo.git"
    error = f"fatal: could not read from https://deploy:{password}@git.example.com/org/repo.git"
    request = _site(command, error, error)
    hint = TemplateLayer().render(request)
    assert hint is not None
    assert "git clone" in hint
    assert not leaks(password, hint), hint
    raw = RawErrorLayer().render(request)
    assert raw is not None
    assert not leaks(password, raw), raw


def test_a_secret_cut_by_a_prompt_clamp_is_still_redacted() -> None:
    secret, _ = FORMATS["github fine-grained token"]
    # The secret straddles the end of the task's budget (1,200 characters): clamped first,
    # it would be cut to a piece too short to recognise, and that piece would be sent.
    task = "x" * 1180 + " " + secret
    request = _site("git push", "Error: push refused", "Error: push refused")
    request = HintRequest(request.site, "", ("Bash",), first_instruction=task)
    prompt = build_prompt(request, instruction_chars=1200).user
    assert not leaks(secret, prompt)
    assert "x" * 1180 in prompt
