"""The Claude Code parser and the pipeline on the real session corpus.

Expectations are computed from the raw JSON with a plain ``json.loads`` scan (not with
tracehint's own code), then compared with what tracehint produces.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from conftest import SESSIONS, SHARED_CORPUS
from tracehint import (
    Classifier,
    DetectedBy,
    ErrorKind,
    HintChain,
    InputIssue,
    Limits,
    PipelineConfig,
    RawErrorLayer,
    Role,
    RunStats,
    TemplateLayer,
    Trace,
    TurnKind,
    annotate_files,
)
from tracehint._ingest._lines import Line
from tracehint._ingest.claude_code import ClaudeCodeParser
from tracehint._output import MemorySink

CHAIN = HintChain((TemplateLayer(), RawErrorLayer()))
MAIN = "main"
KIMUSON = "d-kimuson-claude-code-viewer"
DAAAIN = "daaain-claude-code-log"
FILE_NOT_READ_FILE = "fe5e1c67-53e7-4862-81ae-d0e013e3270b"
FEEDBACK_FILE = "9e953218-585f-4692-89df-9e0747a31c68"
# Every session file of the corpus, by the start of its name.
SESSION_FILES = [
    "5c0375b4",
    FILE_NOT_READ_FILE,
    "0d3a8e6f",
    "37f83ec9",
    "fe869ecb",
    FEEDBACK_FILE,
    "ef958aa1",
    "agent-a4ca7529859c158c2",
    "agent-ab1e6e141221a29ab",
    "a7da6a22",
    "agent-c8d9b115",
    "2b4ed4c0",
]
# The rejections with typed feedback in the 2.0.5 IDE session: no "doesn't want to proceed"
# marker, just the user's words returned as the failed result of a Bash call.
FEEDBACK_REJECTIONS = frozenset(
    {
        "please add transformer.js too first",
        "So if I do https://www.danieldemmel.me/tokenizer/index.html that works \u2013 but would "
        "this fix work in the standalone repo, or should we redirect to "
        "https://www.danieldemmel.me/tokenizer/index.html instead?",
        "Wait a sec, we need to copy public/favicons/token.svg to the other repo too",
    },
)
REJECTION_MARKER = "The user doesn't want to proceed with this tool use"
BIG_LINE_BYTES = 1_046_941  # corpus README: the pasted-PNG line, newline included
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{2000,}")


# -- running tracehint -------------------------------------------------------------------------


@dataclass
class Run:
    traces: list[dict[str, Any]]
    issues: list[dict[str, Any]]
    stats: RunStats

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {trace["trace_id"]: trace for trace in self.traces}

    def for_path(self, path: Path) -> list[dict[str, Any]]:
        return [t for t in self.traces if t["source"]["path"] == str(path)]


async def annotate(paths: list[Path], config: PipelineConfig | None = None) -> Run:
    sink, issue_sink, stats = MemorySink(), MemorySink(), RunStats()
    await annotate_files(
        paths, chain=CHAIN, sink=sink, stats=stats, issue_sink=issue_sink, config=config
    )
    return Run(
        [orjson.loads(line) for line in sink.lines],
        [orjson.loads(line) for line in issue_sink.lines],
        stats,
    )


def parse(path: Path) -> tuple[list[Trace], list[InputIssue]]:
    """Drive the parser directly, one line at a time."""
    parser = ClaudeCodeParser(str(path), Classifier(), Limits())
    issues: list[InputIssue] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            data = raw.rstrip(b"\n")
            if data.strip():
                found = parser.feed(Line(number, data))
                if found is not None:
                    issues.append(found)
    return parser.finish(), issues


def sites(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The output trace's tool-error sites."""
    return [
        turn
        for turn in trace["turns"]
        if "tool_error" in turn and turn["detected_by"] == DetectedBy.TOOL_ERROR
    ]


