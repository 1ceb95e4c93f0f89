"""The hint-layer protocol, the offline layers, and the chain that asks them in order.

Which layers a site is asked depends on what found it (``ErrorSite.detected_by``): a failed
tool result goes through the layers in ``--layers`` order; a user correction is asked of the
judge (when it is one of the layers: it rephrases the user's words as a hint, or finds the
reply was no correction), then answered with the user's own words (``UserLayer``); a reader
finding carries the hint the reader wrote with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import anyio

from tracehint._corrections import user_hint
from tracehint._exceptions import ConfigError, StoppedError
from tracehint._hints.templates import DEFAULT_TEMPLATES, Templates
from tracehint._kinds import DetectedBy, HintSource, HintStatus, LayerName
from tracehint._limits import clamp
from tracehint._records import Hint
from tracehint._redact import DEFAULT_REDACTOR, Redactor
from tracehint._redact_records import redact_request_sites, redact_requests

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from tracehint._hints.reader import ReaderPass
    from tracehint._records import HintRequest

__all__ = [
    "HintChain",
    "HintLayer",
    "RawErrorLayer",
    "TemplateLayer",
    "UserLayer",
    "build_layers",
]


@runtime_checkable
class HintLayer(Protocol):
    """A source of hints.

    ``propose`` returns a ``Hint`` with status ``ok``, ``None`` to defer to the next layer,
    or a ``Hint`` with status ``failed`` when the layer should have answered and could not
    (the chain then asks the next layer and keeps the failure if none answers). It must not
    raise for a per-site failure.

    A layer may also have ``async def propose_all(requests) -> list[Hint | None]``: the same
    answers for the sites of one trace at once, in order (the judge layer reads the cache for
    all of them in one query). Without it, the chain asks ``propose`` for each site
    concurrently.
    """

    @property
    def name(self) -> str:
        """The layer's name in ``--layers``."""
        ...

    async def propose(self, request: HintRequest) -> Hint | None:
        """Propose a hint for one site."""
        ...


@runtime_checkable
class _Drains(Protocol):
    """A layer that sends requests, and can stop sending new ones (the judge)."""

    def drain(self) -> None:
        """Send no new request from now on; requests already sent finish."""
        ...


@dataclass(frozen=True, slots=True)
class TemplateLayer:
    """Layer: the corrective template for the site's kind (free, deterministic)."""

    templates: Templates = DEFAULT_TEMPLATES
    redactor: Redactor = DEFAULT_REDACTOR
    """Facts quoted from the site (a command, an error line) never carry a credential."""

    @property
    def name(self) -> str:
        """``template``."""
        return "template"

    def render(self, request: HintRequest) -> str | None:
        """The sync core, usable without an event loop.

        The site is redacted before the template quotes (and clamps) it, and the hint after.
        """
        return self._render(self._redacted([request])[0])

    def _redacted(self, requests: Sequence[HintRequest]) -> list[HintRequest]:
        """The requests as the templates see them: what they may read redacted, once a text.

        The default templates read the site alone (``Templates.reads_context``); yours may read
        the context texts too.
        """
        if self.templates.reads_context:
            return redact_requests(requests, self.redactor)
        return redact_request_sites(requests, self.redactor)

    def _render(self, redacted: HintRequest) -> str | None:
        text = self.templates.render(redacted)
        return self.redactor.redact(text) if text else None

    async def propose(self, request: HintRequest) -> Hint | None:
        """Render the template, or defer when the kind has none."""
        return _template_hint(self.render(request))

    async def propose_all(self, requests: Sequence[HintRequest]) -> list[Hint | None]:
        """``propose`` for the sites of one trace.

        Sync work, so no task per site; a text the sites share is redacted once.
        """
        return [_template_hint(self._render(request)) for request in self._redacted(requests)]


def _template_hint(text: str | None) -> Hint | None:
    return Hint(text, HintSource.TEMPLATE, HintStatus.OK) if text else None


