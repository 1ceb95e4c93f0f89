"""The judge layer: cache lookup, single-flight, then the judge's answers, each checked."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from tracehint._answer import Answer, Rejected, Rejection, Verdict, check_answer, pick_answer
from tracehint._cache import CachedHint, HintCache
from tracehint._exceptions import ConfigError, StoppedError
from tracehint._judge import FailureReason, JudgeFailure, JudgeReply
from tracehint._kinds import DetectedBy, HintSource, HintStatus
from tracehint._limits import Limits
from tracehint._plaintext import plain_text
from tracehint._prompt import (
    RESPONSE_FORMAT,
    PromptOptions,
    build_correction_prompt,
    build_prompt,
    cache_key,
    reask_messages,
)
from tracehint._records import Hint
from tracehint._redact import DEFAULT_REDACTOR, Redactor
from tracehint._redact_records import TextMemo, TextRedactor

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tracehint._judge import JudgeClient
    from tracehint._prompt import JudgePrompt
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
    not_a_mistake: int = 0
    """Sites the judge found deliberate failures, not mistakes."""
    asked_again: int = 0
    """Sites asked a second time after every answer of the first round was rejected."""
    rejected: Counter[str] = field(default_factory=Counter)
    """Answers not kept as hints, by reason (``cut_off``, ``too_long``, ``generic``, …)."""
    shortened: int = 0
    """Sites asked again with a shorter prompt after a context-length error."""


_SHORTER = 4
"""After a context-length error the prompt budget is divided by this."""


@dataclass(slots=True)
class _Flight:
    """One request for a cache key; sites asking for the same key meanwhile wait for it."""

    result: Hint | None = None
    ended: bool = False
    _done: anyio.Event | None = None  # made by the first site that waits (few ever do)

    async def wait(self) -> None:
        if not self.ended:
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()

    def end(self) -> None:
        self.ended = True
        if self._done is not None:
            self._done.set()


@dataclass(slots=True)
class _Read:
    """Cache keys read together with one query."""

    keys: set[str] = field(default_factory=set)
    done: anyio.Event = field(default_factory=anyio.Event)
    found: dict[str, CachedHint] | None = None


class _BatchedReader:
    """Reads the cache for many sites, and many traces, at once.

    The sites of a trace ask together; traces hinted side by side ask at almost the same
    moment. The first asker waits one scheduling turn for the others, then reads all their
    keys with one query; keys asked for while a query runs wait for it and go into the next
    one. Every query is a trip to the cache's worker thread, which costs the event loop far
    more than the read itself: one per site made a warm rerun much slower than the offline
    layers, one per trace still did.
    """

    def __init__(self, cache: HintCache) -> None:
        self.cache = cache
        self._next: _Read | None = None
        self._reading = False

    async def get_many(self, keys: Sequence[str]) -> dict[str, CachedHint]:
        """The hints of ``keys`` the cache holds, by key."""
        read = self._next
        if read is None:
            read = self._next = _Read()
        read.keys.update(keys)
        if not self._reading:
            self._reading = True
            try:
                await anyio.lowlevel.checkpoint()  # the others asking this turn join in
                while self._next is not None:
                    batch, self._next = self._next, None
                    try:
                        batch.found = await self.cache.get_many(list(batch.keys))
                    finally:
                        batch.done.set()
            finally:
                self._reading = False
                if self._next is not None:  # cancelled with keys still waiting: they read alone
                    stranded, self._next = self._next, None
                    stranded.done.set()
        await read.done.wait()
        if read.found is None:  # the read failed or was cancelled: read alone
            return await self.cache.get_many(keys)
        return {key: read.found[key] for key in keys if key in read.found}


class JudgeLayer:
    """Layer: a short corrective hint from an LLM judge, checked before it is kept.

    A user correction (``detected_by: user``) gets the correction prompt: the judge checks that
    the reply is a correction (``not_a_mistake`` when not) and rephrases it as a hint.

    Asks the cache first; identical prompts in flight at the same time are sent once and every
    waiting site gets the answer. Each request asks for JSON (``RESPONSE_FORMAT``); every
    answer goes through ``check_answer`` (cut off, reasoning, empty, too long, echoed, generic
    answers are rejected). ``samples`` answers are asked for at once; the valid ones are kept
    and ``pick_answer`` chooses among them. When none is valid the judge is asked once more,
    told what was wrong; when that fails too the result is a ``failed`` hint with the reasons
    (not cached, so the next run asks again), and the chain asks its next layer. A verdict
    ``not_a_mistake`` (from most of the valid answers) is a ``not_a_mistake`` hint with no
    text. Raises only ``JudgeError`` (bad credentials, or the client's circuit breaker: a
    judge that refuses every request or is gone) and, after ``drain()``, ``StoppedError`` for
    a site that needs a new request.
    """

    def __init__(
        self,
        client: JudgeClient,
        *,
        cache: HintCache | None = None,
        redactor: Redactor | None = None,
        hint_chars: int = 600,
        samples: int = 1,
        show_next_action: bool = False,
        limits: Limits | None = None,
    ) -> None:
        if samples < 1:
            raise ConfigError(f"judge samples must be at least 1, got {samples}")
        self.client = client
        self.limits = limits or Limits()
        """``judge_prompt_budgets`` bound the prompt (a quarter of them after a context error)."""
        self.cache = cache
        self.redactor = redactor or DEFAULT_REDACTOR
        self.hint_chars = hint_chars
        self.samples = samples
        self.show_next_action = show_next_action
        self.stats = JudgeLayerStats()
        self._flights: dict[str, _Flight] = {}
        self._reader = _BatchedReader(cache) if cache is not None else None
        fingerprint = client.config.answer_fingerprint()
        self._answer_key = f"{fingerprint};samples={samples}" if samples > 1 else fingerprint
        self._options = PromptOptions(
            redactor=self.redactor,
            show_next_action=show_next_action,
            **self.limits.judge_prompt_budgets(1),
        )

    @property
    def name(self) -> str:
        """``judge``."""
        return "judge"

    def drain(self) -> None:
        """Send no new request (a graceful stop): see ``JudgeClient.drain``."""
        self.client.drain()

    def prompt(self, request: HintRequest, texts: TextRedactor | None = None) -> JudgePrompt:
        """The prompt this layer sends for ``request`` (sync; for tests and dry runs).

        ``texts`` redacts what it shows (``self.redactor`` when ``None``); ``propose_all``
        passes a memo of it per trace, so a text its sites share is redacted once.
        """
        return self._build(request, 1, texts or self.redactor)

    def _build(self, request: HintRequest, divisor: int, texts: TextRedactor) -> JudgePrompt:
        """The prompt, its texts redacted by ``texts`` (a trace's memo: its sites share texts)."""
        if request.site.detected_by is DetectedBy.USER:
            budgets = self.limits.judge_prompt_budgets(divisor)
            return build_correction_prompt(
                request,
                texts,
                message_chars=budgets["action_chars"] + budgets["input_chars"],
                input_chars=budgets["input_chars"],
                reply_chars=budgets["error_chars"],
            )
        return build_prompt(
            request,
            texts,
            show_next_action=self.show_next_action,
            **self.limits.judge_prompt_budgets(divisor),
        )

    def key(self, request: HintRequest) -> str:
        """The cache key of ``request``'s answer (sync; no prompt is built)."""
        return cache_key(
            self.client.config.model, request, options=self._options, answer=self._answer_key
        )

    async def propose(self, request: HintRequest) -> Hint | None:
        """Return the judge's hint for one site, or a ``failed`` hint saying why there is none.

        Sites asked at the same moment (``propose`` called concurrently) share one cache
        query; ``propose_all`` asks for the sites of a trace at once.
        """
        self.stats.sites += 1
        key = self.key(request)
        if self._reader is not None:
            cached = (await self._reader.get_many([key])).get(key)
            if cached is not None:
                self.stats.cache_hits += 1
                return _from_cache(cached)
        return await self._judge(request, key, self.redactor)

    async def propose_all(self, requests: Sequence[HintRequest]) -> list[Hint | None]:
        """``propose`` for the sites of one trace, in order.

        One cache query for all of them, then the judge is asked, concurrently, for the sites
        the cache does not hold. After ``drain()``, ``StoppedError`` once all of them are done.
        """
        self.stats.sites += len(requests)
        keys = [self.key(request) for request in requests]
        hints: list[Hint | None] = [None] * len(requests)
        missing = list(range(len(requests)))
        if self._reader is not None:
            found = await self._reader.get_many(keys)
            missing = []
            for index, key in enumerate(keys):
                cached = found.get(key)
                if cached is None:
                    missing.append(index)
                else:
                    self.stats.cache_hits += 1
                    hints[index] = _from_cache(cached)
        if len(missing) == 1:
            index = missing[0]
            hints[index] = await self._judge(requests[index], keys[index], self.redactor)
        elif missing:
            # The sites of a trace share texts (its task, its earlier errors): each is
            # redacted once for all their prompts.
            texts = TextMemo(self.redactor)
            stopped: list[StoppedError] = []

            async def one(index: int) -> None:
                try:
                    hints[index] = await self._judge(requests[index], keys[index], texts)
                except StoppedError as exc:
                    stopped.append(exc)  # not raised here: that would cancel the others

            async with anyio.create_task_group() as group:
                for index in missing:
                    group.start_soon(one, index)
            if stopped:
                raise stopped[0]
        return hints

    async def _judge(self, request: HintRequest, key: str, texts: TextRedactor) -> Hint:
        """The judge's answer for a site the cache does not hold, asked once per key in flight.

        The prompt is built only here, by the site that sends the request.
        """
        while True:
            flight = self._flights.get(key)
            if flight is None:
                break
            self.stats.shared += 1
            await flight.wait()
            if flight.result is not None:
                return flight.result
            # The leader was cancelled before it had an answer: try again, maybe as leader.
        flight = _Flight()
        self._flights[key] = flight
        try:
            flight.result = await self._ask(self.prompt(request, texts), request, key, texts)
            return flight.result
        finally:
            del self._flights[key]
            flight.end()

    async def _ask(
        self, prompt: JudgePrompt, request: HintRequest, key: str, texts: TextRedactor
    ) -> Hint:
        messages = prompt.messages()
        rejections: list[str] = []
        for round_ in range(2):
            replies = await self._sample(messages)
            if round_ == 0 and any(
                isinstance(r, JudgeFailure) and r.reason == FailureReason.CONTEXT_LENGTH
                for r in replies
            ):
                # The prompt was over the model's context: once more with a quarter of it.
                self.stats.shortened += 1
                messages = self._build(request, _SHORTER, texts).messages()
                replies = await self._sample(messages)
            answers: list[tuple[Answer, JudgeReply]] = []
            rejected: tuple[str, Rejected] | None = None
            for reply in replies:
                if isinstance(reply, JudgeFailure):
                    if reply.reason != Rejection.CUT_OFF.value:
                        continue
                    found: Answer | Rejected = Rejected(Rejection.CUT_OFF, reply.detail)
                    text = ""
                else:
                    text = reply.text
                    found = check_answer(
                        text,
                        finish_reason=reply.finish_reason,
                        error=request.site.error_message,
                        max_chars=min(self.hint_chars, 600),
                    )
                if isinstance(found, Rejected):
                    self.stats.rejected[found.reason.value] += 1
                    rejected = rejected or (text, found)
                else:
                    assert isinstance(reply, JudgeReply)  # noqa: S101 -- failures are rejected above
                    answers.append((found, reply))
            if answers:
                return await self._keep(answers, key)
            if rejected is None:  # every request failed (after the client's own retries)
                failure = next(r for r in replies if isinstance(r, JudgeFailure))
                self.stats.failed += 1
                return Hint(
                    None,
                    None,
                    HintStatus.FAILED,
                    reason=(
                        f"judge {failure.reason} after {failure.attempts} attempt(s): "
                        f"{failure.detail}"
                    ),
                )
            rejections.append(str(rejected[1]))
            if round_ == 0:
                self.stats.asked_again += 1
                messages = reask_messages(prompt, rejected[0], str(rejected[1]))
        self.stats.failed += 1
        return Hint(
            None,
            None,
            HintStatus.FAILED,
            reason=f"judge answer rejected: {rejections[0]}; asked again: {rejections[1]}",
        )

    async def _sample(self, messages: list[dict[str, str]]) -> list[JudgeReply | JudgeFailure]:
        """``samples`` answers to the same messages, asked at once."""
        complete = self.client.complete
        if self.samples == 1:
            return [await complete(messages, response_format=RESPONSE_FORMAT)]
        replies: list[JudgeReply | JudgeFailure] = []
        stopped: list[StoppedError] = []

        async def one() -> None:
            # A stop must not cancel the samples already on the wire: they finish first.
            try:
                replies.append(await complete(messages, response_format=RESPONSE_FORMAT))
            except StoppedError as exc:
                stopped.append(exc)

        async with anyio.create_task_group() as group:
            for _ in range(self.samples):
                group.start_soon(one)
        if stopped:
            raise stopped[0]
        return replies

    async def _keep(self, answers: list[tuple[Answer, JudgeReply]], key: str) -> Hint:
        """The verdict of most valid answers; for a mistake, the hint closest to the others."""
        hints = [
            (answer.hint, reply)
            for answer, reply in answers
            if answer.verdict is Verdict.MISTAKE and answer.hint is not None
        ]
        not_mistake = [
            (answer, reply) for answer, reply in answers if answer.verdict is Verdict.NOT_A_MISTAKE
        ]
        if len(not_mistake) > len(hints):
            answer, reply = not_mistake[0]
            self.stats.not_a_mistake += 1
            note = plain_text(answer.note or "")
            await self._put(key, f"{_NOT_A_MISTAKE_MARK}{note}", reply)
            return _not_a_mistake(note, reply.model, cached=False)
        text = pick_answer([hint for hint, _ in hints])
        reply = next(r for hint, r in hints if hint == text)
        self.stats.hinted += 1
        hint = Hint(text, HintSource.JUDGE, HintStatus.OK, model=reply.model)
        await self._put(key, hint.text or "", reply)  # what is cached is the hint, plain text
        return hint

    async def _put(self, key: str, text: str, reply: JudgeReply) -> None:
        if self.cache is not None:
            await self.cache.put(
                key,
                CachedHint(
                    text=text,
                    model=reply.model,
                    created=time.time(),
                    prompt_tokens=reply.prompt_tokens,
                    completion_tokens=reply.completion_tokens,
                ),
            )


_NOT_A_MISTAKE_MARK = "[not_a_mistake]"
"""Prefix of a cached ``not_a_mistake`` verdict (the judge's note follows it)."""


def _not_a_mistake(note: str, model: str, *, cached: bool) -> Hint:
    reason = "the judge found the failure deliberate, not a mistake"
    return Hint(
        None,
        HintSource.JUDGE,
        HintStatus.NOT_A_MISTAKE,
        reason=f"{reason}: {note}" if note else reason,
        model=model,
        cached=cached,
    )


def _from_cache(cached: CachedHint) -> Hint:
    if cached.text.startswith(_NOT_A_MISTAKE_MARK):
        return _not_a_mistake(cached.text[len(_NOT_A_MISTAKE_MARK) :], cached.model, cached=True)
    return Hint(cached.text, HintSource.JUDGE, HintStatus.OK, model=cached.model, cached=True)