def user_sites(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The output trace's user-correction sites."""
    return [turn for turn in trace["turns"] if turn.get("detected_by") == DetectedBy.USER]


def assert_tool_input(found: str | None, arguments: object) -> None:
    """``found`` is the call's arguments as compact JSON, cut to 1000 chars with an ellipsis."""
    assert found is not None
    compact = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
    if len(compact) <= 1000:
        assert json.loads(found) == arguments
    else:
        assert len(found) <= 1000
        assert found.endswith("…")
        assert compact.startswith(found[:-1])


# -- reading the raw JSON independently --------------------------------------------------------


@dataclass
class RawResult:
    line: int
    tool_use_id: str
    text: str
    is_error: bool
    tool_name: str | None
    tool_input: Any
    streak: int = 0

    @property
    def rejected(self) -> bool:
        return REJECTION_MARKER in self.text or self.text in FEEDBACK_REJECTIONS

    @property
    def mistake(self) -> bool:
        return self.is_error and not self.rejected


@dataclass
class RawConversation:
    """One conversation of a raw file, replayed with a deliberately simple model."""

    entries: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    results: list[RawResult] = field(default_factory=list)
    batches: list[list[RawResult]] = field(default_factory=list)
    message_ids: set[str] = field(default_factory=set)


def raw_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                out.append((number, json.loads(raw)))
    return out


def result_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") if isinstance(b, dict) and b.get("type") == "text" else ""
            for b in content
        )
    return ""


def raw_conversations(path: Path) -> dict[str, RawConversation]:
    """Split a raw file into conversations: ``MAIN`` and one per inline sidechain root uuid.

    A sidechain's key is the uuid of the first entry of its ``parentUuid`` chain (the entry
    whose parent is not itself a sidechain entry). Agent files are one conversation.
    """
    lines = [(n, e) for n, e in raw_lines(path) if e.get("type") in {"user", "assistant"}]
    by_uuid = {e["uuid"]: e for _, e in lines if isinstance(e.get("uuid"), str)}
    agent_file = path.name.startswith("agent-")

    def key_of(entry: dict[str, Any]) -> str:
        if agent_file or entry.get("isSidechain") is not True:
            return MAIN
        current = entry
        while True:
            parent = by_uuid.get(current.get("parentUuid") or "")
            if parent is None or parent.get("isSidechain") is not True:
                return str(current["uuid"])
            current = parent

    conversations: dict[str, RawConversation] = {}
    for number, entry in lines:
        conversations.setdefault(key_of(entry), RawConversation()).entries.append((number, entry))
    for conversation in conversations.values():
        _replay(conversation)
    return conversations


@dataclass
class _Replay:
    """Pair results with calls, count per-tool failure streaks, batch failures per message."""

    conversation: RawConversation
    calls: dict[str, tuple[str, Any]] = field(default_factory=dict)
    streak: Counter[str] = field(default_factory=Counter)
    pending: list[RawResult] = field(default_factory=list)

    def assistant(self, entry: dict[str, Any]) -> None:
        message = entry["message"]
        content = message["content"]
        for block in content if isinstance(content, list) else ():
            if block.get("type") == "tool_use":
                self.calls[block["id"]] = (block["name"], block.get("input"))
        message_id = message.get("id")
        if message_id in self.conversation.message_ids:
            return
        if message_id is not None:
            self.conversation.message_ids.add(message_id)
        if entry.get("isApiErrorMessage") is True or message.get("model") == "<synthetic>":
            return
        if self.pending:
            self.conversation.batches.append(self.pending)
            self.pending = []

    def user(self, number: int, entry: dict[str, Any]) -> None:
        content = entry["message"]["content"]
        blocks = content if isinstance(content, list) else []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if not results and entry.get("isMeta") is not True:
            self.pending = []
        for block in results:
            name, arguments = self.calls.get(block["tool_use_id"], (None, None))
            result = RawResult(
                number,
                block["tool_use_id"],
                result_text(block.get("content")),
                block.get("is_error") is True,
                name,
                arguments,
            )
            self.conversation.results.append(result)
            if result.mistake:
                if name is not None:
                    self.streak[name] += 1
                result.streak = self.streak[name] if name is not None else 1
                self.pending.append(result)
            elif not result.is_error and name is not None:
                self.streak[name] = 0


def _replay(conversation: RawConversation) -> None:
    replay = _Replay(conversation)
    for number, entry in conversation.entries:
        if entry["type"] == "assistant":
            replay.assistant(entry)
        else:
            replay.user(number, entry)


def corpus_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.jsonl"))


def corpus_file(root: Path, stem: str) -> Path:
    """The one corpus file whose name starts with ``stem``."""
    (path,) = [p for p in corpus_files(root) if p.name.startswith(stem)]
    return path


def session_file(stem: str) -> Path:
    """The corpus file whose name starts with ``stem``: shipped in tests/data, else from the
    shared corpus (the test is skipped when neither has it)."""
    for root in (SESSIONS, SESSIONS.parent / "claude_code_corrections", SHARED_CORPUS):
        found = [p for p in corpus_files(root) if p.name.startswith(stem)]
        if found:
            (path,) = found
            return path
    pytest.skip(f"{stem}* is not in tests/data and the shared corpus is not at {SHARED_CORPUS}")


