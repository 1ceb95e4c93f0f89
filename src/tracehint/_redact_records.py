"""Redacting records: a site, a hint request, a chat message, a whole trace. Pure and sync.

``redact`` works on one text; the records hold many, some of them JSON:

* ``redact_request`` (and ``redact_site``) give a hint layer a site whose every text is
  redacted *before* the layer quotes and clamps it: a template cuts a command to 70
  characters, and a secret cut in half (``https://user:passw…``) is no longer recognisable
  after the cut;
* ``redact_trace`` is ``--redact-output``: the turns' text, each site's ``error_meta``, the
  hint, and the native ``messages`` (``content``, ``reasoning_content``, content parts, and
  ``tool_calls[].function.arguments``, which stays valid JSON).
"""

from __future__ import annotations

import operator
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from tracehint._records import NO_FACTS, ErrorSite, Facts, HintRequest, Trace, Turn
from tracehint._redact import REDACTED

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tracehint._records import ChatMessage, Hint
    from tracehint._redact import Redactor

__all__ = [
    "TextMemo",
    "TextRedactor",
    "redact_json_text",
    "redact_message",
    "redact_request",
    "redact_request_sites",
    "redact_requests",
    "redact_site",
    "redact_trace",
]

_KEPT_KEYS = frozenset({"role", "type", "id", "tool_call_id", "name"})
"""Message fields that are structure, not text: never redacted."""


class TextRedactor(Protocol):
    """What the helpers below need of a redactor: a ``Redactor``, or a ``TextMemo`` of one."""

    def redact(self, text: str, /) -> str: ...


class TextMemo:
    """A redactor that redacts each distinct text of one record once.

    A trace holds the same text several times (a failed result is a turn, a ``tool`` message,
    the site's ``error_message`` and the start of its excerpt); redacting it once and looking
    it up after is a hash of a string whose hash Python keeps. A text with no secret is
    given back itself (``is``), as ``Redactor.redact`` does.
    """

    __slots__ = ("_done", "_redactor")

    def __init__(self, redactor: TextRedactor) -> None:
        self._redactor = redactor
        self._done: dict[str, str | None] = {}  # None: the text has no secret

    def redact(self, text: str, /) -> str:
        found = self._done.get(text, text)
        if found is text:  # not seen yet (a redacted text is never its own key)
            found = self._redactor.redact(text)
            self._done[text] = None if found is text else found
        return text if found is None else found


_FACT_FIELDS = tuple(spec.name for spec in fields(Facts))


def _facts(facts: Facts, redactor: TextRedactor) -> Facts:
    if facts is NO_FACTS:
        return facts
    changes: dict[str, object] = {}
    for name in _FACT_FIELDS:
        value = getattr(facts, name)
        if isinstance(value, str):
            found: object = redactor.redact(value)
        elif isinstance(value, tuple):
            found = tuple(redactor.redact(v) if isinstance(v, str) else v for v in value)
        else:
            continue
        if found != value:
            changes[name] = found
    return replace(facts, **changes) if changes else facts  # type: ignore[arg-type]


def _excerpt(excerpt: str, error_message: str, redactor: TextRedactor) -> str:
    """The excerpt redacted as the start of the text it was cut from, when that is known.

    The excerpt is the first characters of the failed result, cut without a mark: a secret
    at the cut would be too short to recognise. Redacting the whole start and cutting again
    keeps it whole or gone.
    """
    head = error_message[:32]
    start = excerpt.find(head) if head else -1
    if start < 0 or not error_message.startswith(excerpt[start:]):
        return redactor.redact(excerpt)
    cut = redactor.redact(excerpt[:start] + error_message)[: len(excerpt)]
    return excerpt if cut == excerpt else cut


def redact_site(site: ErrorSite, redactor: Redactor) -> ErrorSite:
    """``site`` with every text in it redacted (what ``error_meta`` is written from)."""
    return _site(site, TextMemo(redactor))


def _site(site: ErrorSite, redactor: TextRedactor) -> ErrorSite:
    text = redactor.redact
    finding = site.finding
    if finding is not None:
        quote, hint = text(finding.quote), text(finding.hint)
        if quote is not finding.quote or hint is not finding.hint:
            finding = replace(finding, quote=quote, hint=hint)
    earlier = tuple(text(e) for e in site.earlier_errors)
    changed = {
        "error_message": text(site.error_message),
        "tool_input": redact_json_text(site.tool_input, redactor) if site.tool_input else None,
        "tool_target": text(site.tool_target) if site.tool_target else site.tool_target,
        "source_content_excerpt": _excerpt(
            site.source_content_excerpt, site.error_message, redactor
        ),
        "earlier_errors": site.earlier_errors
        if all(map(operator.is_, earlier, site.earlier_errors))
        else earlier,
        "facts": _facts(site.facts, redactor),
        "command": text(site.command) if site.command else site.command,
        "finding": finding,
    }
    if all(value is getattr(site, name) for name, value in changed.items()):
        return site  # nothing to redact (most sites): no copy
    return replace(site, **changed)  # type: ignore[arg-type]


def redact_request(request: HintRequest, redactor: Redactor) -> HintRequest:
    """``request`` with its site and every context text redacted."""
    return _request(request, TextMemo(redactor))


