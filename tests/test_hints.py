from dataclasses import replace

import anyio
import pytest

from tracehint import (
    DEFAULT_TEMPLATES,
    ConfigError,
    ErrorKind,
    ErrorSite,
    Facts,
    Hint,
    HintChain,
    HintLayer,
    HintRequest,
    HintSource,
    HintStatus,
    LayerName,
    RawErrorLayer,
    TemplateLayer,
    build_layers,
)
from tracehint._limits import clamp, clamp_middle


def site(kind: ErrorKind, message: str = "boom", **kw: object) -> ErrorSite:
    fields: dict[str, object] = {
        "kind": kind,
        "error_message": message,
        "tool_use_id": "toolu_1",
        "tool_name": "Edit",
        "tool_input": '{"file_path":"/a/b.py"}',
        "tool_target": "/a/b.py",
        "source_content_excerpt": message[:200],
    }
    fields.update(kw)
    return ErrorSite(**fields)  # type: ignore[arg-type]


def request(
    kind: ErrorKind, message: str = "boom", tools: tuple[str, ...] = (), **kw: object
) -> HintRequest:
    return HintRequest(site(kind, message, **kw), "next", tools)


GROUNDED: dict[ErrorKind, dict[str, object]] = {
    ErrorKind.FILE_NOT_READ: {},
    ErrorKind.FILE_MODIFIED_SINCE_READ: {},
    ErrorKind.FILE_NOT_FOUND: {},
    ErrorKind.IS_A_DIRECTORY: {},
    ErrorKind.STRING_NOT_FOUND: {},
    ErrorKind.STRING_NOT_UNIQUE: {},
    ErrorKind.EDIT_REJECTED: {
        "error_message": "ERRORS:\n- E999 IndentationError: unexpected indent"
    },
    ErrorKind.OUTPUT_TOO_LARGE: {"tool_name": "Read"},
    ErrorKind.COMMAND_NOT_FOUND: {"facts": Facts(program="pytest")},
    ErrorKind.COMMAND_FAILED: {"command": "make", "facts": Facts(key_line="make: *** No rule")},
    ErrorKind.TEST_FAILED: {"facts": Facts(tests=("tests/t.py::test_a",))},
    ErrorKind.BUILD_FAILED: {"facts": Facts(key_line="TS2322 bad", location="a.ts:1:2")},
    ErrorKind.LINT_FAILED: {"facts": Facts(codes=("E501",), location="a.py:1:1")},
    ErrorKind.FORMAT_FAILED: {"facts": Facts(paths=("a.py",))},
    ErrorKind.GIT_FAILED: {"facts": Facts(problem="there is nothing to commit")},
    ErrorKind.SCRIPT_ERROR: {"facts": Facts(exception="KeyError: 'x'", frame="a.py:3 in f")},
    ErrorKind.TIMEOUT: {"command": "sleep 999"},
    ErrorKind.PERMISSION_DENIED: {"error_message": "This command requires approval"},
    ErrorKind.HOOK_BLOCKED: {"facts": Facts(hook="PreToolUse:Bash")},
    ErrorKind.INPUT_VALIDATION: {
        "error_message": "The required parameter `prompt` is missing",
        "facts": Facts(parameter="prompt"),
    },
    ErrorKind.JSON_DECODE: {},
    ErrorKind.UNKNOWN_TOOL: {"tool_name": "Frob"},
    ErrorKind.WEB_FETCH_FAILED: {
        "tool_input": '{"url":"https://x.test/a"}',
        "facts": Facts(status=404),
    },
}