def test_session_files_cover_the_corpus(shared_corpus: Path) -> None:
    assert sorted(corpus_file(shared_corpus, stem) for stem in SESSION_FILES) == corpus_files(
        shared_corpus
    )


def test_shipped_sessions_are_copies_of_the_corpus(shared_corpus: Path) -> None:
    shipped = sorted(p for p in SESSIONS.rglob("*") if p.is_file())
    assert len(shipped) >= 7
    for path in shipped:
        original = shared_corpus / path.relative_to(SESSIONS)
        assert path.read_bytes() == original.read_bytes(), path


@pytest.fixture(scope="module")
def corpus_run(claude_corpus: Path) -> Run:
    """The sessions through the pipeline, once for the module (and each corpus)."""

    async def go() -> Run:
        return await annotate([claude_corpus])

    return anyio.run(go)


# -- tests -------------------------------------------------------------------------------------


def test_whole_corpus_has_no_input_issues(claude_corpus: Path, corpus_run: Run) -> None:
    files = corpus_files(claude_corpus)
    raw = {f: raw_lines(f) for f in files}
    assert corpus_run.issues == []
    stats = corpus_run.stats
    assert stats.input_issues == 0
    assert stats.files == len(files)
    assert stats.files_unreadable == 0
    assert stats.empty_files == 0
    assert stats.lines == sum(len(lines) for lines in raw.values())
    assert {t["source"]["path"] for t in corpus_run.traces} == {str(f) for f in files}
    assert all(t["turns"] for t in corpus_run.traces)
    assert stats.traces == len(corpus_run.traces)


def test_other_entry_types_are_skipped_silently(claude_corpus: Path, corpus_run: Run) -> None:
    skipped: Counter[str] = Counter()
    for path in corpus_files(claude_corpus):
        for _, entry in raw_lines(path):
            if entry["type"] not in {"user", "assistant"}:
                skipped[entry["type"]] += 1
    # The corpus README promises these types; make sure the test really meets them.
    for kind in ("progress", "file-history-snapshot", "attachment", "summary", "system"):
        assert skipped[kind] > 0, kind
    for kind in ("queue-operation", "permission-mode", "last-prompt"):
        assert skipped[kind] > 0, kind
    assert corpus_run.stats.skipped_entries == sum(skipped.values())
    assert corpus_run.stats.input_issues == 0


@pytest.mark.parametrize("stem", SESSION_FILES)
def test_sites_match_raw_failures(stem: str) -> None:
    """Every mistake is a tool-error site or part of one's batch; a rejection is counted, or a
    user correction when the user said why."""
    path = session_file(stem)
    traces, issues = parse(path)
    assert issues == []
    conversations = raw_conversations(path)
    assert len(traces) == len(conversations)
    # Conversations in order of first appearance ↔ traces in the parser's order.
    for (key, conversation), trace in zip(conversations.items(), traces, strict=True):
        if key != MAIN:
            assert trace.trace_id.startswith(f"{path.stem}/sidechain-")
        results = conversation.results
        assert len([r for r in results if r.is_error]) == sum(
            1
            for entry in (e for _, e in conversation.entries)
            if isinstance(entry["message"]["content"], list)
            for block in entry["message"]["content"]
            if block.get("type") == "tool_result" and block.get("is_error") is True
        )
        rejected = [r for r in results if r.is_error and r.rejected]
        rejected_ids = {r.tool_use_id for r in rejected}
        said = [
            s
            for _, _, s in trace.sites()
            if s.detected_by is DetectedBy.USER and s.tool_use_id in rejected_ids
        ]
        left = len(rejected) - len(said)
        assert dict(trace.non_mistakes) == ({ErrorKind.USER_REJECTED: left} if left else {})
        tool_sites = [s for _, _, s in trace.sites() if s.detected_by is DetectedBy.TOOL_ERROR]
        expected = [
            (batch[0].tool_use_id, batch[0].tool_name, len(batch)) for batch in conversation.batches
        ]
        found = [(s.tool_use_id, s.tool_name, s.failed_calls) for s in tool_sites]
        assert found == expected
        assert not rejected_ids & {s.tool_use_id for s in tool_sites}
        # Every mistake that an assistant message answered is covered by a site's batch.
        batched = sum(len(batch) for batch in conversation.batches)
        assert sum(s.failed_calls for s in tool_sites) == batched
        for _, turn, site in trace.sites():
            assert turn.role is Role.ASSISTANT
            assert turn.kind is TurnKind.MESSAGE
            assert site.kind.is_mistake
            assert site.consecutive_failures == site.repeats + 1
            assert len(site.earlier_errors) == min(site.repeats, 3)


