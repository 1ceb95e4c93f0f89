"""The answer checks: what a judge sends, and what of it may become a hint (pure, sync)."""

from __future__ import annotations

import difflib
import random

import pytest

from tracehint import Answer, Rejected, Rejection, Verdict, check_answer, pick_answer
from tracehint._answer import GENERIC_PHRASES, count_sentences, shares_run

GOOD = "Read `src/app.py` with the Read tool before you edit it, then retry the same edit."
ERROR = (
    "<tool_use_error>File has not been read yet. Read it first before writing to it."
    "</tool_use_error>"
)


def hint_of(found: Answer | Rejected) -> str | None:
    assert isinstance(found, Answer), found
    assert found.verdict is Verdict.MISTAKE
    return found.hint


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        f'{{"hint": "{GOOD}", "verdict": "mistake"}}',
        f'```json\n{{"hint": "{GOOD}", "verdict": "mistake"}}\n```',
        f'<think>The agent edited blind.</think>\n{{"hint": "{GOOD}", "verdict": "mistake"}}',
        f"The agent edited a file it never read.</think>\n\n{GOOD}",  # opening tag stripped
        f'Here is the JSON:\n{{"hint": "{GOOD}", "verdict": "mistake"}}',
        f"Hint: {GOOD}",
        f'"{GOOD}"',
        f"Hint: {GOOD}\nVerdict: mistake",
        f'{{"hint": "{GOOD}", "verdict": "mistake"}}\nI hope this helps.',
    ],
)
def test_good_answers_in_every_shape_give_the_same_hint(text: str) -> None:
    assert hint_of(check_answer(text, error=ERROR)) == GOOD


@pytest.mark.parametrize(
    ("text", "finish", "reason"),
    [
        (GOOD, "length", Rejection.CUT_OFF),
        ('{"hint": "Read the file bef', "length", Rejection.CUT_OFF),
        ("<think>The agent edited a file it never", "stop", Rejection.UNTERMINATED_THINK),
        ("", "stop", Rejection.EMPTY),
        ("   \n", None, Rejection.EMPTY),
        ("<think>only reasoning</think>", "stop", Rejection.EMPTY),
        ('{"hint": "Read the file bef', "stop", Rejection.MALFORMED_JSON),
        ('{"verdict": "mistake"}', "stop", Rejection.MALFORMED_JSON),
        ('{"hint": "  ", "verdict": "mistake"}', "stop", Rejection.EMPTY),
        ('{"hint": {"text": "nested"}, "verdict": "mistake"}', "stop", Rejection.MALFORMED_JSON),
        ('{"hint": "{\\"a\\": 1}", "verdict": "mistake"}', "stop", Rejection.MALFORMED_JSON),
        ("Read it first.", "stop", Rejection.TOO_SHORT),
        ("Retry.", "stop", Rejection.TOO_SHORT),
        ("Read the file first. " * 40, "stop", Rejection.TOO_LONG),
        (
            "Read the file first. Then edit it with the exact text. Then run the tests again.",
            "stop",
            Rejection.TOO_MANY_SENTENCES,
        ),
        ("- Read the file first\n- Edit it\n- Run the tests", "stop", Rejection.TOO_MANY_SENTENCES),
        ("Corrective hint: read the file first and then edit it.", "stop", Rejection.ECHO),
        ("## The failing call\nTool: Edit, file_path: src/app.py", "stop", Rejection.ECHO),
        ("File has not been read yet. Read it first before writing to it.", "stop", Rejection.ECHO),
        ("Be careful and try again.", "stop", Rejection.GENERIC),
        ("Make sure to double-check your work before you retry.", "stop", Rejection.GENERIC),
        ("You should be more careful and pay attention to the error.", "stop", Rejection.GENERIC),
    ],
)
def test_bad_answers_are_rejected_with_their_reason(
    text: str, finish: str | None, reason: Rejection
) -> None:
    found = check_answer(text, finish_reason=finish, error=ERROR)
    assert isinstance(found, Rejected), found
    assert found.reason is reason, found


def test_a_cut_off_answer_is_rejected_even_when_it_reads_well() -> None:
    found = check_answer(f'{{"hint": "{GOOD}", "verdict": "mistake"}}', finish_reason="length")
    assert isinstance(found, Rejected)
    assert found.reason is Rejection.CUT_OFF


