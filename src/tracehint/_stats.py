"""Run statistics: what a run read, found and produced, as a summary and as JSON."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from tracehint._hints.reader import ReaderStats

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tracehint._hints.judge import JudgeLayerStats
    from tracehint._judge import JudgeStats
    from tracehint._records import InputIssue, Trace

__all__ = ["JudgeTotals", "RunStats"]

_SAMPLES = 10

_COUNTS = (
    "files",
    "files_resumed",
    "traces_resumed",
    "files_unreadable",
    "empty_files",
    "files_skipped",
    "bytes_read",
    "lines",
    "skipped_entries",
    "duplicate_entries",
    "orphan_results",
    "traces",
    "turns",
    "sites",
    "sites_found",
    "sites_hinted",
    "input_issues",
)
_COUNTERS = (
    "skipped_files",
    "sites_by_kind",
    "sites_by_detector",
    "non_mistakes",
    "hints_by_source",
    "hint_status",
)


_JUDGE_SUMS = (
    "requests",
    "retries",
    "replies",
    "prompt_tokens",
    "completion_tokens",
    "rate_limited",
    "sites_asked",
    "cache_hits",
    "single_flight_shared",
    "judge_hinted",
    "judge_failed",
    "judge_not_a_mistake",
    "judge_asked_again",
    "judge_shortened",
)
_JUDGE_MAXIMA = ("max_in_flight", "max_concurrency")
_JUDGE_MINIMA = ("min_in_flight_limit", "min_suggested_concurrency")
_JUDGE_COUNTERS = ("failures", "attempt_errors", "judge_rejected")


@dataclass(slots=True)
class JudgeTotals:
    """The judge's counters of a run (``RunStats.judge``).

    Its client, its layer, the reader pass and the cache, summed over every ``Annotator`` of the
    run (Ray batches too). The names are those of ``--stats-json``'s ``judge`` object.
    """

    requests: int = 0
    """HTTP attempts sent."""
    retries: int = 0
    replies: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    """Requests that finally failed, by ``FailureReason``."""
    failure_samples: dict[str, str] = field(default_factory=dict)
    """One message per failure reason, in the server's words when it gave any."""
    attempt_errors: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    max_in_flight: int = 0
    rate_limited: int = 0
    """429 answers."""
    max_concurrency: int = 0
    min_in_flight_limit: int = 0
    """The lowest in-flight bound the client lowered itself to after 429s (0: none)."""
    min_suggested_concurrency: int = 0
    notes: list[str] = field(default_factory=list)
    sites_asked: int = 0
    cache_hits: int = 0
    single_flight_shared: int = 0
    judge_hinted: int = 0
    judge_failed: int = 0
    judge_not_a_mistake: int = 0
    judge_asked_again: int = 0
    judge_rejected: Counter[str] = field(default_factory=Counter)
    judge_shortened: int = 0
    reader: ReaderStats | None = None
    """The reader pass's counters (``--detect reader``)."""
    cache_path: str | None = None

    @classmethod
    def of(
        cls,
        *,
        client: JudgeStats | None,
        layer: JudgeLayerStats | None,
        reader: ReaderStats | None,
    ) -> JudgeTotals:
        """One ``Annotator``'s counters."""
        totals = cls(reader=reader)
        if client is not None:
            totals.add(cls.from_dict(client.to_dict()))
        if layer is not None:
            totals.sites_asked = layer.sites
            totals.cache_hits = layer.cache_hits
            totals.single_flight_shared = layer.shared
            totals.judge_hinted = layer.hinted
            totals.judge_failed = layer.failed
            totals.judge_not_a_mistake = layer.not_a_mistake
            totals.judge_asked_again = layer.asked_again
            totals.judge_rejected.update(layer.rejected)
            totals.judge_shortened = layer.shortened
        return totals

    def add(self, other: JudgeTotals) -> None:
        """Add another ``Annotator``'s counters (another batch of the same run)."""
        for name in _JUDGE_SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _JUDGE_MAXIMA:
            setattr(self, name, max(getattr(self, name), getattr(other, name)))
        for name in _JUDGE_MINIMA:
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, min(mine, theirs) if mine and theirs else mine or theirs)
        for name in _JUDGE_COUNTERS:
            getattr(self, name).update(getattr(other, name))
        for reason, sample in other.failure_samples.items():
            self.failure_samples.setdefault(reason, sample)
        self.notes.extend(note for note in other.notes if note not in self.notes)
        if other.reader is not None:
            if self.reader is None:
                self.reader = ReaderStats()
            self.reader.add(other.reader)
        self.cache_path = self.cache_path or other.cache_path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JudgeTotals:
        """The counters of a ``to_dict()`` (e.g. sent back by a Ray worker)."""
        totals = cls()
        for name in (*_JUDGE_SUMS, *_JUDGE_MAXIMA, *_JUDGE_MINIMA):
            setattr(totals, name, int(data.get(name, 0)))
        for name in _JUDGE_COUNTERS:
            getattr(totals, name).update(data.get(name) or {})
        totals.failure_samples.update(data.get("failure_samples") or {})
        totals.notes.extend(data.get("notes") or [])
        reader = data.get("reader")
        totals.reader = ReaderStats.from_dict(reader) if isinstance(reader, dict) else None
        path = data.get("cache_path")
        totals.cache_path = path if isinstance(path, str) else None
        return totals

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counters (``judge`` in ``--stats-json``)."""
        out: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, Counter):
                out[spec.name] = dict(value.most_common())
            elif isinstance(value, ReaderStats):
                out[spec.name] = value.to_dict()
            elif isinstance(value, (dict, list)):
                out[spec.name] = type(value)(value)
            elif value is not None:
                out[spec.name] = value
        return out


def _judge_details(judge: JudgeTotals) -> list[str]:
    """The summary lines under the judge's: what went wrong, in the server's words."""
    lines = [f"           {reason}: {sample}" for reason, sample in judge.failure_samples.items()]
    limited = judge.rate_limited
    if limited:
        most = judge.max_concurrency
        lowest = judge.min_in_flight_limit or most
        suggested = judge.min_suggested_concurrency or lowest
        line = f"           judge rate-limited: {limited} × 429"  # noqa: RUF001 -- a times sign
        if lowest and lowest < most:
            line += (
                f", in flight lowered to {lowest} (of {most}): pass --concurrency {suggested} "
                "(or give the server more parallel slots) to spend less time backing off"
            )
        else:
            line += ": pass a lower --concurrency or --rps to spend less time backing off"
        lines.append(line)
    lines.extend(f"           note: {note}" for note in judge.notes)
    return lines


def _reader_line(reader: ReaderStats) -> str:
    """The summary line of the reader pass (``--detect reader``)."""
    line = (
        f"reader     {reader.windows} windows of {reader.traces} traces, "
        f"{reader.requests} requests, {reader.cache_hits} cache hits, "
        f"{reader.findings} findings ({reader.merged} merged into other "
        f"sites), tokens {reader.prompt_tokens} in / {reader.completion_tokens} out"
    )
    if reader.dropped:
        line += "; dropped: " + ", ".join(f"{k} {v}" for k, v in reader.dropped.most_common())
    if reader.failed_windows:
        line += f"; {reader.failed_windows} windows failed (asked again next run)"
    return line


@dataclass(slots=True)
class RunStats:
    """Counters of one run. Owned by the run that creates it; not shared between runs."""

    files: int = 0
    files_resumed: int = 0
    """Files an earlier run finished, skipped without reading (``--resume``)."""
    traces_resumed: int = 0
    """Traces already in the output, not written again (``--resume``)."""
    files_unreadable: int = 0
    empty_files: int = 0
    files_skipped: int = 0
    """Files found in folders and left unread: clearly not transcripts (by name)."""
    bytes_read: int = 0
    lines: int = 0
    skipped_entries: int = 0
    duplicate_entries: int = 0
    """Entries whose ``uuid`` was already seen in the same file, skipped."""
    orphan_results: int = 0
    traces: int = 0
    turns: int = 0
    sites: int = 0
    """Sites in the traces written."""
    sites_found: int = 0
    """Sites in the traces read, written or not yet (the progress line's total so far)."""
    sites_hinted: int = 0
    """Sites the hint layers resolved so far (hinted, failed or not a mistake), written or not
    yet."""
    input_issues: int = 0
    sites_by_kind: Counter[str] = field(default_factory=Counter)
    sites_by_detector: Counter[str] = field(default_factory=Counter)
    """Sites by what found them (``tool_error``, ``user``, ``reader``)."""
    skipped_files: Counter[str] = field(default_factory=Counter)
    """Why files were skipped, with how many each."""
    non_mistakes: Counter[str] = field(default_factory=Counter)
    hints_by_source: Counter[str] = field(default_factory=Counter)
    hint_status: Counter[str] = field(default_factory=Counter)
    issue_samples: list[str] = field(default_factory=list)
    judge: JudgeTotals | None = None
    """Judge, reader and cache counters, when a judge was used."""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    cpu_started: float = field(default_factory=time.process_time)
    """This process's CPU time when the run started (``time.process_time``)."""
    cpu_finished: float | None = None

    def finish(self) -> None:
        """Mark the run finished: ``elapsed`` and ``cpu_seconds`` stop counting."""
        self.finished = time.monotonic()
        self.cpu_finished = time.process_time()

    def record_issue(self, issue: InputIssue) -> None:
        """Count an input issue and keep the first few as examples."""
        self.input_issues += 1
        if len(self.issue_samples) < _SAMPLES:
            self.issue_samples.append(str(issue))

    def record_skipped_file(self, reason: str) -> None:
        """Count a file left unread because it is clearly not a transcript."""
        self.files_skipped += 1
        self.skipped_files[reason] += 1

    def record_trace(self, trace: Trace) -> None:
        """Count a trace as written, with its sites and hints."""
        self.traces += 1
        self.turns += len(trace.turns)
        for kind, count in trace.non_mistakes.items():
            self.non_mistakes[kind.value] += count
        for _, turn, site in trace.sites():
            self.sites += 1
            self.sites_by_kind[site.kind.value] += 1
            self.sites_by_detector[site.detected_by.value] += 1
            if turn.hint is not None:
                self.hint_status[turn.hint.status.value] += 1
                if turn.hint.source is not None:
                    self.hints_by_source[turn.hint.source.value] += 1

    def merge(self, other: dict[str, Any]) -> None:
        """Add the counters of another run's ``to_dict()`` (e.g. one Ray worker's batch)."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + int(other.get(name, 0)))
        for name in _COUNTERS:
            getattr(self, name).update(other.get(name, {}))
        for sample in other.get("input_issue_samples", []):
            if len(self.issue_samples) < _SAMPLES:
                self.issue_samples.append(sample)
        judge = other.get("judge")
        if judge:
            if self.judge is None:
                self.judge = JudgeTotals()
            self.judge.add(JudgeTotals.from_dict(judge))

    @property
    def elapsed(self) -> float:
        """Seconds since the run started (until it finished)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds this process spent on the run, all its threads.

        With ``--engine ray``, the driver's alone (each actor runs in its own process).
        """
        end = self.cpu_finished if self.cpu_finished is not None else time.process_time()
        return end - self.cpu_started

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (the ``--stats-json`` format)."""
        elapsed = self.elapsed
        return {
            "files": self.files,
            "files_resumed": self.files_resumed,
            "traces_resumed": self.traces_resumed,
            "files_unreadable": self.files_unreadable,
            "empty_files": self.empty_files,
            "files_skipped": self.files_skipped,
            "skipped_files": dict(self.skipped_files.most_common()),
            "bytes_read": self.bytes_read,
            "lines": self.lines,
            "skipped_entries": self.skipped_entries,
            "duplicate_entries": self.duplicate_entries,
            "orphan_results": self.orphan_results,
            "traces": self.traces,
            "turns": self.turns,
            "sites": self.sites,
            "sites_found": self.sites_found,
            "sites_hinted": self.sites_hinted,
            "sites_by_kind": dict(self.sites_by_kind.most_common()),
            "sites_by_detector": dict(self.sites_by_detector.most_common()),
            "non_mistakes": dict(self.non_mistakes.most_common()),
            "hints_by_source": dict(self.hints_by_source.most_common()),
            "hint_status": dict(self.hint_status.most_common()),
            "input_issues": self.input_issues,
            "input_issue_samples": list(self.issue_samples),
            "judge": self.judge.to_dict() if self.judge is not None else {},
            "elapsed_seconds": round(elapsed, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "traces_per_second": round(self.traces / elapsed, 1) if elapsed > 0 else None,
        }

    def summary(self) -> str:
        """A one-screen, human-readable summary."""

        def counts(counter: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in counter.most_common()) or "none"

        lines = [
            (
                f"files      {self.files} read ({self.bytes_read / 1e6:.1f} MB, "
                f"{self.lines} lines), {self.files_unreadable} unreadable, "
                f"{self.empty_files} empty"
                + (
                    f", {self.files_skipped} skipped ("
                    + "; ".join(f"{k}: {v}" for k, v in self.skipped_files.most_common())
                    + ")"
                    if self.files_skipped
                    else ""
                )
                + (
                    f", {self.skipped_entries} entries skipped (no conversation in them)"
                    if self.skipped_entries
                    else ""
                )
                + (
                    f", {self.duplicate_entries} duplicate entries skipped"
                    if self.duplicate_entries
                    else ""
                )
            ),
            f"traces     {self.traces} ({self.turns} turns)"
            + (
                f"; resumed: {self.files_resumed} files and {self.traces_resumed} traces skipped"
                if self.files_resumed or self.traces_resumed
                else ""
            ),
            f"sites      {self.sites}: {counts(self.sites_by_kind)}"
            + (
                f" (found by: {counts(self.sites_by_detector)})"
                if set(self.sites_by_detector) - {"tool_error"}
                else ""
            ),
            f"not sites  {sum(self.non_mistakes.values())}: {counts(self.non_mistakes)}",
            f"hints      {counts(self.hints_by_source)}; status: {counts(self.hint_status)}",
            f"issues     {self.input_issues} input issue(s)",
        ]
        lines.extend(f"           {sample}" for sample in self.issue_samples)
        if self.input_issues > len(self.issue_samples):
            lines.append(f"           … {self.input_issues - len(self.issue_samples)} more")
        judge = self.judge
        if judge is not None:
            failures = counts(judge.failures)
            lines.append(
                f"judge      {judge.requests} requests, {judge.retries} retries, "
                f"{judge.cache_hits} cache hits, {judge.single_flight_shared} shared in flight, "
                f"failures: {failures}, tokens {judge.prompt_tokens} in / "
                f"{judge.completion_tokens} out",
            )
            if judge.judge_rejected or judge.judge_not_a_mistake:
                lines.append(
                    "           answers rejected: "
                    + counts(judge.judge_rejected)
                    + f"; asked again {judge.judge_asked_again}"
                    + f"; not a mistake {judge.judge_not_a_mistake}",
                )
            if judge.reader is not None:
                lines.append(_reader_line(judge.reader))
            lines.extend(_judge_details(judge))
        lines.append(f"time       {self.elapsed:.2f} s")
        return "\n".join(lines)