def test_all_corpus_mistakes_accounted_for(claude_corpus: Path, corpus_run: Run) -> None:
    mistakes = rejections = answered = 0
    for path in corpus_files(claude_corpus):
        for conversation in raw_conversations(path).values():
            mistakes += sum(1 for r in conversation.results if r.mistake)
            rejections += sum(1 for r in conversation.results if r.is_error and r.rejected)
            answered += sum(len(batch) for batch in conversation.batches)
    stats = corpus_run.stats
    assert rejections > 0
    said = sum(
        1 for t in corpus_run.traces for s in user_sites(t) if s["error_meta"]["tool_use_id"]
    )
    assert said > 0
    assert set(stats.non_mistakes) <= {"user_rejected"}
    assert stats.non_mistakes["user_rejected"] == rejections - said
    assert (
        sum(s["error_meta"]["failed_calls"] for t in corpus_run.traces for s in sites(t))
        == answered
    )
    assert answered == mistakes  # in this corpus every failure is answered by the agent
    assert stats.sites == sum(len(sites(t)) + len(user_sites(t)) for t in corpus_run.traces)
    assert stats.sites_by_detector["tool_error"] == sum(len(sites(t)) for t in corpus_run.traces)


def test_feedback_rejections_are_user_corrections() -> None:
    """A rejection whose result is the user's words is a user correction of the rejected call."""
    path = session_file(FEEDBACK_FILE)
    raw = [r for c in raw_conversations(path).values() for r in c.results if r.is_error]
    feedback = {r.tool_use_id: r for r in raw if r.text in FEEDBACK_REJECTIONS}
    assert {r.text for r in feedback.values()} == FEEDBACK_REJECTIONS
    assert all(r.tool_name == "Bash" for r in feedback.values())
    assert all(REJECTION_MARKER not in r.text for r in feedback.values())
    traces, _ = parse(path)
    (trace,) = traces
    assert ErrorKind.USER_REJECTED not in trace.non_mistakes
    corrected = {
        site.tool_use_id: site
        for _, _, site in trace.sites()
        if site.detected_by is DetectedBy.USER and site.tool_use_id
    }
    assert set(corrected) == set(feedback)
    for use_id, site in corrected.items():
        assert site.kind is ErrorKind.USER_CORRECTION
        assert site.error_message == feedback[use_id].text
        assert site.tool_name == "Bash"
        assert site.facts.codes == ("rejected",)
        assert site.mistake_message_index is not None
        assert site.message_index is not None
        mistake = trace.messages[site.mistake_message_index]
        assert use_id in {call["id"] for call in mistake["tool_calls"]}
        assert site.message_index > site.mistake_message_index
        assert trace.messages[site.message_index]["role"] == "assistant"
    # Real errors in the same file still make sites.
    assert any(s.detected_by is DetectedBy.TOOL_ERROR for _, _, s in trace.sites())


def test_marker_rejections_are_not_sites(claude_corpus: Path, corpus_run: Run) -> None:
    rejected_ids: set[str] = set()
    for path in corpus_files(claude_corpus):
        for conversation in raw_conversations(path).values():
            rejected_ids |= {
                r.tool_use_id
                for r in conversation.results
                if r.is_error and REJECTION_MARKER in r.text
            }
    assert rejected_ids
    for trace in corpus_run.traces:
        for site in sites(trace):
            assert site["error_meta"]["tool_use_id"] not in rejected_ids
        for site in user_sites(trace):  # the user's words, never Claude Code's boilerplate
            assert REJECTION_MARKER not in site["error_meta"]["error_message"]
            assert site["hint_source"] == "user"
            assert REJECTION_MARKER not in site["hint"]