@dataclass(frozen=True, slots=True)
class RawErrorLayer:
    """Layer: the real error text itself, bounded (SDPO's environment feedback, rawest form)."""

    max_chars: int = 500
    redactor: Redactor = DEFAULT_REDACTOR
    """The error text is redacted before it is clamped and quoted."""

    @property
    def name(self) -> str:
        """``raw``."""
        return "raw"

    def render(self, request: HintRequest) -> str | None:
        """The sync core, usable without an event loop (only a failed tool result's text)."""
        message = self.redactor.redact(request.site.error_message).strip()
        if not message or request.site.detected_by is not DetectedBy.TOOL_ERROR:
            return None
        return (
            "Reminder: the previous action produced this error:\n"
            f"{clamp(message, self.max_chars)}\nReconsider and retry."
        )

    async def propose(self, request: HintRequest) -> Hint | None:
        """Wrap the error text, or defer when there is none."""
        text = self.render(request)
        return Hint(text, HintSource.RAW, HintStatus.OK) if text else None

    async def propose_all(self, requests: Sequence[HintRequest]) -> list[Hint | None]:
        """``propose`` for many sites (sync work: no task per site)."""
        return [await self.propose(request) for request in requests]


@dataclass(frozen=True, slots=True)
class UserLayer:
    """Layer: the user's own words, for a user correction (``hint_source: "user"``)."""

    redactor: Redactor = DEFAULT_REDACTOR
    """The user's words may hold a credential they pasted."""

    @property
    def name(self) -> str:
        """``user``."""
        return "user"

    def render(self, request: HintRequest) -> str | None:
        """The sync core, usable without an event loop."""
        site = request.site
        if site.detected_by is not DetectedBy.USER or not site.error_message.strip():
            return None
        return self.redactor.redact(user_hint(site.error_message, evidence=site.facts.key_line))

    async def propose(self, request: HintRequest) -> Hint | None:
        """The user's words as a hint, or defer for any other site."""
        text = self.render(request)
        return Hint(text, HintSource.USER, HintStatus.OK) if text else None

    async def propose_all(self, requests: Sequence[HintRequest]) -> list[Hint | None]:
        """``propose`` for many sites (sync work: no task per site)."""
        return [await self.propose(request) for request in requests]


@dataclass(frozen=True, slots=True)
class HintChain:
    """Asks its layers in order; the first answer wins. The hint is clamped.

    ``user`` answers user corrections after the judge (see the module docstring); ``reader``,
    when set, is the reader pass run on each trace before its sites are hinted
    (``--detect reader``, see ``tracehint._pipeline.hint_trace``).
    """

    layers: tuple[HintLayer, ...]
    hint_chars: int = 600
    user: UserLayer = field(default_factory=UserLayer)
    reader: ReaderPass | None = None

    def _layers_for(self, request: HintRequest) -> tuple[HintLayer, ...]:
        if request.site.detected_by is DetectedBy.USER:
            return (*(layer for layer in self.layers if layer.name == "judge"), self.user)
        return self.layers

    def drain(self) -> None:
        """Stop every layer that sends requests from sending new ones (a graceful stop).

        Requests already sent finish; a site that needs a new one raises ``StoppedError``
        from ``resolve``.
        """
        for layer in self.layers:
            if isinstance(layer, _Drains):
                layer.drain()

    def _direct(self, request: HintRequest) -> Hint | None:
        """The hint a reader finding carries, for a site the reader pass found."""
        site = request.site
        finding = site.finding
        if site.detected_by is DetectedBy.READER and finding is not None:
            return Hint(
                clamp(finding.hint.strip(), self.hint_chars),
                HintSource.READER,
                HintStatus.OK,
                model=finding.model,
            )
        return None

    async def resolve_all(self, requests: Sequence[HintRequest]) -> list[Hint]:
        """``resolve`` for the sites of one trace, in order.

        Each layer is asked for all the sites that reach it at once (``propose_all`` when it
        has one, else its ``propose`` for each site concurrently). Every site gets the hint
        ``resolve`` would give it. After ``drain()``, ``StoppedError`` is raised once every
        site asked of a layer is done (requests on the wire finish and are cached).
        """
        outcomes = [_Outcome() for _ in requests]
        plans: list[tuple[HintLayer, ...]] = []
        open_: list[int] = []
        for index, request in enumerate(requests):
            plans.append(self._layers_for(request))
            direct = self._direct(request)
            if direct is not None:
                outcomes[index].answer = direct
            else:
                open_.append(index)
        step = 0
        while open_:
            asked: dict[int, tuple[HintLayer, list[int]]] = {}
            for index in open_:
                if step < len(plans[index]):
                    layer = plans[index][step]
                    asked.setdefault(id(layer), (layer, []))[1].append(index)
            still: list[int] = []
            for layer, indices in asked.values():
                hints = await _propose_all(layer, [requests[i] for i in indices])
                for index, hint in zip(indices, hints, strict=True):
                    if not outcomes[index].take(layer.name, hint, self.hint_chars):
                        still.append(index)
            open_ = sorted(still)
            step += 1
        return [outcome.result() for outcome in outcomes]

    async def resolve(self, request: HintRequest) -> Hint:
        """Return the hint for one site; never raises for a layer's per-site failure.

        A ``not_a_mistake`` verdict ends the chain (no later layer may hint a deliberate
        failure). When the judge was asked and did not answer, the hint that ends the chain
        carries the judge's reason in ``judge_reason``.
        """
        direct = self._direct(request)
        if direct is not None:
            return direct
        failure: Hint | None = None
        judge_failure: Hint | None = None
        judge_reason: str | None = None
        for layer in self._layers_for(request):
            hint = await layer.propose(request)
            if hint is None:
                continue
            if hint.status is HintStatus.NOT_A_MISTAKE:
                return hint
            if hint.status is HintStatus.OK and hint.text:
                return Hint(
                    clamp(hint.text.strip(), self.hint_chars),
                    hint.source,
                    HintStatus.OK,
                    model=hint.model,
                    cached=hint.cached,
                    judge_reason=judge_reason,
                )
            if layer.name == "judge" and judge_reason is None:
                judge_reason = hint.reason or hint.status.value
                judge_failure = hint
            failure = failure or hint
        if failure is not None:
            if failure is judge_failure:
                return failure  # the judge's own failure already says why, in ``reason``
            return replace(failure, judge_reason=judge_reason)
        return Hint(
            None,
            None,
            HintStatus.NO_HINT,
            reason="no layer had a hint for this site",
            judge_reason=judge_reason,
        )