@pytest.mark.parametrize("kind", [k for k in ErrorKind if k.is_mistake])
def test_every_mistake_kind_has_a_grounded_template_or_abstains(kind: ErrorKind) -> None:
    """With its grounds a template answers; without them it abstains (never a bare claim)."""
    if kind is ErrorKind.TOOL_ERROR or not kind.is_tool_error:  # the user's or reader's words
        assert DEFAULT_TEMPLATES.render(request(kind)) is None
        return
    fields: dict[str, object] = {"message": "boom", **GROUNDED[kind]}
    if "error_message" in fields:
        fields["message"] = fields.pop("error_message")
    grounded = DEFAULT_TEMPLATES.render(
        HintRequest(site(kind, **fields), "next", ("Read", "Bash"))  # type: ignore[arg-type]
    )
    assert grounded, kind
    assert len(grounded) <= 600
    bare = site(kind, "", tool_name=None, tool_input=None, tool_target=None)
    assert DEFAULT_TEMPLATES.render(HintRequest(bare, "next", ())) is None, kind


def test_templates_use_site_context() -> None:
    text = DEFAULT_TEMPLATES.render(request(ErrorKind.FILE_NOT_READ, tools=("Read",)))
    assert text is not None
    assert "/a/b.py" in text
    assert "`Edit`" in text
    assert "`Read`" in text
    failed = DEFAULT_TEMPLATES.render(
        request(
            ErrorKind.COMMAND_FAILED,
            tool_name="Bash",
            command="make test\nmore",
            exit_code=2,
            facts=Facts(key_line="make: *** No rule to make target"),
        ),
    )
    assert failed is not None
    assert "exit code 2" in failed
    assert "make test" in failed
    assert "No rule to make target" in failed


def test_tool_names_come_from_this_trace() -> None:
    """No Claude Code tool name is suggested to an agent that never had it."""
    text = DEFAULT_TEMPLATES.render(request(ErrorKind.FILE_NOT_READ, tools=("read_file",)))
    assert text is not None
    assert "`Read`" not in text
    assert "`read_file`" in text
    missing = DEFAULT_TEMPLATES.render(
        request(ErrorKind.FILE_NOT_FOUND, tool_name="view", tools=("view", "bash"))
    )
    assert missing is not None
    assert "Glob" not in missing
    assert "`bash`" in missing


def test_a_shell_command_is_never_called_a_path() -> None:
    """``ls -la types/`` is a command; the missing path is the one the error names."""
    text = DEFAULT_TEMPLATES.render(
        request(
            ErrorKind.FILE_NOT_FOUND,
            "ls: cannot access 'types/': No such file or directory",
            tool_name="Bash",
            tool_input='{"command":"ls -la types/"}',
            tool_target="ls -la types/",
            command="ls -la types/",
            facts=Facts(path="types/"),
        ),
    )
    assert text is not None
    assert "`types/`" in text
    assert "ls -la" not in text
    assert "working directory" in text
    no_path = DEFAULT_TEMPLATES.render(
        request(
            ErrorKind.FILE_NOT_FOUND,
            "boom",
            tool_name="Bash",
            tool_input='{"command":"cd build && make"}',
            command="cd build && make",
        ),
    )
    assert no_path is None


def test_repeats_say_what_repeats() -> None:
    text = DEFAULT_TEMPLATES.render(
        request(ErrorKind.SCRIPT_ERROR, facts=Facts(exception="KeyError: 'x'"), repeats=2)
    )
    assert text is not None
    assert "2 times" in text
    assert "KeyError" in text


def test_templates_never_copy_a_credential() -> None:
    text = TemplateLayer().render(
        request(
            ErrorKind.COMMAND_FAILED,
            tool_name="Bash",
            command="git push https://bob:hunter2secretpw@example.com/r.git",
            facts=Facts(key_line="fatal: auth failed for https://bob:hunter2secretpw@example.com"),
        ),
    )
    assert text is not None
    assert "hunter2secretpw" not in text


@pytest.mark.parametrize("kind", [k for k in ErrorKind if k.is_mistake and k.is_tool_error])
def test_default_templates_read_the_site_alone(kind: ErrorKind) -> None:
    # What lets the template layer redact only the sites before them (reads_context=False).
    assert not DEFAULT_TEMPLATES.reads_context
    fields: dict[str, object] = {"message": "boom", **GROUNDED.get(kind, {})}
    if "error_message" in fields:
        fields["message"] = fields.pop("error_message")
    base = HintRequest(site(kind, **fields), "next", ("Read", "Bash"))  # type: ignore[arg-type]
    other = replace(
        base,
        next_action="something else",
        first_instruction="Deploy it",
        latest_instruction="now",
        intent="I will try",
        mistake_text="done!",
    )
    assert DEFAULT_TEMPLATES.render(base) == DEFAULT_TEMPLATES.render(other)