def test_error_meta_matches_raw_tool_use(claude_corpus: Path, corpus_run: Run) -> None:
    results: dict[str, RawResult] = {}
    for path in corpus_files(claude_corpus):
        for conversation in raw_conversations(path).values():
            results |= {r.tool_use_id: r for r in conversation.results}
    checked = 0
    for trace in corpus_run.traces:
        for turn in sites(trace):
            meta = turn["error_meta"]
            raw = results[meta["tool_use_id"]]
            assert raw.mistake
            assert meta["tool_name"] == raw.tool_name
            assert meta["tool_name"] is not None
            assert_tool_input(meta["tool_input"], raw.tool_input)
            text = raw.text.strip()
            if len(text) <= 2000:
                assert meta["error_message"] == text
            else:
                assert meta["error_message"].startswith(text[:500])
                assert meta["error_message"].endswith(text[-500:])
                assert len(meta["error_message"]) <= 2000
            assert meta["source_content_excerpt"].startswith("[TOOL_RESULT (ERROR)]")
            assert turn["role"] == "assistant"
            assert turn["hint_status"] == "ok"
            assert turn["hint"]
            assert turn["hint_source"] in {"template", "raw"}
            checked += 1
    assert checked == corpus_run.stats.sites_by_detector["tool_error"] > 0


def test_file_not_read_errors() -> None:
    path = session_file(FILE_NOT_READ_FILE)
    raw = [
        r
        for c in raw_conversations(path).values()
        for r in c.results
        if r.is_error and "File has not been read yet" in r.text
    ]
    assert len(raw) == 13  # corpus README
    by_id = {r.tool_use_id: r for r in raw}
    traces, _ = parse(path)
    covered = 0
    for trace in traces:
        for _, _, site in trace.sites():
            if site.tool_use_id not in by_id:
                continue
            covered += site.failed_calls
            assert site.kind is ErrorKind.FILE_NOT_READ
            assert site.tool_name == by_id[site.tool_use_id].tool_name
            assert site.tool_name in {"Write", "Edit", "MultiEdit"}
            assert_tool_input(site.tool_input, by_id[site.tool_use_id].tool_input)
            assert site.tool_target == by_id[site.tool_use_id].tool_input["file_path"]
            assert "File has not been read yet" in site.error_message
    assert covered == len(raw)


@pytest.mark.parametrize("sub", [KIMUSON, DAAAIN])
def test_assistant_entries_grouped_by_message_id(claude_corpus: Path, sub: str) -> None:
    for path in sorted((claude_corpus / sub).rglob("*.jsonl")):
        ids = [
            e["message"]["id"]
            for _, e in raw_lines(path)
            if e["type"] == "assistant" and isinstance(e["message"].get("id"), str)
        ]
        traces, _ = parse(path)
        turns = sum(1 for t in traces for turn in t.turns if turn.role is Role.ASSISTANT)
        assert turns == len(set(ids)), path.name
        if path.name.startswith("5c0375b4"):
            # One API message really is split over several entries here.
            assert len(ids) > len(set(ids))


def test_split_message_keeps_all_blocks_in_one_turn() -> None:
    path = session_file(FEEDBACK_FILE)
    entries = [e for _, e in raw_lines(path) if e["type"] == "assistant"]
    counts = Counter(e["message"]["id"] for e in entries)
    message_id, parts = counts.most_common(1)[0]
    assert parts > 1
    uses = [
        b["name"]
        for e in entries
        if e["message"]["id"] == message_id
        for b in e["message"]["content"]
        if b.get("type") == "tool_use"
    ]
    texts = [
        b["text"]
        for e in entries
        if e["message"]["id"] == message_id
        for b in e["message"]["content"]
        if b.get("type") == "text" and b["text"].strip()
    ]
    (trace,) = parse(path)[0]
    matching = [
        turn
        for turn in trace.turns
        if turn.role is Role.ASSISTANT
        and all(text in turn.content for text in texts)
        and turn.content.count("[TOOL_CALL ") == len(uses)
        and all(f"[TOOL_CALL {name}]" in turn.content for name in uses)
    ]
    assert len(matching) >= 1


