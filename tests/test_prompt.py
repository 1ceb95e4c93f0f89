"""Prompt v2 and the site context it is built from (pure, sync)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import orjson

from tracehint import (
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    ErrorKind,
    ErrorSite,
    HintRequest,
    InputFormat,
    Limits,
    PromptOptions,
    Redactor,
    Role,
    SecretPattern,
    Trace,
    TraceSource,
    Turn,
    TurnKind,
    build_correction_prompt,
    build_prompt,
    cache_key,
    parse_session,
    requests_for,
)
from tracehint._redact_records import redact_request, redact_requests

TASK = "Add a --verbose flag to the CLI in cli.py and make the tests pass."
LATER = "Also keep the old -v alias working."
INTENT = "I'll run the test suite to see what fails before changing cli.py."
THOUGHT = "SECRET-THOUGHT the user probably wants argparse"
NEXT = "NEXT-MESSAGE The tests need the package installed; I'll run pip install -e . first."
CALL = orjson.dumps({"command": "pytest -x tests/", "description": "Run tests"}).decode()
ERROR = "ModuleNotFoundError: No module named 'mycli'"


def site(**kw: object) -> ErrorSite:
    fields: dict[str, object] = {
        "kind": ErrorKind.SCRIPT_ERROR,
        "error_message": ERROR,
        "tool_use_id": "toolu_2",
        "tool_name": "Bash",
        "tool_input": CALL,
        "tool_target": "pytest -x tests/",
        "source_content_excerpt": ERROR,
    }
    fields.update(kw)
    return ErrorSite(**fields)  # type: ignore[arg-type]


def trace(*, at_site: ErrorSite | None = None) -> Trace:
    turns = (
        Turn(Role.SYSTEM, "You are a coding agent."),
        Turn(Role.USER, TASK),
        Turn(Role.ASSISTANT, '[TOOL_CALL Read] {"file_path":"cli.py"}'),
        Turn(Role.USER, "[TOOL_RESULT] Read: import argparse", TurnKind.TOOL_RESULTS),
        Turn(Role.USER, "<command-name>/clear</command-name>"),
        Turn(Role.USER, "Summary of the conversation so far …", TurnKind.COMPACT_SUMMARY),
        Turn(Role.USER, f"<ide_opened_file>cli.py</ide_opened_file>{LATER}"),
        Turn(Role.USER, "[Request interrupted by user for tool use]"),
        Turn(
            Role.ASSISTANT,
            f"[THINKING]\n{THOUGHT}\nmore thought\n{INTENT}\n[TOOL_CALL Bash] "
            '{"command":"ls"}\n' + f"{INTENT}\n[TOOL_CALL Bash] {CALL}",
        ),
        Turn(Role.USER, f"[TOOL_RESULT (ERROR)] Bash: {ERROR}", TurnKind.TOOL_RESULTS),
        Turn(Role.ASSISTANT, NEXT, site=at_site or site()),
        Turn(Role.USER, "LATER-INSTRUCTION never seen by the site above"),
    )
    return Trace(
        "t1", turns, TraceSource("x.jsonl", InputFormat.CLAUDE_CODE), tools_used=("Read", "Bash")
    )


def only_request(t: Trace) -> HintRequest:
    found = requests_for(t, Limits())
    assert len(found) == 1
    assert found[0][0] == 10
    return found[0][1]


def test_requests_carry_the_task_the_intent_and_the_next_message() -> None:
    request = only_request(trace())
    assert request.first_instruction == TASK
    assert request.latest_instruction == LATER  # notices stripped, meta turns skipped
    assert request.intent == INTENT  # thinking and tool-call lines dropped
    assert request.next_action == NEXT
    assert request.tools_used == ("Read", "Bash")


def test_prompt_holds_the_site_and_not_the_next_message() -> None:
    prompt = build_prompt(only_request(trace()))
    messages = prompt.messages()
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert [m["role"] for m in messages] == ["system", "user"]
    user = prompt.user
    for part in (TASK, LATER, INTENT, ERROR, "command: pytest -x tests/", "script_error"):
        assert part in user, part
    assert "Read, Bash" in user
    for absent in ("NEXT-MESSAGE", "SECRET-THOUGHT", "LATER-INSTRUCTION", "Summary of the"):
        assert absent not in user, absent
        assert absent not in prompt.system
    shown = build_prompt(only_request(trace()), show_next_action=True)
    assert "NEXT-MESSAGE" in shown.user
    assert "do not copy it" in shown.user


def test_the_system_message_is_the_same_bytes_for_every_site() -> None:
    prompts = [
        build_prompt(HintRequest(site(error_message=f"error {i}", kind=kind), f"next {i}"))
        for i, kind in enumerate(ErrorKind)
    ]
    prompts.append(build_prompt(only_request(trace()), show_next_action=True))
    assert {p.messages()[0]["content"].encode() for p in prompts} == {SYSTEM_PROMPT.encode()}
    assert len({p.user for p in prompts}) == len(prompts)
    # The rules the judge gets.
    for rule in ("two sentences", "later steps", "do not solve", "not_a_mistake", '"hint"'):
        assert rule in SYSTEM_PROMPT.lower() or rule in SYSTEM_PROMPT, rule


def test_repeats_get_one_line_per_earlier_attempt() -> None:
    repeated = site(
        kind=ErrorKind.SCRIPT_ERROR,
        consecutive_failures=3,
        repeats=2,
        earlier_errors=("first\nfailure   text", "second failure"),
    )
    user = build_prompt(HintRequest(repeated)).user
    assert "1. first failure text\n2. second failure" in user
    assert "(2 before this one)" in user
    assert "failed 3 times in a row" in user


def test_long_heredocs_and_html_are_shortened() -> None:
    body = "\n".join(f"line {i} of a generated file" for i in range(400))
    command = f"cat > gen.py <<'EOF'\n{body}\nEOF\npython gen.py"
    html = "<!DOCTYPE html><html><body>" + "<div>row</div>" * 400 + "</body></html>"
    call = orjson.dumps({"command": command, "content": html}).decode()
    user = build_prompt(HintRequest(site(tool_input=call))).user
    assert "cat > gen.py <<'EOF'" in user
    assert "[heredoc body: 400 lines" in user
    assert "python gen.py" in user
    assert "line 200 of a generated file" not in user
    assert "[HTML, " in user
    assert user.count("<div>row</div>") < 40


def test_long_results_put_the_error_lines_first() -> None:
    noise = "\n".join(f"collected item {i}" for i in range(300))
    result = f"{noise}\nE   AssertionError: expected 3, got 4\nFAILED tests/test_x.py::test_y"
    user = build_prompt(HintRequest(site(error_message=result))).user
    section = user.split("## Its result (error first)\n", 1)[1]
    assert section.startswith("Error lines:\nE   AssertionError: expected 3, got 4")
    assert len(user) < 6000


def test_instructions_and_intent_are_redacted_and_bounded() -> None:
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
    request = HintRequest(
        site(),
        first_instruction=f"Use the key {secret} to call the API. " + "x" * 5000,
        intent=f"Calling with OPENAI_API_KEY={secret}",
    )
    user = build_prompt(request).user
    assert secret not in user
    assert len(user) < 4000


def test_cache_key_covers_the_prompt_version_and_the_answer_options() -> None:
    request = only_request(trace())
    assert PROMPT_VERSION == 2
    assert cache_key("m", request) != cache_key("m", request, answer="samples=3")
    assert cache_key("m", request) == cache_key("m", only_request(trace()))


def test_cache_key_covers_the_prompt_options_and_every_field_the_prompt_shows() -> None:
    request = only_request(trace())
    key = cache_key("m", request)
    assert key == cache_key("m", request, options=PromptOptions())
    # Options that change the prompt change the key.
    assert key != cache_key("m", request, options=PromptOptions(error_chars=500))
    assert key != cache_key("m", request, options=PromptOptions(show_next_action=True))
    extra = SecretPattern("internal", re.compile(r"itk_[a-z0-9]{8}"))
    redactor = Redactor().with_patterns(extra)
    assert key != cache_key("m", request, options=PromptOptions(redactor=redactor))
    # Every field the prompt is built from is part of the key ...
    changed = [
        replace(request, first_instruction="Do something else."),
        replace(request, latest_instruction="And then this."),
        replace(request, intent="I will look around first."),
        replace(request, tools_used=("Read",)),
        replace(request, site=replace(request.site, error_message="another error")),
        replace(request, site=replace(request.site, tool_input='{"command": "ls"}')),
        replace(request, site=replace(request.site, tool_name="Shell")),
        replace(request, site=replace(request.site, exit_code=3)),
        replace(request, site=replace(request.site, repeats=2, earlier_errors=("boom",))),
        replace(request, site=replace(request.site, kind=ErrorKind.TIMEOUT)),
    ]
    assert len({key, *(cache_key("m", other) for other in changed)}) == len(changed) + 1
    # ... and the next action only when the prompt shows it.
    other_next = replace(request, next_action="Something else entirely.")
    assert cache_key("m", other_next) == key
    shown = PromptOptions(show_next_action=True)
    assert cache_key("m", other_next, options=shown) != cache_key("m", request, options=shown)


def test_prompt_options_build_the_same_prompt_as_build_prompt() -> None:
    request = only_request(trace())
    options = PromptOptions(show_next_action=True, error_chars=300)
    assert options.build(request) == build_prompt(request, show_next_action=True, error_chars=300)


def test_a_site_with_no_instruction_or_call_text_still_builds() -> None:
    bare = Trace(
        "t2",
        (
            Turn(Role.ASSISTANT, "[TOOL_CALL Bash] {}"),
            Turn(Role.USER, "[TOOL_RESULT (ERROR)] Bash: boom", TurnKind.TOOL_RESULTS),
            Turn(Role.ASSISTANT, "ok", site=site(tool_input="{}", error_message="boom")),
        ),
        TraceSource("y.jsonl", InputFormat.OPENAI),
    )
    [(index, request)] = requests_for(bare, Limits())
    assert index == 2
    assert (request.first_instruction, request.latest_instruction, request.intent) == ("", "", "")
    user = build_prompt(request).user
    assert "## User's task\n(none)" in user
    assert "(nothing stated)" in user


def shipped_traces() -> list[Trace]:
    """The traces of every session in ``tests/data``."""
    data = Path(__file__).parent / "data"
    return [
        trace
        for path in sorted(data.rglob("*"))
        if path.is_file() and path.suffix in {".jsonl", ".json", ".traj"}
        for trace in parse_session(path.read_bytes(), path=str(path)).traces
    ]


def test_prompts_redact_what_they_show_as_the_whole_request_would() -> None:
    requests = [
        request for trace in shipped_traces() for _, request in requests_for(trace, Limits())
    ]
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
    requests.append(HintRequest(site(error_message=f"token {secret}"), f"echo {secret}"))
    assert len(requests) > 20
    redactor = Redactor()
    for request in requests:
        whole = redact_request(request, redactor)
        for shown in (False, True):
            expected = build_prompt(whole, Redactor(()), show_next_action=shown)
            assert build_prompt(request, redactor, show_next_action=shown) == expected
        expected = build_correction_prompt(whole, Redactor(()))
        assert build_correction_prompt(request, redactor) == expected


def test_the_requests_of_a_trace_redacted_together_as_each_alone() -> None:
    traces = shipped_traces()
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
    redactor = Redactor()
    checked = 0
    for trace in traces:
        requests = [request for _, request in requests_for(trace, Limits())]
        requests += [HintRequest(site(error_message=f"token {secret}"), f"echo {secret}")] * 2
        together = redact_requests(requests, redactor)
        assert together == [redact_request(request, redactor) for request in requests]
        assert all(secret not in request.site.error_message for request in together)
        checked += len(requests)
    assert checked > 20