def test_your_templates_get_the_context_redacted_too() -> None:
    # The template quotes the part after `=`: alone, `hunter2hunter2` is not recognisable, so
    # only redacting the context before the template keeps it out.
    custom = DEFAULT_TEMPLATES.with_overrides(
        {ErrorKind.TIMEOUT: lambda r: f"Use {r.intent.partition('=')[2]}"}
    )
    assert custom.reads_context
    layer = TemplateLayer(custom)
    asked = replace(request(ErrorKind.TIMEOUT), intent="password=hunter2hunter2 please")
    assert layer.render(asked) == "Use [REDACTED:password] please"
    hints = anyio.run(layer.propose_all, [asked, asked])
    assert [hint.text if hint else None for hint in hints] == ["Use [REDACTED:password] please"] * 2


def test_unknown_tool_lists_tools_actually_used() -> None:
    text = DEFAULT_TEMPLATES.render(
        request(ErrorKind.UNKNOWN_TOOL, tool_name="Frob", tools=("Read", "Frob", "Bash")),
    )
    assert text is not None
    assert "`Read`" in text
    assert "`Bash`" in text
    assert "`Frob`, " not in text


def test_tool_error_template_defers_to_raw_text() -> None:
    assert DEFAULT_TEMPLATES.render(request(ErrorKind.TOOL_ERROR, "weird failure")) is None


def test_overrides_make_new_templates() -> None:
    custom = DEFAULT_TEMPLATES.with_overrides({ErrorKind.TIMEOUT: lambda _r: "wait less"})
    assert custom.render(request(ErrorKind.TIMEOUT)) == "wait less"
    assert DEFAULT_TEMPLATES.render(request(ErrorKind.TIMEOUT)) != "wait less"


async def test_chain_first_answer_wins() -> None:
    chain = HintChain((TemplateLayer(), RawErrorLayer()))
    hint = await chain.resolve(request(ErrorKind.FILE_NOT_FOUND))
    assert hint.source is HintSource.TEMPLATE
    raw = await chain.resolve(request(ErrorKind.TOOL_ERROR, "weird failure"))
    assert raw.source is HintSource.RAW
    assert "weird failure" in (raw.text or "")


async def test_chain_order_is_the_users() -> None:
    chain = HintChain((RawErrorLayer(), TemplateLayer()))
    hint = await chain.resolve(request(ErrorKind.FILE_NOT_FOUND, "no such file"))
    assert hint.source is HintSource.RAW


async def test_chain_reports_no_hint() -> None:
    chain = HintChain((RawErrorLayer(),))
    hint = await chain.resolve(request(ErrorKind.TOOL_ERROR, "   "))
    assert hint.status is HintStatus.NO_HINT
    assert hint.text is None
    assert hint.source is None


async def test_chain_clamps_hints() -> None:
    class Loud:
        name = "loud"

        async def propose(self, _request: HintRequest) -> Hint:
            return Hint("x" * 5000, HintSource.JUDGE, HintStatus.OK)

    hint = await HintChain((Loud(),), hint_chars=600).resolve(request(ErrorKind.TOOL_ERROR))
    assert hint.text is not None
    assert len(hint.text) == 600


async def test_chain_keeps_failure_when_nobody_answers() -> None:
    class Broken:
        name = "broken"

        async def propose(self, _request: HintRequest) -> Hint:
            return Hint(None, None, HintStatus.FAILED, reason="judge down")

    failed = await HintChain((Broken(),)).resolve(request(ErrorKind.TOOL_ERROR, ""))
    assert failed.status is HintStatus.FAILED
    assert failed.reason == "judge down"
    rescued = await HintChain((Broken(), TemplateLayer())).resolve(
        request(ErrorKind.TIMEOUT, command="sleep 999")
    )
    assert rescued.source is HintSource.TEMPLATE


