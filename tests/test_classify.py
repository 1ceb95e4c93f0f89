import random
import re
import shlex
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from tracehint import DEFAULT_RULES, Classifier, ErrorKind, Rule
from tracehint._classify import required_substrings
from tracehint._command import _tokens

C = Classifier()


@pytest.mark.parametrize(
    ("text", "tool", "kind"),
    [
        (
            "<tool_use_error>File has not been read yet. Read it first before writing to it."
            "</tool_use_error>",
            "Write",
            ErrorKind.FILE_NOT_READ,
        ),
        ("ls: cannot access 'types/': No such file or directory", "Bash", ErrorKind.FILE_NOT_FOUND),
        ("(eval):1: no such file or directory: types/README.md", "Bash", ErrorKind.FILE_NOT_FOUND),
        ("EISDIR: illegal operation on a directory, read", "Read", ErrorKind.IS_A_DIRECTORY),
        (
            "<tool_use_error>String to replace not found in file.\nString: foo</tool_use_error>",
            "Edit",
            ErrorKind.STRING_NOT_FOUND,
        ),
        (
            "Found 2 matches of the string to replace, but replace_all is false.",
            "Edit",
            ErrorKind.STRING_NOT_UNIQUE,
        ),
        (
            "Exit code 127\n/bin/bash: line 1: pytest: command not found",
            "Bash",
            ErrorKind.COMMAND_NOT_FOUND,
        ),
        ("Exit code 1\nSIM115 Use a context manager", "Bash", ErrorKind.COMMAND_FAILED),
        ("npm warn Unknown env config", "Bash", ErrorKind.COMMAND_FAILED),
        (
            "Claude requested permissions to use WebSearch, but you haven't granted it yet.",
            "WebSearch",
            ErrorKind.PERMISSION_DENIED,
        ),
        ("This command requires approval", "Bash", ErrorKind.PERMISSION_DENIED),
        (
            "ls in '~/.claude' was blocked. For security, Claude Code may only list files",
            "LS",
            ErrorKind.PERMISSION_DENIED,
        ),
        ("bash: /etc/shadow: Permission denied", "Bash", ErrorKind.PERMISSION_DENIED),
        ("PreToolUse:Bash hook error: blocked rm -rf", "Bash", ErrorKind.HOOK_BLOCKED),
        (
            "<tool_use_error>InputValidationError: Task failed due to the following issue:\n"
            "The required parameter `prompt` is missing</tool_use_error>",
            "Task",
            ErrorKind.INPUT_VALIDATION,
        ),
        (
            "json.decoder.JSONDecodeError: Expecting value: line 1 column 1",
            "Bash",
            ErrorKind.SCRIPT_ERROR,
        ),
        (
            "<tool_use_error>No such tool available: Frobnicate</tool_use_error>",
            "Frobnicate",
            ErrorKind.UNKNOWN_TOOL,
        ),
        (
            "File content (30000 tokens) exceeds maximum allowed tokens (25000).",
            "Read",
            ErrorKind.OUTPUT_TOO_LARGE,
        ),
        ("Request failed with status code 404", "WebFetch", ErrorKind.WEB_FETCH_FAILED),
        ("Something odd happened", "WebFetch", ErrorKind.WEB_FETCH_FAILED),
        ("Command timed out after 2m 0.0s", "Bash", ErrorKind.TIMEOUT),
        ("Error", "Task", ErrorKind.TOOL_ERROR),
        # not the agent's mistakes
        (
            "The user doesn't want to proceed with this tool use. The tool use was rejected "
            "(eg. if it was a file edit, the new_string was NOT written to the file).",
            "Edit",
            ErrorKind.USER_REJECTED,
        ),
        ("User rejected tool use", "Bash", ErrorKind.USER_REJECTED),
        ("please add transformer.js too first", "Bash", ErrorKind.USER_REJECTED),
        ("[Request interrupted by user for tool use]", "Bash", ErrorKind.INTERRUPTED),
        (
            "<tool_use_error>Sibling tool call errored</tool_use_error>",
            "Read",
            ErrorKind.SIBLING_CANCELLED,
        ),
    ],
)
def test_real_errors_classify(text: str, tool: str, kind: ErrorKind) -> None:
    assert C.classify(text, tool).kind is kind


def test_feedback_rule_needs_a_permissioned_tool() -> None:
    # Short marker-free text from a read-only tool is not a user's feedback.
    assert C.classify("please add transformer.js too first", "Read").kind is ErrorKind.TOOL_ERROR


def test_feedback_rule_rejects_long_output() -> None:
    assert C.classify("x " * 400, "Bash").kind is ErrorKind.COMMAND_FAILED


def test_exit_code_is_extracted() -> None:
    found = C.classify("Exit code 2\nboom", "Bash")
    assert found.kind is ErrorKind.COMMAND_FAILED
    assert found.exit_code == 2


def test_non_mistakes_are_flagged() -> None:
    assert not ErrorKind.USER_REJECTED.is_mistake
    assert not ErrorKind.INTERRUPTED.is_mistake
    assert not ErrorKind.SIBLING_CANCELLED.is_mistake
    assert ErrorKind.FILE_NOT_FOUND.is_mistake