@pytest.mark.parametrize(
    "name", ["5c0375b4-57a5-4f26-b12d-d022ee4e51b7", "fe5e1c67-53e7-4862-81ae-d0e013e3270b"]
)
async def test_inline_sidechains_become_traces(name: str) -> None:
    path = session_file(name)
    run = await annotate([path])
    entries = [e for _, e in raw_lines(path) if e["type"] in {"user", "assistant"}]
    sidechain = {e["uuid"] for e in entries if e.get("isSidechain") is True}
    assert sidechain
    roots = [
        e["uuid"]
        for e in entries
        if e.get("isSidechain") is True and e.get("parentUuid") not in sidechain
    ]
    traces = run.for_path(path)
    expected = {name} | {f"{name}/sidechain-{n}" for n in range(1, len(roots) + 1)}
    assert {t["trace_id"] for t in traces} == expected
    for trace in traces:
        source = trace["source"]
        assert source["session_id"] == name
        if trace["trace_id"] == name:
            assert "agent_id" not in source
        else:
            assert source["agent_id"] == trace["trace_id"].removeprefix(f"{name}/")
    # Every sidechain assistant message lands in a sidechain trace, and only there.
    side_ids = {
        e["message"]["id"] for e in entries if e["type"] == "assistant" and e["uuid"] in sidechain
    }
    main_ids = {
        e["message"]["id"]
        for e in entries
        if e["type"] == "assistant" and e["uuid"] not in sidechain
    }
    side_turns = sum(
        1
        for t in traces
        if t["trace_id"] != name
        for turn in t["turns"]
        if turn["role"] == "assistant"
    )
    main_turns = sum(1 for turn in run.by_id()[name]["turns"] if turn["role"] == "assistant")
    assert side_turns == len(side_ids)
    assert main_turns == len(main_ids)


async def test_top_level_agent_file_2_0() -> None:
    path = session_file("agent-c8d9b115")
    corpus_run = await annotate([path.parent])  # the agent file and its main session
    first = raw_lines(path)[0][1]
    session, agent = first["sessionId"], first["agentId"]
    assert session == "a7da6a22-facc-4fcd-8bab-f83c87862004"
    assert agent == "c8d9b115"
    (trace,) = corpus_run.for_path(path)
    assert trace["trace_id"] == f"{session}/agent-{agent}"
    assert trace["source"]["session_id"] == session
    assert trace["source"]["agent_id"] == agent
    # The main session of the same folder stays its own trace.
    assert session in corpus_run.by_id()
    assert corpus_run.by_id()[session]["source"]["path"].endswith(f"{session}.jsonl")
    ids = {e["message"]["id"] for _, e in raw_lines(path) if e["type"] == "assistant"}
    assert sum(1 for turn in trace["turns"] if turn["role"] == "assistant") == len(ids)


def test_subagents_folder_2_1(claude_corpus: Path, corpus_run: Run) -> None:
    agent_files = sorted(claude_corpus.rglob("subagents/agent-*.jsonl"))
    assert len(agent_files) == 2
    for path in agent_files:
        session = path.parent.parent.name
        meta = json.loads(path.with_name(path.stem + ".meta.json").read_text())
        (trace,) = corpus_run.for_path(path)
        agent = path.stem.removeprefix("agent-")
        assert trace["trace_id"] == f"{session}/{path.stem}"
        source = trace["source"]
        assert source["session_id"] == session
        assert source["agent_id"] == agent
        assert source["agent_type"] == meta["agentType"]
        assert source["description"] == meta["description"]
    # The parent session itself is a plain trace without agent metadata.
    parent = corpus_run.by_id()[agent_files[0].parent.parent.name]["source"]
    assert "agent_type" not in parent
    assert "description" not in parent


async def test_huge_base64_line(shared_corpus: Path) -> None:
    found: list[tuple[Path, int, bytes]] = []
    for path in corpus_files(shared_corpus):
        with path.open("rb") as handle:
            found.extend(
                (path, number, raw) for number, raw in enumerate(handle, 1) if len(raw) > 1_000_000
            )
    assert len(found) == 1
    path, _, raw = found[0]
    assert len(raw) == BIG_LINE_BYTES
    images = [
        block
        for block in json.loads(raw)["message"]["content"]
        if isinstance(block, dict) and block.get("type") == "image"
    ]
    assert images
    data = images[0]["source"]["data"]
    media = images[0]["source"]["media_type"]
    assert len(data) > 1_000_000

    run = await annotate([path])
    assert run.issues == []
    assert run.stats.input_issues == 0
    assert run.stats.lines == len(raw_lines(path))
    assert run.stats.bytes_read >= BIG_LINE_BYTES - 1
    contents = [turn["content"] for trace in run.traces for turn in trace["turns"]]
    assert not any(data[:200] in content for content in contents)
    assert not any(BASE64_RUN.search(content) for content in contents)
    assert any(f"[image: {media}" in content for content in contents)
    # The whole output is far smaller than the one pasted image.
    assert sum(len(orjson.dumps(t)) for t in run.traces) < len(data)
    # The text sent with the image is kept.
    texts = [
        b["text"]
        for b in json.loads(raw)["message"]["content"]
        if isinstance(b, dict) and b.get("type") == "text" and b["text"].strip()
    ]
    for text in texts:
        assert any(text in content for content in contents)


