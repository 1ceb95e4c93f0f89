"""Every agent's transcripts, read from real files: traces, error sites, detection, issues.

The files under ``tests/data/<format>/`` are copies of published transcripts (see the README
there) and small fixtures written from each format's documentation.
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import pytest

from conftest import REPO, run_cli
from tracehint import (
    Annotator,
    HintChain,
    InputFormat,
    PipelineConfig,
    RawErrorLayer,
    RunStats,
    TemplateLayer,
    annotate_files,
    parse_session,
)
from tracehint._ingest.formats import detect
from tracehint._output import MemorySink

if TYPE_CHECKING:
    from pathlib import Path

    from tracehint import InputIssue, Trace

DATA = REPO / "tests" / "data"
CHAIN = HintChain((TemplateLayer(), RawErrorLayer()))
OPENHANDS_RUNS = DATA / "openhands" / "evaluation" / "output.jsonl"
OPENHANDS_OLD = DATA / "openhands" / "resolver" / "output.jsonl"
OPENHANDS_SESSION = DATA / "openhands" / "sessions" / "63b4315947a049e2b7a51249b3d4fcc3"
SWE_DEFAULT = DATA / "swe_agent" / "default" / "marshmallow-code__marshmallow-1867.traj"
SWE_FUNCTIONS = DATA / "swe_agent" / "function_calling" / "marshmallow-code__marshmallow-1867.traj"
SWE_HISTORY_ONLY = DATA / "swe_agent" / "function_calling_simple.traj"
SWE_CTF = DATA / "swe_agent" / "ctf" / "flash.traj"
CODEX_OWN = (
    DATA / "codex" / "rollout-2025-09-10T12-00-00-0199bbbb-0000-7000-8000-0000000000e1.jsonl"
)
ATIF_OWN = DATA / "atif" / "tracehint_parsing-errors.trajectory.json"
GEMINI_OWN = DATA / "gemini_cli" / "9f86d081" / "chats" / "session-2025-09-18T10-15-5e0c2f8a.json"


def codex(suffix: str) -> Path:
    (found,) = (DATA / "codex").glob(f"rollout-*-{suffix}.jsonl")
    return found


def read(path: Path, fmt: InputFormat = InputFormat.AUTO) -> tuple[list[Trace], list[InputIssue]]:
    parsed = parse_session(path.read_bytes(), path=str(path), input_format=fmt)
    return list(parsed.traces), list(parsed.issues)


def site_ids(trace: Trace) -> list[str]:
    return [site.tool_use_id for _, _, site in trace.sites()]


def failed_results(trace: Trace) -> int:
    return sum(turn.content.count("[TOOL_RESULT (ERROR)]") for turn in trace.turns)


async def annotate(
    paths: list[Path], config: PipelineConfig | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], RunStats]:
    sink, issue_sink, stats = MemorySink(), MemorySink(), RunStats()
    with anyio.fail_after(20):
        await annotate_files(
            paths, chain=CHAIN, sink=sink, stats=stats, issue_sink=issue_sink, config=config
        )
    return (
        [orjson.loads(line) for line in sink.lines],
        [orjson.loads(line) for line in issue_sink.lines],
        stats,
    )


# -- OpenHands ----------------------------------------------------------------------------------


def test_openhands_evaluation_output_one_trace_per_run() -> None:
    traces, issues = read(OPENHANDS_RUNS)
    assert issues == []
    assert [t.trace_id for t in traces] == [
        "ponylang__ponyc-4595",
        "ponylang__ponyc-4593",
        "ponylang__ponyc-4588",
    ]
    assert {t.source.format for t in traces} == {"openhands"}
    assert [t.source.session_id for t in traces] == [t.trace_id for t in traces]
    # 24 editor ERRORs, 19 non-zero exit codes, 2 error observations.
    assert sum(failed_results(t) for t in traces) == 45
    ids = [i for t in traces for i in site_ids(t)]
    # The last failure of ponyc-4588 has no answer (the run hit its iteration limit), and one
    # site there answers two failures at once; every other failure is a site of its own.
    assert len(ids) == 43
    assert sum(site.failed_calls for t in traces for _, _, site in t.sites()) == 44
    assert all(i.startswith("toolu_") or i.isdigit() for i in ids)
    # An error observation the runtime raised before any action is answered under its own id.
    assert "29" in site_ids(traces[1])
    assert traces[2].turns[-1].content.startswith("[run ended with an error] RuntimeError")


def test_openhands_editor_error_and_exit_code_sites() -> None:
    traces, _ = read(OPENHANDS_RUNS)
    sites = {site.tool_use_id: site for t in traces[2:] for _, _, site in t.sites()}
    edit = sites["toolu_10"]
    assert edit.tool_name == "str_replace_editor"
    assert "did not appear verbatim" in edit.error_message
    make = sites["toolu_31"]
    assert make.tool_name == "execute_bash"
    assert "exit code 2" in make.error_message


def test_openhands_events_as_jsonl_give_the_same_sites(tmp_path: Path) -> None:
    record = orjson.loads(OPENHANDS_RUNS.read_bytes().splitlines()[2])
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps(e) for e in record["history"]))
    (from_jsonl,), issues = read(events)
    traces, _ = read(OPENHANDS_RUNS)
    assert issues == []
    assert from_jsonl.source.format == "openhands"
    assert site_ids(from_jsonl) == site_ids(traces[2])


@pytest.mark.parametrize("key", ["trajectory", "events"])
def test_openhands_ui_and_api_exports(tmp_path: Path, key: str) -> None:
    record = orjson.loads(OPENHANDS_RUNS.read_bytes().splitlines()[1])
    export = tmp_path / "export.json"
    export.write_bytes(orjson.dumps({key: record["history"]}, option=orjson.OPT_INDENT_2))
    (trace,), issues = read(export)
    assert issues == []
    assert trace.source.format == "openhands"
    reference = read(OPENHANDS_RUNS)[0][1]
    assert site_ids(trace) == site_ids(reference)


def test_openhands_event_array_and_exit_minus_one(tmp_path: Path) -> None:
    events = [
        {"id": 0, "source": "user", "action": "message", "args": {"content": "build it"}},
        {
            "id": 1,
            "source": "agent",
            "action": "run",
            "args": {"command": "make", "thought": "Build first."},
        },
        {
            "id": 2,
            "source": "agent",
            "cause": 1,
            "observation": "run",
            "content": "still compiling...",
            "extras": {"command": "make", "metadata": {"exit_code": -1}},
        },
        {"id": 3, "source": "agent", "action": "run", "args": {"command": "ls /nope"}},
        {
            "id": 4,
            "source": "agent",
            "cause": 3,
            "observation": "run",
            "content": "ls: cannot access '/nope': No such file or directory",
            "extras": {"command": "ls /nope", "metadata": {"exit_code": 2}},
            "success": False,
        },
        {"id": 5, "source": "agent", "action": "message", "args": {"content": "Done."}},
    ]
    path = tmp_path / "run.json"
    path.write_bytes(orjson.dumps(events, option=orjson.OPT_INDENT_2))
    (trace,), issues = read(path)
    assert issues == []
    assert trace.trace_id == "run"
    assert failed_results(trace) == 1  # -1: still running, not a failure
    (site,) = [site for _, _, site in trace.sites()]
    assert site.tool_use_id == "3"
    assert site.exit_code == 2 or "exit code 2" in site.error_message


def test_openhands_old_layout_pairs_by_order() -> None:
    traces, issues = read(OPENHANDS_OLD)
    assert issues == []
    assert len(traces) == 2
    assert site_ids(traces[0]) == []
    # The agentskills editor's linter rejected the edit seven times, then no exact match.
    ids = site_ids(traces[1])
    assert ids[:3] == ["9", "11", "13"]
    assert len(ids) == 11


async def test_openhands_session_folder_is_one_trace(tmp_path: Path) -> None:
    home = tmp_path / "sessions"
    shutil.copytree(OPENHANDS_SESSION, home / OPENHANDS_SESSION.name)
    traces, issues, stats = await annotate([home])
    assert issues == []
    (trace,) = traces
    assert trace["trace_id"] == OPENHANDS_SESSION.name
    assert trace["source"]["format"] == "openhands"
    assert stats.files == 1
    assert stats.files_skipped == 1  # metadata.json: not a transcript, not an issue
    assert "[TOOL_CALL execute_ipython_cell]" in json.dumps(trace)


async def test_openhands_broken_event_file_is_named(tmp_path: Path) -> None:
    session = tmp_path / "abc"
    shutil.copytree(OPENHANDS_SESSION, session)
    (session / "events" / "9.json").write_bytes(b'{"id": 9, "source": ')
    traces, issues, _ = await annotate([tmp_path])
    assert len(traces) == 1
    assert [i["path"] for i in issues] == [str(session / "events" / "9.json")]


# -- SWE-agent ----------------------------------------------------------------------------------


def test_swe_agent_linter_rejection_is_a_site() -> None:
    (trace,), issues = read(SWE_DEFAULT)
    assert issues == []
    assert trace.source.format == "swe_agent"
    assert trace.trace_id == "marshmallow-code__marshmallow-1867"
    (site,) = [site for _, _, site in trace.sites()]
    assert site.tool_use_id == "step-9"
    assert site.tool_name == "edit"
    assert "Your proposed edit has introduced new syntax error(s)" in site.error_message


def test_swe_agent_function_calling_and_shell_errors() -> None:
    (trace,), _ = read(SWE_FUNCTIONS)
    assert len(site_ids(trace)) == 1
    assert site_ids(trace)[0].startswith("step-")
    (ctf,), _ = read(SWE_CTF)
    assert site_ids(ctf) == ["step-0"]  # strings: '<file>': No such file


def test_swe_agent_history_only_file() -> None:
    (trace,), issues = read(SWE_HISTORY_ONLY)
    assert issues == []
    assert trace.tools_used == ("find_file", "open", "edit", "bash", "submit")
    assert site_ids(trace) == []


# -- Codex --------------------------------------------------------------------------------------


def test_codex_failed_command_and_rejected_patch() -> None:
    (trace,), issues = read(CODEX_OWN)
    assert issues == []
    assert trace.source.format == "codex"
    assert trace.trace_id == "0199bbbb-0000-7000-8000-0000000000e1"
    sites = [site for _, _, site in trace.sites()]
    assert [s.tool_use_id for s in sites] == ["call_pytest1", "call_patch1"]
    assert sites[0].tool_name == "shell"
    assert "1 failed" in sites[0].error_message
    assert sites[1].tool_name == "apply_patch"
    assert "apply_patch verification failed" in sites[1].error_message


def test_codex_exit_code_header_interruption_and_sub_agent() -> None:
    (failing,), _ = read(codex("000000000002"))
    assert site_ids(failing) == ["call_1"]
    (aborted,), _ = read(codex("000000000005"))
    assert site_ids(aborted) == []
    assert sum(aborted.non_mistakes.values()) == 1
    (child,), _ = read(codex("000000000104"))
    assert child.source.session_id == "0199aaaa-0000-7000-8000-000000000004"
    assert child.source.agent_id == "0199aaaa-0000-7000-8000-000000000104"
    (old,), issues = read(codex("00000000000a"))
    assert issues == []
    assert old.trace_id == "0199aaaa-0000-7000-8000-00000000000a"


# -- ATIF and Gemini CLI ------------------------------------------------------------------------


def test_atif_parsing_errors_and_terminal_failures() -> None:
    (trace,), issues = read(ATIF_OWN)
    assert issues == []
    assert trace.source.format == "atif"
    assert trace.trace_id == "tracehint-atif-0001"
    assert site_ids(trace) == ["step-3", "step-4", "call_cat_1"]


def test_atif_continuation_file_is_its_own_trace() -> None:
    (trace,), issues = read(
        DATA / "atif" / "terminus_2_hello-world-context-summarization-linear-history"
        ".trajectory.cont-1.json"
    )
    assert issues == []
    assert trace.trace_id.endswith("/cont-1")
    assert site_ids(trace) == []


def test_gemini_cli_error_status_is_a_site_cancelled_is_not() -> None:
    (trace,), issues = read(GEMINI_OWN)
    assert issues == []
    assert trace.source.format == "gemini_cli"
    assert trace.trace_id == "5e0c2f8a-3b1d-4c55-9a7e-1f0d2c3b4a59"
    assert site_ids(trace) == ["read_file-1758190509550-4c1f"]
    assert trace.turns[-1].content == "[error] [API Error: You exceeded your current quota.]"


def test_gemini_cli_jsonl_session(tmp_path: Path) -> None:
    session = orjson.loads(GEMINI_OWN.read_bytes())
    messages = session.pop("messages")
    path = tmp_path / "session-2025-09-18T10-15-5e0c2f8a.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in [session, *messages]))
    (trace,), issues = read(path)
    assert issues == []
    (reference,), _ = read(GEMINI_OWN)
    assert trace.turns == reference.turns


def test_anthropic_messages_and_openai_responses_rollouts() -> None:
    (anthropic,), issues = read(DATA / "anthropic" / "rollouts.jsonl")
    assert issues == []
    assert (anthropic.trace_id, anthropic.source.format) == ("rollout-17", "anthropic")
    assert site_ids(anthropic) == ["toolu_A1"]
    (responses,), issues = read(DATA / "openai_responses" / "rollouts.jsonl")
    assert issues == []
    assert (responses.trace_id, responses.source.format) == ("resp-3", "openai_responses")
    assert site_ids(responses) == ["fc_1"]


def test_gemini_cli_saved_chat() -> None:
    (trace,), issues = read(DATA / "gemini_cli" / "9f86d081" / "checkpoint-fix.json")
    assert issues == []
    assert trace.source.format == "gemini_cli"
    assert site_ids(trace) == ["read_file-1-1"]  # no id in the API history: name-turn-part


def test_bare_message_lists_saved_as_json(tmp_path: Path) -> None:
    record = orjson.loads((DATA / "anthropic" / "rollouts.jsonl").read_bytes())
    saved = tmp_path / "rollout.json"
    saved.write_bytes(orjson.dumps(record["messages"], option=orjson.OPT_INDENT_2))
    (trace,), issues = read(saved)
    assert issues == []
    assert (trace.source.format, site_ids(trace)) == ("anthropic", ["toolu_A1"])


# -- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (OPENHANDS_RUNS, InputFormat.OPENHANDS),
        (DATA / "openhands" / "basic_interactions.json", InputFormat.OPENHANDS),
        (SWE_DEFAULT, InputFormat.SWE_AGENT),
        (SWE_HISTORY_ONLY, InputFormat.SWE_AGENT),
        (CODEX_OWN, InputFormat.CODEX),
        (codex("00000000000a"), InputFormat.CODEX),
        (ATIF_OWN, InputFormat.ATIF),
        (GEMINI_OWN, InputFormat.GEMINI_CLI),
        (DATA / "gemini_cli" / "session-sample.jsonl", InputFormat.GEMINI_CLI),
        (REPO / "examples" / "sessions", InputFormat.CLAUDE_CODE),
    ],
)
def test_detection_by_content(path: Path, fmt: InputFormat) -> None:
    if path.is_dir():
        path = min(path.glob("*.jsonl"))
    parsed = parse_session(path.read_bytes(), path=str(path))
    assert parsed.read_as is fmt
    assert parsed.traces


def test_detect_reads_whole_documents_and_first_records() -> None:
    assert detect(orjson.loads(SWE_DEFAULT.read_bytes())) is InputFormat.SWE_AGENT
    assert detect(orjson.loads(ATIF_OWN.read_bytes())) is InputFormat.ATIF
    assert detect({"messages": []}) is InputFormat.OPENAI
    assert detect({"a": 1}) is None
    assert detect([1, 2]) is None


def test_forced_format_reads_whatever_the_content_says(tmp_path: Path) -> None:
    renamed = tmp_path / "trajectory.bin"
    renamed.write_bytes(ATIF_OWN.read_bytes())
    traces, _ = read(renamed, InputFormat.ATIF)
    assert site_ids(traces[0]) == ["step-3", "step-4", "call_cat_1"]
    wrong, issues = read(renamed, InputFormat.GEMINI_CLI)
    assert wrong == []
    assert "expected a Gemini CLI session" in issues[0].reason


# -- never silent -------------------------------------------------------------------------------


async def test_non_transcript_json_is_an_issue_naming_it(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{\n  "theme": "dark",\n  "fontSize": 12\n}\n')
    (tmp_path / "agent-a1.meta.json").write_text('{"agentType": "Explore"}')
    (tmp_path / "metadata.json").write_text('{"conversation_id": "x"}')
    shutil.copy(CODEX_OWN, tmp_path)
    traces, issues, stats = await annotate([tmp_path])
    assert len(traces) == 1
    (issue,) = issues
    assert issue["path"] == str(tmp_path / "config.json")
    assert issue["line"] is None
    assert "not a transcript in any known format" in issue["reason"]
    assert "swe_agent" in issue["reason"]
    assert "gemini_cli" in issue["reason"]
    assert stats.files_skipped == 2
    assert set(stats.skipped_files) == {
        "Claude Code sub-agent metadata, not a transcript",
        "session metadata, not a transcript",
    }


async def test_a_file_with_no_conversation_is_an_issue(tmp_path: Path) -> None:
    meta_only = tmp_path / "rollout-empty.jsonl"
    meta_only.write_bytes(codex("000000000002").read_bytes().splitlines()[0] + b"\n")
    traces, issues, _ = await annotate([meta_only])
    assert traces == []
    (issue,) = issues
    assert issue["path"] == str(meta_only)
    assert issue["reason"].startswith("no conversation found (read as codex")


async def test_malformed_records_are_named_and_the_rest_read(tmp_path: Path) -> None:
    lines = OPENHANDS_RUNS.read_bytes().splitlines()
    broken = tmp_path / "output.jsonl"
    broken.write_bytes(b"\n".join([lines[0], b'{"instance_id": "x", "history": [', lines[2]]))
    traces, issues, _ = await annotate([broken])
    assert [t["trace_id"] for t in traces] == ["ponylang__ponyc-4595", "ponylang__ponyc-4588"]
    (issue,) = issues
    assert (issue["path"], issue["line"]) == (str(broken), 2)
    events = tmp_path / "events.json"
    events.write_bytes(orjson.dumps([{"id": 0, "source": "user", "action": "message"}, 7]))
    _, issues, _ = await annotate([events])
    (issue,) = issues
    assert issue["reason"] == "record 1: event is int, not an object"


def test_cli_reads_every_format_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = run_cli("annotate", str(DATA), "-o", str(out), "--no-progress")
    assert first.returncode == 0, first.stderr
    written = out.read_text().splitlines()
    formats = {json.loads(line)["source"]["format"] for line in written}
    assert formats == {
        "claude_code",
        "openhands",
        "swe_agent",
        "codex",
        "atif",
        "gemini_cli",
        "anthropic",
        "openai_responses",
    }
    again = run_cli("annotate", str(DATA), "-o", str(out), "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert out.read_text().splitlines() == written


def test_cli_exits_2_when_the_named_paths_hold_no_transcript(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text('{"todo": []}')
    result = run_cli("annotate", str(tmp_path), "-o", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2
    assert "no transcript found in the given paths" in result.stderr


async def test_annotator_hints_traces_of_any_format() -> None:
    parsed = parse_session(CODEX_OWN.read_bytes(), path=str(CODEX_OWN))
    async with Annotator() as ann, ann.annotate_many(parsed.traces) as stream:
        hinted = [trace async for trace in stream]
    (trace,) = hinted
    assert all(turn.hint is not None for _, turn, _ in trace.sites())