def test_custom_rules_extend_without_global_state() -> None:
    custom = C.with_rules(Rule(ErrorKind.TIMEOUT, re.compile("slowpoke")))
    assert custom.classify("slowpoke", "Bash").kind is ErrorKind.TIMEOUT
    # The default classifier is unchanged.
    assert C.classify("slowpoke", "Bash").kind is ErrorKind.COMMAND_FAILED


def test_fallback_is_configurable() -> None:
    assert (
        Classifier(rules=(), fallback=ErrorKind.COMMAND_FAILED).classify("x").kind
        is ErrorKind.COMMAND_FAILED
    )


@pytest.mark.parametrize(
    ("pattern", "needles"),
    [
        (r"file has not been read yet", ("file has not been read yet",)),
        (r"\beacces\b|permission denied", ("eacces", "permission denied")),
        (r"exit code:? (\d+)", ("exit code",)),
        (r"ab|permission denied", None),  # one alternative has no 3-character literal
        (r".", None),
        (r"found \d+ matches of the string", (" matches of the string",)),
        (r"(?:foo bar|baz qux) end", (" end",)),  # the longest run every match has
        (r"(?:foo bar|baz qux)!", ("baz qux", "foo bar")),
        (r"^E {3}|FAILED", ("E   ", "FAILED")),  # a literal repeated a fixed number of times
        (r"E {2,3}x|FAILED", None),  # "E" then an open repeat: no 3-character literal
    ],
)
def test_required_substrings(pattern: str, needles: tuple[str, ...] | None) -> None:
    assert required_substrings(re.compile(pattern)) == needles


def test_required_substrings_refuses_case_folding() -> None:
    assert required_substrings(re.compile("permission denied", re.IGNORECASE)) is None


def test_prefilters_never_change_a_classification(claude_corpus: Path) -> None:
    texts = [
        "Error: EACCES: permission denied, open '/etc/x'",
        "<tool_use_error>File has not been read yet. Read it first.</tool_use_error>",
        "Exit code 127\nbash: line 1: foo: command not found",
        "x" * 20_000 + "\nTraceback (most recent call last):\nTimeoutError: timed out",
    ]
    for path in claude_corpus.rglob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            entry = orjson.loads(line) if line.strip().startswith(b"{") else None
            content = (entry.get("message") or {}).get("content") if entry else None
            if isinstance(content, list):
                texts += [
                    str(block.get("content"))
                    for block in content
                    if isinstance(block, dict) and block.get("type") == "tool_result"
                ]
    assert len(texts) > 200  # every tool result of the sessions
    plain = Classifier(rules=tuple(replace(rule, needles=None) for rule in DEFAULT_RULES))
    fast = Classifier()
    assert sum(rule.needles is not None for rule in DEFAULT_RULES) > len(DEFAULT_RULES) // 2
    for text in texts:
        for tool in (None, "Bash", "Edit", "WebFetch", "Write", "Task"):
            assert fast.classify(text, tool) == plain.classify(text, tool), (text[:200], tool)


# -- the shell tokenizer: the same tokens as shlex, faster --------------------------------------


def _shlex_tokens(command: str) -> list[str] | None:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:
        return None


def _our_tokens(command: str) -> list[str] | None:
    try:
        return _tokens(command)
    except ValueError:
        return None


@pytest.mark.parametrize(
    "command",
    [
        "cd x && uv run pytest -q",
        'echo \'a b\' "c \\" d" e\\ f 2>&1 | grep -v x;ls',
        "a''b \"\" '' x\\\ny",
        '"\\a\\\\b\\"c"',
        "ls >out 2>&1 <in &",
        "echo 'unclosed",
        'echo "unclosed \\',
        "trailing \\",
        "tab\tand\rreturn\x0bvertical",
        "python -c 'print(1)' ; (cd a; make)",
    ],
)
def test_tokens_are_shlex_tokens(command: str) -> None:
    assert _our_tokens(command) == _shlex_tokens(command)


def test_tokens_are_shlex_tokens_on_random_lines() -> None:
    rng = random.Random(17)  # noqa: S311 -- reproducible test inputs, not secrets
    alphabet = list("ab ;&|()<>'\"\\\n\t\r$`#=-.x2\x0b")
    for _ in range(20_000):
        command = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert _our_tokens(command) == _shlex_tokens(command), command


def test_the_key_line_is_the_last_line_that_reads_like_an_error() -> None:
    from tracehint._command import _key_line  # noqa: PLC0415 -- the helper under test

    output = "building\r\nerror: first\nWARNING: failed to cache\nnpm WARN deprecated x\n  done\n"
    assert _key_line(output) == "error: first"
    assert _key_line("line one\u2028Error: broken pipe\u2028ok") == "Error: broken pipe"
    assert _key_line("errors everywhere, but no word alone") is None
    assert _key_line("x\n" * 40 + "FAIL  tests/a.test.ts\n" + "y\n" * 35) is None  # beyond 30
