"""The judge layer: cache lookup, single-flight, then one bounded request to the LLM judge."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from tracehint._cache import CachedHint, HintCache
from tracehint._judge import FailureReason, JudgeFailure
from tracehint._kinds import HintSource, HintStatus
from tracehint._limits import Limits, clamp
from tracehint._prompt import build_prompt, cache_key
from tracehint._records import Hint
from tracehint._redact import Redactor

if TYPE_CHECKING:
    from tracehint._judge import JudgeClient, JudgeReply
    from tracehint._records import HintRequest

__all__ = ["JudgeLayer", "JudgeLayerStats"]


@dataclass(slots=True)
class JudgeLayerStats:
    """Counters of one judge layer."""

    sites: int = 0
    cache_hits: int = 0
    shared: int = 0
    """Sites that joined an identical request already in flight (single-flight)."""
    hinted: int = 0
    failed: int = 0
    shortened: int = 0
    """Sites asked again with a shorter prompt after a context-length error."""


@dataclass(slots=True)
class _Flight:
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Hint | None = None


@dataclass(slots=True)
class _Read:
    """Cache keys asked for in the same event-loop turn, read with one query."""

    keys: set[str] = field(default_factory=set)
    done: anyio.Event = field(default_factory=anyio.Event)
    found: dict[str, CachedHint] | None = None


class _CoalescedReader:
    """Reads the cache for many sites at once.

    The sites of a trace (and of traces hinted side by side) ask at almost the same moment;
    the first asker waits one scheduling turn for the others, then reads all their keys in
    one query instead of one worker-thread trip per site, which made a warm rerun much slower
    than the offline layers.
    """

    def __init__(self, cache: HintCache) -> None:
        self.cache = cache
        self._open: _Read | None = None

    async def get(self, key: str) -> CachedHint | None:
        read = self._open
        if read is not None:
            read.keys.add(key)
            await read.done.wait()
            if read.found is not None:
                return read.found.get(key)
            return await self.cache.get(key)  # the leader was cancelled: read alone
        read = self._open = _Read({key})
        try:
            await anyio.lowlevel.checkpoint()
            self._open = None
            read.found = await self.cache.get_many(list(read.keys))
        finally:
            if self._open is read:
                self._open = None
            read.done.set()
        return read.found.get(key)


class JudgeLayer:
    """Layer: a short corrective hint from an LLM judge.

    Asks the cache first; identical prompts in flight at the same time are sent once and every
    waiting site gets the answer; a failed request becomes a ``failed`` hint (not cached, so the
    next run retries it). Raises only ``JudgeError`` (bad credentials, or the client's circuit
    breaker: a judge that refuses every request or is gone).
    """

    def __init__(
        self,
        client: JudgeClient,
        *,
        cache: HintCache | None = None,
        redactor: Redactor | None = None,
        hint_chars: int = 600,
        limits: Limits | None = None,
    ) -> None:
        self.client = client
        self.limits = limits or Limits()
        """``judge_prompt_budgets`` bound the prompt (a quarter of them after a context error)."""
        self.cache = cache
        self.redactor = redactor or Redactor()
        self.hint_chars = hint_chars
        self.stats = JudgeLayerStats()
        self._flights: dict[str, _Flight] = {}
        self._reader = _CoalescedReader(cache) if cache is not None else None

    @property
    def name(self) -> str:
        """``judge``."""
        return "judge"

    async def propose(self, request: HintRequest) -> Hint | None:
        """Return the judge's hint for one site, or a ``failed`` hint saying why there is none."""
        self.stats.sites += 1
        prompt = build_prompt(request, self.redactor, **self.limits.judge_prompt_budgets())
        model = self.client.config.model
        key = cache_key(model, prompt)
        if self._reader is not None:
            cached = await self._reader.get(key)
            if cached is not None:
                self.stats.cache_hits += 1
                return Hint(
                    cached.text, HintSource.JUDGE, HintStatus.OK, model=cached.model, cached=True
                )
        while True:
            flight = self._flights.get(key)
            if flight is None:
                break
            self.stats.shared += 1
            await flight.done.wait()
            if flight.result is not None:
                return flight.result
            # The leader was cancelled before it had an answer: try again, maybe as leader.
        flight = _Flight()
        self._flights[key] = flight
        try:
            outcome = await self.client.complete(prompt.messages())
            if isinstance(outcome, JudgeFailure) and outcome.reason == FailureReason.CONTEXT_LENGTH:
                outcome = await self._ask_shorter(request)
            if isinstance(outcome, JudgeFailure):
                self.stats.failed += 1
                flight.result = Hint(
                    None,
                    None,
                    HintStatus.FAILED,
                    reason=(
                        f"judge {outcome.reason} after {outcome.attempts} attempt(s): "
                        f"{outcome.detail}"
                    ),
                )
                return flight.result
            text = clamp(outcome.text, self.hint_chars)
            self.stats.hinted += 1
            if self.cache is not None:
                await self.cache.put(
                    key,
                    CachedHint(
                        text=text,
                        model=outcome.model,
                        created=time.time(),
                        prompt_tokens=outcome.prompt_tokens,
                        completion_tokens=outcome.completion_tokens,
                    ),
                )
            flight.result = Hint(text, HintSource.JUDGE, HintStatus.OK, model=outcome.model)
            return flight.result
        finally:
            del self._flights[key]
            flight.done.set()

    async def _ask_shorter(self, request: HintRequest) -> JudgeReply | JudgeFailure:
        """Ask again with a quarter of the prompt budget (the prompt was over the context)."""
        self.stats.shortened += 1
        budgets = self.limits.judge_prompt_budgets(4)
        return await self.client.complete(
            build_prompt(request, self.redactor, **budgets).messages()
        )
