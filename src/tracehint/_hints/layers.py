"""The hint-layer protocol, the offline layers, and the chain that asks them in order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tracehint._exceptions import ConfigError
from tracehint._hints.templates import DEFAULT_TEMPLATES, Templates
from tracehint._kinds import HintSource, HintStatus
from tracehint._limits import clamp
from tracehint._records import Hint
from tracehint._redact import DEFAULT_REDACTOR, Redactor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tracehint._records import HintRequest

__all__ = ["HintChain", "HintLayer", "RawErrorLayer", "TemplateLayer", "build_layers"]


@runtime_checkable
class HintLayer(Protocol):
    """A source of hints.

    ``propose`` returns a ``Hint`` with status ``ok``, ``None`` to defer to the next layer,
    or a ``Hint`` with status ``failed`` when the layer should have answered and could not
    (the chain then asks the next layer and keeps the failure if none answers). It must not
    raise for a per-site failure.
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
        """The sync core, usable without an event loop."""
        text = self.templates.render(request)
        return self.redactor.redact(text) if text else None

    async def propose(self, request: HintRequest) -> Hint | None:
        """Render the template, or defer when the kind has none."""
        text = self.render(request)
        return Hint(text, HintSource.TEMPLATE, HintStatus.OK) if text else None


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


@dataclass(frozen=True, slots=True)
class HintChain:
    """Asks its layers in order; the first answer wins. The hint is clamped."""

    layers: tuple[HintLayer, ...]
    hint_chars: int = 600

    def drain(self) -> None:
        """Stop every layer that sends requests from sending new ones (a graceful stop).

        Requests already sent finish; a site that needs a new one raises ``StoppedError``
        from ``resolve``.
        """
        for layer in self.layers:
            if isinstance(layer, _Drains):
                layer.drain()

    async def resolve(self, request: HintRequest) -> Hint:
        """Return the hint for one site; never raises for a layer's per-site failure.

        A ``not_a_mistake`` verdict ends the chain (no later layer may hint a deliberate
        failure). When the judge was asked and did not answer, the hint that ends the chain
        carries the judge's reason in ``judge_reason``.
        """
        failure: Hint | None = None
        judge_failure: Hint | None = None
        judge_reason: str | None = None
        for layer in self.layers:
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