class _Outcome:
    """One site's way through the chain (as ``HintChain.resolve`` takes it)."""

    __slots__ = ("answer", "failure", "judge_failure", "judge_reason")

    def __init__(self) -> None:
        self.answer: Hint | None = None
        self.failure: Hint | None = None
        self.judge_failure: Hint | None = None
        self.judge_reason: str | None = None

    def take(self, layer: str, hint: Hint | None, hint_chars: int) -> bool:
        """Record what ``layer`` proposed; ``True`` when that ends the chain."""
        if hint is None:
            return False
        if hint.status is HintStatus.NOT_A_MISTAKE:
            self.answer = hint
            return True
        if hint.status is HintStatus.OK and hint.text:
            self.answer = Hint(
                clamp(hint.text.strip(), hint_chars),
                hint.source,
                HintStatus.OK,
                model=hint.model,
                cached=hint.cached,
                judge_reason=self.judge_reason,
            )
            return True
        if layer == "judge" and self.judge_reason is None:
            self.judge_reason = hint.reason or hint.status.value
            self.judge_failure = hint
        self.failure = self.failure or hint
        return False

    def result(self) -> Hint:
        if self.answer is not None:
            return self.answer
        failure = self.failure
        if failure is not None:
            if failure is self.judge_failure:
                return failure  # the judge's own failure already says why, in ``reason``
            return replace(failure, judge_reason=self.judge_reason)
        return Hint(
            None,
            None,
            HintStatus.NO_HINT,
            reason="no layer had a hint for this site",
            judge_reason=self.judge_reason,
        )


async def _propose_all(layer: HintLayer, requests: list[HintRequest]) -> list[Hint | None]:
    """``layer``'s proposals for ``requests``, in order."""
    batch: Callable[[Sequence[HintRequest]], Awaitable[list[Hint | None]]] | None = getattr(
        layer, "propose_all", None
    )
    if batch is not None:
        return await batch(requests)
    if len(requests) == 1:
        return [await layer.propose(requests[0])]
    hints: list[Hint | None] = [None] * len(requests)
    stopped: list[StoppedError] = []

    async def one(index: int) -> None:
        try:
            hints[index] = await layer.propose(requests[index])
        except StoppedError as exc:
            stopped.append(exc)  # not raised here: that would cancel the sites in flight

    async with anyio.create_task_group() as group:
        for index in range(len(requests)):
            group.start_soon(one, index)
    if stopped:
        raise stopped[0]
    return hints


def build_layers(names: Sequence[str], available: Mapping[str, HintLayer]) -> tuple[HintLayer, ...]:
    """Pick layers by name, in the order given (``--layers template,raw``).

    Names are checked by ``LayerName.parse``; a layer not available here is a ``ConfigError``.
    """
    layers: list[HintLayer] = []
    for name in LayerName.parse(names):
        layer = available.get(name)
        if layer is None:
            known = ", ".join(sorted(available))
            raise ConfigError(f"hint layer {name.value!r} is not available here; use: {known}")
        layers.append(layer)
    return tuple(layers)
