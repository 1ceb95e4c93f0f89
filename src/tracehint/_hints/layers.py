"""The hint-layer protocol, the offline layers, and the chain that asks them in order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import anyio

from tracehint._exceptions import ConfigError
from tracehint._hints.templates import DEFAULT_TEMPLATES, Templates
from tracehint._kinds import HintSource, HintStatus
from tracehint._limits import clamp
from tracehint._records import Hint
from tracehint._redact import DEFAULT_REDACTOR, Redactor

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from tracehint._records import HintRequest

__all__ = ["HintChain", "HintLayer", "RawErrorLayer", "TemplateLayer", "build_layers"]


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
        """The sync core, usable without an event loop."""
        text = self.templates.render(request)
        return self.redactor.redact(text) if text else None

    async def propose(self, request: HintRequest) -> Hint | None:
        """Render the template, or defer when the kind has none."""
        text = self.render(request)
        return Hint(text, HintSource.TEMPLATE, HintStatus.OK) if text else None

    async def propose_all(self, requests: Sequence[HintRequest]) -> list[Hint | None]:
        """``propose`` for many sites (sync work: no task per site)."""
        hints: list[Hint | None] = []
        for request in requests:
            text = self.render(request)
            hints.append(Hint(text, HintSource.TEMPLATE, HintStatus.OK) if text else None)
        return hints


@dataclass(frozen=True, slots=True)
class RawErrorLayer:
    """Layer: the real error text itself, bounded (SDPO's environment feedback, rawest form)."""

    max_chars: int = 500

    @property
    def name(self) -> str:
        """``raw``."""
        return "raw"

    def render(self, request: HintRequest) -> str | None:
        """The sync core, usable without an event loop."""
        message = request.site.error_message.strip()
        if not message:
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
        hints: list[Hint | None] = []
        for request in requests:
            text = self.render(request)
            hints.append(Hint(text, HintSource.RAW, HintStatus.OK) if text else None)
        return hints


@dataclass(frozen=True, slots=True)
class HintChain:
    """Asks its layers in order; the first answer wins. The hint is clamped."""

    layers: tuple[HintLayer, ...]
    hint_chars: int = 600

    async def resolve(self, request: HintRequest) -> Hint:
        """Return the hint for one site; never raises for a layer's per-site failure.

        A ``not_a_mistake`` verdict ends the chain (no later layer may hint a deliberate
        failure). When the judge was asked and did not answer, the hint that ends the chain
        carries the judge's reason in ``judge_reason``.
        """
        outcome = _Outcome()
        for layer in self.layers:
            hint = await layer.propose(request)
            if outcome.take(layer.name, hint, self.hint_chars):
                break
        return outcome.result()

    async def resolve_all(self, requests: Sequence[HintRequest]) -> list[Hint]:
        """``resolve`` for the sites of one trace, in order.

        Each layer is asked for all the sites still open at once (``propose_all`` when it has
        one, else its ``propose`` for each site concurrently). Every site gets the hint
        ``resolve`` would give it.
        """
        outcomes = [_Outcome() for _ in requests]
        open_ = list(range(len(requests)))
        for layer in self.layers:
            if not open_:
                break
            hints = await _propose_all(layer, [requests[i] for i in open_])
            still: list[int] = []
            for index, hint in zip(open_, hints, strict=True):
                if not outcomes[index].take(layer.name, hint, self.hint_chars):
                    still.append(index)
            open_ = still
        return [outcome.result() for outcome in outcomes]


class _Outcome:
    """One site's way through the chain: the first answer, or the failures met on the way."""

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

    async def one(index: int) -> None:
        hints[index] = await layer.propose(requests[index])

    async with anyio.create_task_group() as group:
        for index in range(len(requests)):
            group.start_soon(one, index)
    return hints


def build_layers(names: Sequence[str], available: Mapping[str, HintLayer]) -> tuple[HintLayer, ...]:
    """Pick layers by name, in the order given (``--layers template,raw``)."""
    layers: list[HintLayer] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        layer = available.get(name)
        if layer is None:
            known = ", ".join(sorted(available))
            raise ConfigError(f"unknown hint layer {name!r}; choose from: {known}")
        if layer in layers:
            raise ConfigError(f"hint layer {name!r} is listed twice in --layers")
        layers.append(layer)
    if not layers:
        raise ConfigError("--layers is empty; give at least one of: template, raw")
    return tuple(layers)
