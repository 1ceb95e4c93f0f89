"""JSONL of OpenAI-style ``{"messages": [...]}`` records on the command line (rollouts)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from conftest import EXAMPLES, run_cli

if TYPE_CHECKING:
    from pathlib import Path


def rollout(i: int, *, error: str | None = None) -> dict[str, Any]:
    failing = error or (
        "Traceback (most recent call last):\n"
        f"FileNotFoundError: [Errno 2] No such file or directory: 'src/m{i}.py'"
    )
    return {
        "id": f"rollout-{i}",
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": f"Fix bug {i}"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call-{i}",
                        "type": "function",
                        "function": {"name": "run_tests", "arguments": '{"path": "tests/"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": f"call-{i}", "content": failing},
            {"role": "assistant", "content": "The module is missing; let me create it."},
        ],
    }


def annotate(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("annotate", *args)


def write_records(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rollouts_file_is_detected_and_tagged(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(EXAMPLES, folder)  # Claude Code sessions beside the rollouts
    rollouts = write_records(
        folder / "rollouts.jsonl",
        [
            json.dumps(rollout(0)),
            "{not json",
            json.dumps({"id": "no-messages"}),
            json.dumps({"messages": [{"role": "tool", "content": "orphan, no id"}]}),
            json.dumps(rollout(1, error="Error: permission denied: /etc/shadow")),
            json.dumps({"messages": [{"role": "user", "content": "hi"}]}),  # no id: file:line
        ],
    )
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    result = annotate(str(folder), "-o", str(out), "--errors", str(errors))
    assert result.returncode == 0, result.stderr
    traces = [json.loads(line) for line in out.read_text().splitlines()]
    mine = {t["trace_id"]: t for t in traces if t["source"]["path"] == str(rollouts)}
    assert set(mine) == {"rollout-0", "rollout-1", f"{rollouts}:6"}
    assert all(t["source"]["format"] == "openai" for t in mine.values())
    assert {t["source"]["format"] for t in traces} == {"openai", "claude_code"}
    for trace_id, kind in (("rollout-0", "file_not_found"), ("rollout-1", "permission_denied")):
        (site,) = [turn for turn in mine[trace_id]["turns"] if "tool_error" in turn]
        assert site["tool_error"] == kind
        assert site["error_meta"]["tool_name"] == "run_tests"
        assert site["error_meta"]["tool_input"] == '{"path":"tests/"}'
        assert site["hint"]
        assert site["hint_source"] == "template"
    issues = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [(i["path"], i["line"]) for i in issues] == [(str(rollouts), n) for n in (2, 3, 4)]
    assert "invalid JSON" in issues[0]["reason"]
    assert "'messages' list" in issues[1]["reason"]
    assert "message 0 (tool)" in issues[2]["reason"]


def test_format_option_overrides_detection(tmp_path: Path) -> None:
    rollouts = write_records(tmp_path / "r.jsonl", [json.dumps(rollout(i)) for i in range(3)])
    out = tmp_path / "o.jsonl"
    forced = annotate(
        str(rollouts), "-o", str(out), "--format", "openai", "--stats-json", f"{out}.s"
    )
    assert forced.returncode == 0, forced.stderr
    assert json.loads((tmp_path / "o.jsonl.s").read_text())["sites"] == 3
    # Read as Claude Code sessions, the same records are entries of no known type: skipped.
    wrong = annotate(
        str(rollouts), "-o", str(out), "--overwrite", "--format", "claude_code",
        "--stats-json", f"{out}.s",
    )  # fmt: skip
    # No transcript in the named path at all: said on stderr, exit 2.
    assert wrong.returncode == 2, wrong.stderr
    assert "no transcript found in the given paths" in wrong.stderr
    summary = json.loads((tmp_path / "o.jsonl.s").read_text())
    assert summary["sites"] == 0
    assert summary["input_issues"] == 3