def redact_requests(requests: Sequence[HintRequest], redactor: Redactor) -> list[HintRequest]:
    """``redact_request`` for each of the requests of one trace.

    A text they share (the user's task, the agent's last words, an earlier error) is
    redacted once for all of them.
    """
    memo = TextMemo(redactor)
    return [_request(request, memo) for request in requests]


def redact_request_sites(requests: Sequence[HintRequest], redactor: Redactor) -> list[HintRequest]:
    """The requests of one trace with only their sites redacted (their context texts as read).

    For a reader of the site alone (the default templates): the user's task, the agent's
    intent and next message, long and never quoted, are not redacted for nothing.
    """
    memo = TextMemo(redactor)
    out: list[HintRequest] = []
    for request in requests:
        site = _site(request.site, memo)
        out.append(request if site is request.site else replace(request, site=site))
    return out


def _request(request: HintRequest, memo: TextRedactor) -> HintRequest:
    text = memo.redact
    changed = {
        "site": _site(request.site, memo),
        "next_action": text(request.next_action),
        "first_instruction": text(request.first_instruction),
        "latest_instruction": text(request.latest_instruction),
        "intent": text(request.intent),
        "mistake_text": text(request.mistake_text),
    }
    if all(value is getattr(request, name) for name, value in changed.items()):
        return request  # nothing to redact: no copy
    return replace(request, **changed)  # type: ignore[arg-type]


def _json_value(value: Any, redactor: TextRedactor) -> Any:  # noqa: ANN401 -- JSON data
    """Strings in JSON data redacted; an object's value also as ``"key": "value"``."""
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, list):
        return [_json_value(item, redactor) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            out[key] = _json_value(item, redactor)
            continue
        pair = orjson.dumps({key: item}).decode()
        redacted = redactor.redact(pair)
        if redacted == pair:
            out[key] = item
            continue
        try:
            out[key] = orjson.loads(redacted)[key]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            alone = redactor.redact(item)
            out[key] = alone if alone != item else REDACTED  # the key made it a secret
    return out


def redact_json_text(text: str, redactor: TextRedactor) -> str:
    """``text`` redacted; when it was valid JSON, the result is valid JSON too.

    The text is redacted as it is (so ``"password": "…"`` is seen with its key). In the rare
    case that breaks the JSON (a match over a quote or an escape), its values are redacted
    one by one and it is written again.
    """
    redacted = redactor.redact(text)
    if redacted is text:
        return text
    try:
        orjson.loads(redacted)
    except orjson.JSONDecodeError:
        pass
    else:
        return redacted
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return redacted  # it was not JSON: the text is all there is to redact
    return orjson.dumps(_json_value(data, redactor)).decode()


def _message_value(value: Any, redactor: TextRedactor) -> Any:  # noqa: ANN401 -- JSON data
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, list):
        return [_message_value(item, redactor) for item in value]
    if isinstance(value, dict):
        return {
            key: item if key in _KEPT_KEYS else _message_value(item, redactor)
            for key, item in value.items()
        }
    return value


def _tool_call(call: Any, redactor: TextRedactor) -> Any:  # noqa: ANN401 -- JSON data
    if not isinstance(call, dict):
        return _message_value(call, redactor)
    out = dict(call)
    function = call.get("function")
    if isinstance(function, dict):
        function = dict(function)
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            function["arguments"] = redact_json_text(arguments, redactor)
        elif arguments is not None:
            function["arguments"] = _json_value(arguments, redactor)
        out["function"] = function
    return out


def redact_message(message: ChatMessage, redactor: TextRedactor) -> ChatMessage:
    """An OpenAI chat message with its text redacted.

    ``content`` (a string or parts), ``reasoning_content``, any other text field, and each
    tool call's ``arguments`` (kept valid JSON); ``role``, ids, ``type`` and ``name`` are kept.
    """
    out: ChatMessage = {}
    for key, value in message.items():
        if key in _KEPT_KEYS:
            out[key] = value
        elif key == "tool_calls" and isinstance(value, list):
            out[key] = [_tool_call(call, redactor) for call in value]
        else:
            out[key] = _message_value(value, redactor)
    return out


def _hint(hint: Hint | None, redactor: TextRedactor) -> Hint | None:
    if hint is None or not hint.text:
        return hint
    text = redactor.redact(hint.text)
    return replace(hint, text=text) if text != hint.text else hint


def _turn(turn: Turn, redactor: TextRedactor) -> Turn:
    content = redactor.redact(turn.content)
    site = _site(turn.site, redactor) if turn.site is not None else None
    hint = _hint(turn.hint, redactor)
    if content is turn.content and site is turn.site and hint is turn.hint:
        return turn
    return Turn(turn.role, content, turn.kind, site, hint)


def redact_trace(trace: Trace, redactor: Redactor) -> Trace:
    """``trace`` as ``--redact-output`` writes it.

    Turns, ``error_meta``, hints and ``messages`` redacted; ids, indexes, kinds and the source
    path kept.
    """
    memo = TextMemo(redactor)
    source = trace.source
    if source.description:
        source = replace(source, description=memo.redact(source.description))
    return replace(
        trace,
        turns=tuple(_turn(turn, memo) for turn in trace.turns),
        messages=tuple(redact_message(message, memo) for message in trace.messages),
        source=source,
    )
