import pytest

from tracehint import (
    DEFAULT_TEMPLATES,
    ConfigError,
    ErrorKind,
    ErrorSite,
    Hint,
    HintChain,
    HintLayer,
    HintRequest,
    HintSource,
    HintStatus,
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


@pytest.mark.parametrize("kind", [k for k in ErrorKind if k.is_mistake])
def test_every_mistake_kind_has_a_template(kind: ErrorKind) -> None:
    text = DEFAULT_TEMPLATES.render(request(kind, message=""))
    assert text, kind
    assert len(text) <= 600


def test_templates_use_site_context() -> None:
    text = DEFAULT_TEMPLATES.render(request(ErrorKind.FILE_NOT_READ))
    assert text is not None
    assert "/a/b.py" in text
    assert "`Edit`" in text
    failed = DEFAULT_TEMPLATES.render(
        request(
            ErrorKind.COMMAND_FAILED, tool_name="Bash", tool_target="make test\nmore", exit_code=2
        ),
    )
    assert failed is not None
    assert "exit code 2" in failed
    assert "make test" in failed
    assert "more" not in failed


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
    rescued = await HintChain((Broken(), TemplateLayer())).resolve(request(ErrorKind.TIMEOUT))
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
    with pytest.raises(ConfigError, match="unknown hint layer 'judge'"):
        build_layers(["judge"], available)
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
