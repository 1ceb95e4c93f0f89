"""The user's own corrections as sites: rejections with words, replies that say the agent was wrong.

Real Claude Code sessions (``tests/data/claude_code``, copies of corpus files) through the real
parser and CLI; the rule table's classes checked one by one.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conftest import REPO, run_cli
from tracehint import (
    CORRECTION_SYSTEM_PROMPT,
    Annotator,
    AnnotatorConfig,
    Classifier,
    Corrections,
    DetectedBy,
    ErrorKind,
    HintSource,
    HintStatus,
    JudgeConfig,
    MockAnswer,
    MockJudge,
    MockJudgeConfig,
    Trace,
    parse_session,
    read_traces,
    site_rows,
    teacher_messages,
)
from tracehint._corrections import _SUCCESS, DEFAULT_CORRECTION_RULES, rejection_words
from tracehint._needles import AnyMatch, alternatives

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

DATA = REPO / "tests" / "data" / "claude_code_corrections"
IDE_SESSION = DATA / "9e953218-585f-4692-89df-9e0747a31c68.jsonl"  # CC 2.0.5, many corrections
VITE_SESSION = DATA / "7acd37a8-2745-4b58-a8a9-46164b22ad9e.jsonl"  # CC 2.0.42, "use pnpm"
TESTS_SESSION = DATA / "937c6e6b-27e7-4edd-86f1-ad28f9731841.jsonl"  # CC 1.0.53, failing tests


def trace_of(path: Path, classifier: Classifier | None = None) -> Trace:
    parsed = parse_session(path.read_bytes(), path=str(path), classifier=classifier)
    (trace,) = [t for t in parsed.traces if "/" not in t.trace_id]
    return trace


def user_sites(trace: Trace) -> list[tuple[int, Any]]:
    return [(i, s) for i, _, s in trace.sites() if s.detected_by is DetectedBy.USER]


def text(trace: Trace, index: int | None) -> str:
    assert index is not None
    content = trace.messages[index].get("content")
    return content if isinstance(content, str) else ""


# -- the rule table, class by class -----------------------------------------------------------

DONE = "Done! I've added the redirect to vercel.json. The old URL will now properly redirect."
QUESTION = "I can add a redirect in next.config.js or in vercel.json. Which would you prefer?"


@pytest.mark.parametrize(
    ("reply", "claim", "rule"),
    [
        ("Still doesn't work, maybe a build step is missing?", DONE, "still_broken"),
        ("The redirection doesn't work :(", DONE, "still_broken"),
        ("Hmm, it no longer builds on Vercel", DONE, "still_broken"),
        ("Oh no, we lost the session navigation section :(", DONE, "broke_something"),
        ("You removed the favicon link from the header", DONE, "broke_something"),
        ("A couple of tests are failing now:", DONE, "broke_something"),
        ("Look:\n\nfatal: Could not read from remote repository.", DONE, "pasted_failure"),
        (
            "Traceback (most recent call last):\n  File 'a.py'\nKeyError: 'x'",
            DONE,
            "pasted_failure",
        ),
        ("No, I meant the standalone repo, not this one.", DONE, "contradiction"),
        ("That's not what I asked for: keep the old URL.", DONE, "contradiction"),
        ("You forgot to commit the tokenizer files.", DONE, "contradiction"),
        ("Are you sure the HTML is the issue?", DONE, "doubt"),
        ("Do we even need the helper then?", DONE, "unneeded"),
        ("The lint findings are not pre-existing: main was clean.", DONE, "was_fine_before"),
    ],
)
def test_a_reply_that_says_the_agent_was_wrong_is_a_correction(
    reply: str, claim: str, rule: str
) -> None:
    found = Corrections().match(reply, claim)
    assert found is not None
    assert found.rule == rule


@pytest.mark.parametrize(
    ("reply", "claim"),
    [
        # New instructions, thanks and answers are not corrections.
        ("Thanks! Please update CLAUDE.md for the current changes", DONE),
        ("Great, now add a README to the new repo", DONE),
        ("Let's also migrate to AudioWorklet", DONE),
        ("ok, fine, let's do vite", DONE),
        ("yes please, and let's make it cross-browser", DONE),
        ("Excellent work, thank you!", DONE),
        # A "no" answering the agent's question is an answer, not a correction.
        ("No, vercel.json please.", QUESTION),
        # A failure pasted after a plan or a question is a new task, not a refutation.
        ("Still doesn't work for me either:\n\nError: 404", QUESTION),
        ("Oh no, we lost the build cache again", QUESTION),
        # Words in the reply, not in its opening, do not count (a long new task).
        (
            "Please add a settings page. " + "It should list the options. " * 20 + "You forgot X",
            DONE,
        ),
    ],
)
def test_a_new_instruction_is_not_a_correction(reply: str, claim: str) -> None:
    assert Corrections().match(reply, claim) is None


def test_rejection_words_drop_claude_codes_boilerplate() -> None:
    reason = (
        "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. "
        "if it was a file edit, the new_string was NOT written to the file). The user provided "
        "the following reason for the rejection:  use pnpm"
    )
    assert rejection_words(reason) == "use pnpm"
    bare = (
        "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if "
        "it was a file edit, the new_string was NOT written to the file). STOP what you are "
        "doing and wait for the user to tell you how to proceed."
    )
    assert rejection_words(bare) is None
    assert rejection_words("please add transformer.js too first") == (
        "please add transformer.js too first"
    )


# -- real sessions ------------------------------------------------------------------------------


def test_rejection_with_the_users_reason_is_a_site_hinted_with_it() -> None:
    trace = trace_of(VITE_SESSION)
    (pnpm,) = [s for _, s in user_sites(trace) if s.error_message == "use pnpm"]
    assert pnpm.kind is ErrorKind.USER_CORRECTION
    assert pnpm.tool_name == "Bash"
    assert pnpm.tool_input is not None
    assert "npm" in pnpm.tool_input
    mistake = trace.messages[pnpm.mistake_message_index or 0]
    assert pnpm.tool_use_id in {call["id"] for call in mistake["tool_calls"]}
    assert pnpm.message_index is not None
    assert trace.messages[pnpm.message_index]["role"] == "assistant"
    assert pnpm.message_index > (pnpm.mistake_message_index or 0)


def test_a_bare_rejection_takes_the_words_typed_right_after_it() -> None:
    trace = trace_of(VITE_SESSION)
    said = [s for _, s in user_sites(trace) if "cross-platform" in s.error_message]
    (site,) = said
    assert site.tool_name == "Bash"
    assert "which" in (site.tool_input or "")
    # The parallel calls cancelled with it stay non-mistakes.
    assert trace.non_mistakes == {ErrorKind.INTERRUPTED: 2}


def test_a_rejection_without_words_stays_a_non_site(tmp_path: Path) -> None:
    """The same session with the words the user typed after a bare rejection cut out."""
    lines = VITE_SESSION.read_bytes().splitlines(keepends=True)
    words = [i for i, line in enumerate(lines) if b"I have both Node and Python" in line]
    assert words
    cut = tmp_path / VITE_SESSION.name
    cut.write_bytes(b"".join(line for i, line in enumerate(lines) if i not in words))
    trace = trace_of(cut)
    assert not [s for _, s in user_sites(trace) if "cross-platform" in s.error_message]
    assert trace.non_mistakes.get(ErrorKind.USER_REJECTED) == 1
    # The rejection with its reason in the result is still a site.
    assert [s for _, s in user_sites(trace) if s.error_message == "use pnpm"]


def test_still_doesnt_work_after_done_is_a_site_on_the_done_message() -> None:
    trace = trace_of(IDE_SESSION)
    (site,) = [s for _, s in user_sites(trace) if s.error_message.startswith("Still doesn't")]
    assert site.facts.codes == ("still_broken",)
    assert site.tool_use_id == ""
    assert site.tool_name is None
    claim = text(trace, site.mistake_message_index)
    assert claim.startswith("Done!")
    assert "properly redirect" in claim
    assert site.message_index == (site.mistake_message_index or 0) + 2  # the reply, then this
    assert trace.messages[site.message_index]["role"] == "assistant"


def test_a_session_with_many_user_turns_flags_only_the_corrections() -> None:
    """11 user messages: the corrections are sites, the new instructions and answers are not."""
    trace = trace_of(IDE_SESSION)
    replies = [
        m["content"]
        for m in trace.messages
        if m["role"] == "user" and isinstance(m.get("content"), str)
    ]
    assert len(replies) >= 10
    found = {s.error_message.split()[0] for _, s in user_sites(trace) if not s.tool_use_id}
    assert found == {"The", "Still", "This", "FGS:", "Are", "Next.js"}
    for start in ("Would I be able to redirect", "OK, I created a repo", "There's only a README"):
        assert not [s for _, s in user_sites(trace) if s.error_message.startswith(start)]
    rules = sorted(s.facts.codes[0] for _, s in user_sites(trace))
    assert rules.count("rejected") == 3  # the IDE's rejections carry only the user's words
    # A site per message: none of them is on a turn that a tool error also claimed.
    assert len({i for i, _ in user_sites(trace)}) == len(user_sites(trace))


def test_pasted_failing_tests_after_perfect_is_a_site() -> None:
    trace = trace_of(TESTS_SESSION)
    ((_, site),) = user_sites(trace)
    assert site.facts.codes == ("broke_something",)
    assert text(trace, site.mistake_message_index).startswith("Perfect!")
    assert site.facts.key_line is not None
    assert "AssertionError" in site.facts.key_line
    # The user's earlier requests ("Please fix these lint errors") are not corrections.
    assert not [s for _, s in user_sites(trace) if "lint errors" in s.error_message]


def test_corrections_off_gives_the_rejections_back_as_non_mistakes() -> None:
    config = AnnotatorConfig(detect=frozenset({DetectedBy.TOOL_ERROR}))
    assert config.classifier.corrections is None
    trace = trace_of(VITE_SESSION, config.classifier)
    assert user_sites(trace) == []
    assert trace.non_mistakes == {ErrorKind.USER_REJECTED: 2, ErrorKind.INTERRUPTED: 2}


async def test_user_hints_and_training_rows() -> None:
    async with Annotator(AnnotatorConfig(use_cache=False)) as annotator:
        trace = await annotator.annotate_trace(trace_of(IDE_SESSION))
    hinted = [(i, s, trace.turns[i].hint) for i, s in user_sites(trace)]
    assert hinted
    for index, site, hint in hinted:
        assert hint is not None
        assert hint.source is HintSource.USER
        assert hint.text is not None
        assert site.error_message.split()[0] in hint.text
        teacher = teacher_messages(trace, index, at="mistake")
        k = site.mistake_message_index
        assert k is not None
        assert teacher[k] == {"role": "user", "content": hint.text}
        assert teacher[k + 1] == trace.messages[k]
    rows = [r for r in site_rows(trace, at="mistake") if r["detected_by"] == "user"]
    assert len(rows) == len(hinted)
    assert {r["hint_source"] for r in rows} == {"user"}
    assert {r["kind"] for r in rows} == {"user_correction"}


# -- the command line ---------------------------------------------------------------------------


def test_cli_writes_user_sites_and_detect_turns_them_off(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    shutil.copytree(DATA, sessions)
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    result = run_cli(
        "annotate", str(sessions), "-o", str(out), "--stats-json", str(stats), "--no-progress"
    )
    assert result.returncode == 0, result.stderr
    assert "found by: " in result.stderr
    summary = json.loads(stats.read_text())
    users = summary["sites_by_detector"]["user"]
    assert users == summary["sites_by_kind"]["user_correction"] >= 12
    assert summary["hints_by_source"]["user"] == users
    turns = [t for trace in read_traces(out) for t in trace.turns if t.site is not None]
    assert sum(t.site.detected_by is DetectedBy.USER for t in turns if t.site) == users
    raw = [json.loads(line) for line in out.read_text().splitlines()]
    written = [t for trace in raw for t in trace["turns"] if t.get("detected_by") == "user"]
    assert all(t["tool_error"] == "user_correction" for t in written)
    assert all(t["hint_source"] == "user" for t in written)

    off = tmp_path / "off.jsonl"
    result = run_cli(
        "annotate", str(sessions), "-o", str(off), "--detect", "tool_error", "--no-progress", "-q"
    )
    assert result.returncode == 0, result.stderr
    assert "user_correction" not in off.read_text()
    bad = run_cli("annotate", str(sessions), "-o", str(off), "--overwrite", "--detect", "users")
    assert bad.returncode == 2
    assert "unknown detector users" in bad.stderr


# -- with a judge: the yes/no check and the rephrased hint --------------------------------------


async def test_the_judge_checks_and_rephrases_each_correction() -> None:
    trace = trace_of(IDE_SESSION)
    async with MockJudge(MockJudgeConfig(latency=0.0)) as judge:
        config = AnnotatorConfig(judge=JudgeConfig(url=judge.url, model="m"), use_cache=False)
        async with Annotator(config) as annotator:
            hinted = await annotator.annotate_trace(trace)
        systems = judge.stats.system_prompts
        bodies = [
            b["messages"][1]["content"]
            for b in judge.stats.bodies
            if b["messages"][0]["content"] == CORRECTION_SYSTEM_PROMPT
        ]
    sites = user_sites(hinted)
    assert systems[CORRECTION_SYSTEM_PROMPT] == len(sites)
    (still,) = [b for b in bodies if "Still doesn't work" in b]
    assert "## The agent's message\nDone! I've added the redirect" in still
    assert "## The user's reply\nStill doesn't work" in still
    (pnpm_like,) = [b for b in bodies if "please add transformer.js too first" in b]
    assert "## The tool call the user rejected\nTool: Bash" in pnpm_like
    for index, _ in sites:
        hint = hinted.turns[index].hint
        assert hint is not None
        assert (hint.source, hint.status) == (HintSource.JUDGE, HintStatus.OK)

    async with MockJudge(
        MockJudgeConfig(latency=0.0, answers=(MockAnswer.NOT_A_MISTAKE,))
    ) as judge:
        config = AnnotatorConfig(
            judge=JudgeConfig(url=judge.url, model="m"), use_cache=False, layers=("judge",)
        )
        async with Annotator(config) as annotator:
            refused = await annotator.annotate_trace(trace)
    for index, _ in user_sites(refused):
        hint = refused.turns[index].hint
        assert hint is not None
        assert hint.status is HintStatus.NOT_A_MISTAKE  # kept in the output, not for training
        assert hint.text is None
    assert not [r for r in site_rows(refused) if r["detected_by"] == "user"]


def random_texts(
    rng: random.Random, pieces: Sequence[str], *, count: int, most_words: int, upper: float
) -> Iterator[str]:
    """``count`` texts of 1 to ``most_words`` words of ``pieces``; ``upper`` of them upper-cased.

    Drawn from ``rng`` one text at a time, so a caller may draw from it between texts.
    """
    words = [word for piece in pieces for word in piece.split(" ")]
    for _ in range(count):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, most_words)))
        yield text.upper() if rng.random() < upper else text


def test_the_rules_prefilters_never_change_a_match() -> None:
    """Each rule's literal prefilter only skips replies its regex could not match."""
    plain = Corrections(rules=tuple(replace(r, needles=None) for r in DEFAULT_CORRECTION_RULES))
    assert any(rule.needles for rule in DEFAULT_CORRECTION_RULES)
    rng = random.Random(11)  # noqa: S311 -- reproducible test inputs, not secrets
    phrases = (
        "still doesn't work broken no longer works you lost removed is now failing regress",
        "Error: Traceback (most recent call last) FAILED no nope that's wrong I meant are you",
        "sure I don't think that's do we even need no need was clean before passing main was",
        "green STILL Doesn'T WORK \u017ftill \u212aeep ok thanks great café",
    )
    claims = ["Done! The redirect now works.", "Should I continue?", "I've fixed it", "A plan."]
    found = 0
    for text in random_texts(rng, phrases, count=5000, most_words=12, upper=0.3):
        claim = rng.choice(claims)
        expected = plain.match(text, claim)
        assert Corrections().match(text, claim) == expected, (text, claim)
        found += expected is not None
    assert found > 100