def test_not_a_mistake_verdict_has_no_hint() -> None:
    found = check_answer('{"hint": "", "verdict": "not_a_mistake"}')
    assert found == Answer(Verdict.NOT_A_MISTAKE, None)
    noted = check_answer(
        '{"hint": "The user asked to reproduce the crash.", "verdict": "not_a_mistake"}'
    )
    assert noted == Answer(Verdict.NOT_A_MISTAKE, None, "The user asked to reproduce the crash.")
    assert check_answer("not_a_mistake") == Answer(Verdict.NOT_A_MISTAKE, None)


def test_specific_hints_that_use_generic_words_are_kept() -> None:
    for text in (
        "Make sure `pytest` runs from the repository root, where `pyproject.toml` is.",
        "Double-check the path: list `src/components` with `ls` before you read a file in it.",
        "Retry the edit with an `old_string` that includes the function name around the line.",
    ):
        assert hint_of(check_answer(text, error=ERROR)) == text


def test_every_generic_phrase_alone_is_rejected() -> None:
    for phrase in GENERIC_PHRASES:
        found = check_answer(f"You should {phrase} this time, please.")
        assert isinstance(found, Rejected), phrase
        assert found.reason in {Rejection.GENERIC, Rejection.TOO_SHORT}, (phrase, found)


def test_sentences_are_not_split_at_paths_versions_or_abbreviations() -> None:
    assert count_sentences("Edit src/app.py (e.g. the main() in v1.2.3) and run it.") == 1
    assert count_sentences("Read it first. Then edit it.") == 2
    assert count_sentences("Read it first!\nThen edit it") == 2


def test_an_answer_that_copies_the_error_is_an_echo() -> None:
    error = "npm ERR! missing script: build\nnpm ERR! A complete log of this run can be found in:"
    found = check_answer("npm ERR! missing script: build", error=error)
    assert isinstance(found, Rejected)
    assert found.reason is Rejection.ECHO
    # Naming what the error names is not an echo.
    missing = "/Users/dev/workspace/online-llm-tokenizer/favicons/token.svg"
    quoting = check_answer(
        "Create the directory `/Users/dev/workspace/online-llm-tokenizer/favicons` first.",
        error=f"ENOENT: no such file or directory, open '{missing}'",
    )
    assert isinstance(quoting, Answer), quoting
    kept = check_answer(
        "Look at the `scripts` in `package.json` and run one that exists instead of `build`.",
        error=error,
    )
    assert isinstance(kept, Answer)


def test_limits_are_parameters() -> None:
    found = check_answer(GOOD, max_chars=40)
    assert isinstance(found, Rejected)
    assert found.reason is Rejection.TOO_LONG
    assert isinstance(check_answer("Read the file. Edit. Test.", max_sentences=3), Answer)


def test_pick_answer_keeps_the_one_closest_to_the_others() -> None:
    hints = [
        "Create the `build` directory before you write the file into it.",
        "Install the missing package with pip before you import it.",
        "Create the `build` directory first, then write the file into it.",
        "Make the `build` directory before you write the file.",
    ]
    assert pick_answer(hints) in {hints[0], hints[2]}
    assert pick_answer(hints[:1]) == hints[0]
    assert pick_answer(["same hint", "same hint"]) == "same hint"
    with pytest.raises(ValueError, match="at least one"):
        pick_answer([])


def test_the_copied_run_test_agrees_with_the_longest_common_substring() -> None:
    rng = random.Random(17)  # noqa: S311 -- test data, not cryptography
    for _ in range(20_000):
        alphabet = rng.choice(["ab", "abc", "abcdefgh"])
        a = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randrange(60)))
        if a and rng.random() < 0.5:  # plant a piece of a in b
            start = rng.randrange(len(a))
            end = rng.randrange(start, len(a) + 1)
            at = rng.randrange(len(b) + 1)
            b = b[:at] + a[start:end] + b[at:]
        size = rng.randrange(1, 20)
        longest = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(
            0, len(a), 0, len(b)
        )
        assert shares_run(a, b, size) == (longest.size >= size), (a, b, size)