def test_raw_layer_bounds_the_error() -> None:
    text = RawErrorLayer(max_chars=50).render(request(ErrorKind.TOOL_ERROR, "z" * 1000))
    assert text is not None
    assert text.count("z") <= 50


def test_build_layers_rejects_unknown_and_duplicates() -> None:
    available: dict[str, HintLayer] = {"template": TemplateLayer(), "raw": RawErrorLayer()}
    assert [layer.name for layer in build_layers(["raw", "template"], available)] == [
        "raw",
        "template",
    ]
    with pytest.raises(ConfigError, match="hint layer 'judge' is not available here"):
        build_layers(["judge"], available)
    with pytest.raises(ConfigError, match="unknown hint layer 'oracle'"):
        build_layers(["oracle"], available)
    assert LayerName.parse([" judge", "raw "]) == (LayerName.JUDGE, LayerName.RAW)
    with pytest.raises(ConfigError, match="twice"):
        build_layers(["raw", "raw"], available)
    with pytest.raises(ConfigError, match="empty"):
        build_layers([""], available)


def test_clamps() -> None:
    assert clamp("abc", 5) == "abc"
    assert clamp("abcdef", 4) == "abc…"
    long = "A" * 1000 + "B" * 1000
    cut = clamp_middle(long, 300)
    assert len(cut) <= 300
    assert cut.startswith("A")
    assert cut.endswith("B")
    assert "elided" in cut


class Scripted:
    """A layer that answers from a script keyed by the site's error message."""

    def __init__(self, name: str, script: dict[str, Hint | None]) -> None:
        self.name = name
        self.script = script
        self.asked: list[str] = []
        self.most_at_once = 0
        self._now = 0

    async def propose(self, request: HintRequest) -> Hint | None:
        self.asked.append(request.site.error_message)
        self._now += 1
        self.most_at_once = max(self.most_at_once, self._now)
        await anyio.lowlevel.checkpoint()
        self._now -= 1
        return self.script.get(request.site.error_message)


async def test_resolving_a_trace_at_once_gives_every_site_its_own_hint() -> None:
    failed = Hint(None, None, HintStatus.FAILED, reason="judge timeout")
    judge_hint = Hint("  Ask the judge.  ", HintSource.JUDGE, HintStatus.OK, model="m")
    deliberate = Hint(None, HintSource.JUDGE, HintStatus.NOT_A_MISTAKE, reason="on purpose")
    script: dict[str, Hint | None] = {"a": judge_hint, "b": failed, "c": deliberate, "   ": failed}
    messages = ["a", "b", "c", "d", "   ", "e"]
    requests = [request(ErrorKind.TOOL_ERROR, m) for m in messages]
    requests.append(request(ErrorKind.TIMEOUT, "t", command="sleep 999"))

    def chain() -> tuple[HintChain, Scripted]:
        judge = Scripted("judge", script)
        return HintChain((judge, TemplateLayer(), RawErrorLayer()), hint_chars=10), judge

    one_by_one, _ = chain()
    expected = [await one_by_one.resolve(r) for r in requests]
    together, judge = chain()
    assert await together.resolve_all(requests) == expected
    assert judge.most_at_once > 1  # a layer without propose_all is asked concurrently
    assert expected[0].text == "Ask the j…"
    assert expected[1].source is HintSource.RAW
    assert expected[1].judge_reason == "judge timeout"
    assert expected[2].status is HintStatus.NOT_A_MISTAKE
    assert expected[4] == failed  # no raw text: the judge's failure stays
    assert expected[5].status is HintStatus.OK
    assert await together.resolve_all([]) == []


async def test_offline_layers_answer_many_sites_at_once() -> None:
    requests = [request(ErrorKind.FILE_NOT_FOUND), request(ErrorKind.TOOL_ERROR, "odd")]
    for layer in (TemplateLayer(), RawErrorLayer()):
        assert await layer.propose_all(requests) == [await layer.propose(r) for r in requests]