def test_searching_one_alternative_at_a_time_finds_what_the_whole_regex_finds() -> None:
    """``AnyMatch`` (each alternative behind its own literals) agrees with ``pattern.search``."""
    patterns = [rule.pattern for rule in DEFAULT_CORRECTION_RULES] + [_SUCCESS.pattern]
    assert all(AnyMatch.of(pattern).parts is not None for pattern in patterns[:3])
    rng = random.Random(5)  # noqa: S311 -- reproducible test inputs, not secrets
    pieces = (
        "Done ✅ all set tests now pass I've fixed it should now perfect! has been updated",
        "error: x fatal: y Traceback (most recent call last) FAILED E   assert npm ERR! 3 failed",
        "NS_ERROR_FAILURE was blocked because Uncaught TypeError ValueError: exited with code 2",
        "exit code 1 404 Not Found ===== FAILURES ===== still broken you lost it was fine before",
        "are you sure do we need no, that's wrong café \u212aelvin\n\n  \nERROR: x",
    )
    for text in random_texts(rng, pieces, count=3000, most_words=15, upper=0.2):
        lowered = text.lower() if text.isascii() else None
        for pattern in patterns:
            expected = pattern.search(text) is not None
            assert AnyMatch.of(pattern).found_in(text, lowered) is expected, (pattern, text)


def test_alternatives_are_not_taken_apart_when_that_could_change_a_match() -> None:
    assert alternatives(re.compile(r"(a)|(b)\1")) is None  # a group of another alternative
    assert alternatives(re.compile(r"(?P<x>a)|(?P=x)")) is None
    assert alternatives(re.compile(r"a | b", re.VERBOSE)) is None
    assert alternatives(re.compile(r"ab")) is None
    split = alternatives(re.compile(r"[|]x|(c|d)\|y|z", re.IGNORECASE))
    assert split is not None
    assert [part.pattern for part in split] == [r"[|]x", r"(c|d)\|y", "z"]
    assert all(part.flags & re.IGNORECASE for part in split)