def test_repeats_in_corpus_are_the_same_action(corpus_run: Run) -> None:
    """A site marked as a repeat failed the same way as the attempts it lists."""
    repeated = 0
    for trace in corpus_run.traces:
        for turn in sites(trace):
            meta = turn["error_meta"]
            if "repeats" not in meta:
                assert meta["consecutive_failures"] == 1
                continue
            repeated += 1
            assert meta["consecutive_failures"] == meta["repeats"] + 1
            assert 1 <= len(meta["earlier_errors"]) <= 3
            assert turn["tool_error"] != "repeated_failure"
    assert repeated > 0
    assert "repeated_failure" not in corpus_run.stats.sites_by_kind


def _entry(kind: str, uuid: str, parent: str | None, content: object, **extra: Any) -> bytes:
    message: dict[str, Any] = {"role": kind, "content": content}
    if kind == "assistant":
        message["id"] = f"msg-{uuid}"
        message["model"] = "claude-test"
    entry = {
        "type": kind,
        "uuid": uuid,
        "parentUuid": parent,
        "sessionId": "s",
        "message": message,
        **extra,
    }
    return orjson.dumps(entry)


def _call(uuid: str, parent: str, use_id: str, tool: str, command: str) -> bytes:
    return _entry(
        "assistant",
        uuid,
        parent,
        [{"type": "tool_use", "id": use_id, "name": tool, "input": {"command": command}}],
    )


def _result(uuid: str, parent: str, use_id: str, text: str, *, error: bool) -> bytes:
    block = {"type": "tool_result", "tool_use_id": use_id, "content": text, "is_error": error}
    return _entry("user", uuid, parent, [block])


def _session(tmp_path: Path, steps: list[tuple[str, str, str | None]]) -> Trace:
    """A session of ``(tool, command, error or None)`` steps; returns its trace."""
    lines = [_entry("user", "u0", None, "run the tests")]
    parent = "u0"
    for n, (tool, command, error) in enumerate(steps):
        lines.append(_call(f"a{n}", parent, f"t{n}", tool, command))
        text = error if error is not None else "ok"
        lines.append(_result(f"r{n}", f"a{n}", f"t{n}", text, error=error is not None))
        parent = f"r{n}"
    lines.append(_entry("assistant", "end", parent, [{"type": "text", "text": "done"}]))
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    (trace,), issues = parse(path)
    assert issues == []
    return trace


BOOM = 'Exit code 1\nTraceback (most recent call last):\n  File "a.py", line 3, in f\nKeyError: 1'


def test_a_repeat_is_the_same_action_failing_the_same_way(tmp_path: Path) -> None:
    trace = _session(
        tmp_path,
        [
            ("Bash", "python a.py", BOOM),
            ("Bash", "python a.py", BOOM),
            ("Bash", "python a.py", BOOM),
            ("Bash", "python b.py", BOOM),  # another action: its own count
            ("Bash", "python a.py", None),  # the action succeeds: its count ends
            ("Bash", "python a.py", BOOM),
        ],
    )
    found = [(s.tool_use_id, s.kind, s.repeats) for _, _, s in trace.sites()]
    assert found == [
        ("t0", ErrorKind.SCRIPT_ERROR, 0),
        ("t1", ErrorKind.SCRIPT_ERROR, 1),
        ("t2", ErrorKind.SCRIPT_ERROR, 2),
        ("t3", ErrorKind.SCRIPT_ERROR, 0),
        ("t5", ErrorKind.SCRIPT_ERROR, 0),
    ]
    third = next(s for _, _, s in trace.sites() if s.tool_use_id == "t2")
    assert len(third.earlier_errors) == 2
    assert all("KeyError" in e for e in third.earlier_errors)


def test_a_converging_test_loop_is_not_a_repeat(tmp_path: Path) -> None:
    """12 → 11 → 2 → 1 failures with a fix between each: progress, never "stop retrying"."""
    runs = [
        f"Exit code 1\nFAILED tests/t.py::test_{n}\n===== {n} failed, 3 passed in 0.1s ====="
        for n in (12, 11, 2, 1)
    ]
    steps: list[tuple[str, str, str | None]] = []
    for run in runs:
        steps += [("Bash", "pytest -q", run), ("Edit", "fix", None)]
    trace = _session(tmp_path, steps)
    assert [s.repeats for _, _, s in trace.sites()] == [0, 0, 0, 0]
    assert all(s.kind is ErrorKind.TEST_FAILED for _, _, s in trace.sites())
    same = _session(tmp_path, [("Bash", "pytest -q", runs[0])] * 3)
    assert [s.repeats for _, _, s in same.sites()] == [0, 1, 2]


