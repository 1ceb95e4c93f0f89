"""The reader pass: the judge reads each trace for mistakes no tool error shows.

One request per window of the trace (``tracehint._reader.reader_windows``), sent through the
same ``JudgeClient`` as hint requests (so the same limiter, retries, rate limits and circuit
breaker), its checked findings cached per window in the same SQLite cache (the key: the
window's content, the reader prompt's version, the model and the answer options), so a rerun
sends nothing. An answer that is not the JSON asked for is asked once more, told why; a window
whose request finally fails (or whose answers are both unreadable) gives no findings and is
not cached, so the next run asks again.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from tracehint._cache import CachedHint, HintCache
from tracehint._judge import JudgeFailure
from tracehint._limits import Limits, clamp
from tracehint._reader import (
    READER_RESPONSE_FORMAT,
    ReaderConfig,
    findings_json,
    place_findings,
    read_findings,
    reader_windows,
)
from tracehint._redact import Redactor

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tracehint._judge import JudgeClient
    from tracehint._reader import ReaderWindow
    from tracehint._records import Finding, Trace

__all__ = ["ReaderPass", "ReaderStats"]


@dataclass(slots=True)
class ReaderStats:
    """Counters of one reader pass."""

    traces: int = 0
    """Traces read (with at least one window)."""
    windows: int = 0
    requests: int = 0
    """Reader requests sent (a request asked again after an unreadable answer counts twice;
    the judge client's own counters add its retries)."""
    cache_hits: int = 0
    """Windows answered from the cache."""
    failed_windows: int = 0
    """Windows with no usable answer (not cached: the next run asks again)."""
    findings: int = 0
    """Findings placed on the traces (new sites and merged ones)."""
    merged: int = 0
    """Findings merged into a site another detector found on the same message."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Findings dropped, by reason (``bad_message``, ``quote_not_found``, ``bad_hint``, …)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: ReaderStats) -> None:
        """Add another pass's counters (another batch of the same run)."""
        for name in _READER_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.dropped.update(other.dropped)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReaderStats:
        """The counters of a ``to_dict()`` (e.g. sent back by a Ray worker)."""
        stats = cls()
        for name in _READER_COUNTS:
            setattr(stats, name, int(data.get(name, 0)))
        stats.dropped.update(data.get("dropped") or {})
        return stats

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counters (``judge.reader`` in ``--stats-json``)."""
        return {
            "traces": self.traces,
            "windows": self.windows,
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "failed_windows": self.failed_windows,
            "findings": self.findings,
            "merged": self.merged,
            "dropped": dict(self.dropped.most_common()),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


_READER_COUNTS = (
    "traces",
    "windows",
    "requests",
    "cache_hits",
    "failed_windows",
    "findings",
    "merged",
    "prompt_tokens",
    "completion_tokens",
)

_ASK_AGAIN = (
    "That answer cannot be used: {problem}. Answer again with the JSON object only: "
    '{{"findings": [...]}}, an empty list when there is no mistake.'
)


class ReaderPass:
    """Reads traces with the judge and puts its checked findings on them as sites.

    Never raises for a per-window failure (the window gives no findings); raises only what the
    judge client raises for the whole run (bad credentials, its circuit breaker).
    """

    def __init__(
        self,
        client: JudgeClient,
        *,
        cache: HintCache | None = None,
        redactor: Redactor | None = None,
        config: ReaderConfig | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.redactor = redactor or Redactor()
        self.config = config or ReaderConfig()
        self.limits = limits or Limits()
        self.stats = ReaderStats()
        judge = client.config
        self._fingerprint = orjson.dumps(
            {
                "temperature": judge.temperature,
                "max_tokens": self.config.max_tokens,
                "extra_body": dict(judge.extra_body),
            },
            option=orjson.OPT_SORT_KEYS,
        ).decode()

    def windows(self, trace: Trace) -> list[ReaderWindow]:
        """The windows this pass sends for ``trace`` (sync; for tests and dry runs)."""
        return reader_windows(trace, self.config, self.redactor.redact)

    async def read(self, trace: Trace) -> Trace:
        """Read ``trace``; return it with the findings placed as sites (or merged into them)."""
        windows = self.windows(trace)
        if not windows:
            return trace
        self.stats.traces += 1
        self.stats.windows += len(windows)
        found: list[list[Finding]] = [[] for _ in windows]

        async def one(number: int, window: ReaderWindow) -> None:
            found[number] = await self._window(window)

        if len(windows) == 1:
            await one(0, windows[0])
        else:
            async with anyio.create_task_group() as group:
                for number, window in enumerate(windows):
                    group.start_soon(one, number, window)
        findings: list[Finding] = []
        named: set[int] = set()
        for window_findings in found:  # overlapping windows: the first finding of a message
            for finding in window_findings:
                if finding.message_index in named:
                    self.stats.dropped["duplicate"] += 1
                    continue
                named.add(finding.message_index)
                findings.append(finding)
        before = sum(1 for _ in trace.sites())
        placed, dropped = place_findings(trace, findings, excerpt_chars=self.limits.excerpt_chars)
        self.stats.dropped.update(dropped)
        kept = len(findings) - sum(dropped.values())
        self.stats.findings += kept
        self.stats.merged += kept - (sum(1 for _ in placed.sites()) - before)
        return placed

    async def _window(self, window: ReaderWindow) -> list[Finding]:
        model = self.client.config.model
        key = window.cache_key(model, self._fingerprint)
        if self.cache is not None:
            cached = await self.cache.get(key)
            if cached is not None:
                self.stats.cache_hits += 1
                read = read_findings(
                    cached.text,
                    window,
                    self.config,
                    model=cached.model,
                    hint_chars=self.limits.hint_chars,
                )
                self.stats.dropped.update(read.dropped)
                return read.findings
        messages = window.messages()
        for round_ in range(2):
            reply = await self.client.complete(
                messages, response_format=READER_RESPONSE_FORMAT, max_tokens=self.config.max_tokens
            )
            self.stats.requests += 1
            if isinstance(reply, JudgeFailure):
                break
            self.stats.prompt_tokens += reply.prompt_tokens or 0
            self.stats.completion_tokens += reply.completion_tokens or 0
            read = read_findings(
                reply.text,
                window,
                self.config,
                model=reply.model,
                hint_chars=self.limits.hint_chars,
            )
            self.stats.dropped.update(read.dropped)
            if read.malformed is None:
                if self.cache is not None:
                    await self.cache.put(
                        key,
                        CachedHint(
                            text=findings_json(read.findings),
                            model=reply.model,
                            created=time.time(),
                            prompt_tokens=reply.prompt_tokens,
                            completion_tokens=reply.completion_tokens,
                        ),
                    )
                return read.findings
            if round_ == 0:
                messages = [
                    *window.messages(),
                    {"role": "assistant", "content": clamp(reply.text.strip(), 600) or "(empty)"},
                    {"role": "user", "content": _ASK_AGAIN.format(problem=read.malformed)},
                ]
        self.stats.failed_windows += 1
        return []