def test_different_errors_of_one_tool_are_not_a_repeat(tmp_path: Path) -> None:
    trace = _session(
        tmp_path,
        [
            ("Bash", "x", "Exit code 2\nboom"),
            ("Grep", "x", "Exit code 2\nboom"),
            ("Bash", "ls missing/", "ls: cannot access 'missing/': No such file or directory"),
            ("Bash", "cat nope", "cat: nope: No such file or directory"),
        ],
    )
    assert [s.repeats for _, _, s in trace.sites()] == [0, 0, 0, 0]


def test_user_message_after_failure_ends_it(tmp_path: Path) -> None:
    """The assistant answers the user's new message, not the failure before it."""
    lines = [
        _entry("user", "u0", None, "build it"),
        _call("a0", "u0", "t0", "Bash", "make"),
        _result("r0", "a0", "t0", "Exit code 2\nmake: *** No rule", error=True),
        _entry("user", "m0", "r0", "<command-name>/clear</command-name>", isMeta=True),
        _call("a1", "m0", "t1", "Bash", "make all"),
        _result("r1", "a1", "t1", "Exit code 2\nmake: *** No rule", error=True),
        _entry("user", "u1", "r1", "never mind, do something else"),
        _entry("assistant", "a2", "u1", [{"type": "text", "text": "Sure."}]),
    ]
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    (trace,), issues = parse(path)
    assert issues == []
    assert [s.tool_use_id for _, _, s in trace.sites()] == ["t0"]
    ((index, _, _),) = trace.sites()
    assert trace.turns[index].content.startswith("[TOOL_CALL Bash]")


def _progress(uuid: str, data: dict[str, Any], use_id: str) -> bytes:
    entry = {
        "parentUuid": None,
        "type": "progress",
        "data": data,
        "toolUseID": use_id,
        "parentToolUseID": use_id,
        "uuid": uuid,
    }
    return orjson.dumps(entry)


def test_progress_entries_are_skipped_but_a_pre_tool_use_hook_is_read(tmp_path: Path) -> None:
    """2.1.x ``progress`` lines: counted and skipped, except the PreToolUse hook of a call."""
    blocked = "Blocked by policy: no force pushes"
    lines = [
        _entry("user", "u0", None, "push it"),
        _call("a0", "u0", "t0", "Bash", "git push --force"),
        _progress("p0", {"type": "bash_progress", "output": "x" * 5000}, "t0"),
        _progress("p1", {"type": "hook_progress", "hookEvent": "PostToolUse"}, "t9"),
        _progress(
            "p2",
            {"type": "hook_progress", "hookEvent": "PreToolUse", "hookName": "PreToolUse:Bash"},
            "t0",
        ),
        _progress("p3", {"type": "agent_progress", "message": {"content": "in_progress"}}, "t0"),
        _result("r0", "a0", "t0", blocked, error=True),
        _entry("assistant", "end", "r0", [{"type": "text", "text": "I will not force push."}]),
        # not a progress entry, though it names one
        _entry("user", "u1", "end", 'what does "progress" mean here?'),
    ]
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    parser = ClaudeCodeParser(str(path), Classifier(), Limits())
    for number, data in enumerate(lines, 1):
        assert parser.feed(Line(number, data)) is None
    (trace,) = parser.finish()
    assert parser.skipped_entries == 4
    assert parser.good_lines == len(lines)
    ((_, _, site),) = trace.sites()
    assert site.kind is ErrorKind.HOOK_BLOCKED
    assert site.facts.hook == "PreToolUse:Bash"
    assert trace.turns[-1].content == 'what does "progress" mean here?'


def test_a_malformed_progress_line_is_an_issue(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    parser = ClaudeCodeParser(str(path), Classifier(), Limits())
    assert parser.feed(Line(1, _entry("user", "u0", None, "hi"))) is None
    found = parser.feed(Line(2, b'{"type":"progress","data":{"type":"bash_progress",}}'))
    assert found is not None
    assert found.line == 2
    assert "invalid JSON" in found.reason
