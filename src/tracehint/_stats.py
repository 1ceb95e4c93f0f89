"""Run statistics: what a run read, found and produced, as a summary and as JSON."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracehint._records import InputIssue, Trace

__all__ = ["RunStats"]

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


def _add(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Sum two nested dicts of counters (numbers summed, ``max_*`` maxed, other values kept)."""
    out = dict(mine)
    for key, value in theirs.items():
        current = out.get(key)
        if isinstance(value, dict):
            out[key] = _add(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if not isinstance(current, int | float):
                out[key] = value
            elif key.startswith("max_"):
                out[key] = max(current, value)
            elif key.startswith("min_"):
                out[key] = min(current, value)
            else:
                out[key] = current + value
        elif current is None:
            out[key] = value
    return out


def _judge_details(judge: dict[str, Any]) -> list[str]:
    """The summary lines under the judge's: what went wrong, in the server's words."""
    lines = [
        f"           {reason}: {sample}"
        for reason, sample in judge.get("failure_samples", {}).items()
    ]
    limited = int(judge.get("rate_limited", 0))
    if limited:
        most = judge.get("max_concurrency", 0)
        lowest = judge.get("min_in_flight_limit", most)
        suggested = judge.get("min_suggested_concurrency", lowest)
        line = f"           judge rate-limited: {limited} × 429"  # noqa: RUF001 -- a times sign
        if lowest and lowest < most:
            line += (
                f", in flight lowered to {lowest} (of {most}): pass --concurrency {suggested} "
                "(or give the server more parallel slots) to spend less time backing off"
            )
        else:
            line += ": pass a lower --concurrency or --rps to spend less time backing off"
        lines.append(line)
    lines.extend(f"           note: {note}" for note in judge.get("notes", []))
    return lines


def _reader_line(reader: dict[str, Any]) -> str:
    """The summary line of the reader pass (``--detect reader``)."""
    dropped = reader.get("dropped") or {}
    line = (
        f"reader     {reader.get('windows', 0)} windows of {reader.get('traces', 0)} traces, "
        f"{reader.get('requests', 0)} requests, {reader.get('cache_hits', 0)} cache hits, "
        f"{reader.get('findings', 0)} findings ({reader.get('merged', 0)} merged into other "
        f"sites), tokens {reader.get('prompt_tokens', 0)} in / "
        f"{reader.get('completion_tokens', 0)} out"
    )
    if dropped:
        line += "; dropped: " + ", ".join(f"{k} {v}" for k, v in dropped.items())
    if reader.get("failed_windows"):
        line += f"; {reader['failed_windows']} windows failed (asked again next run)"
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
    judge: dict[str, Any] = field(default_factory=dict)
    """Judge and cache counters, when a judge was used."""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

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
        self.judge = _add(self.judge, other.get("judge", {}))

    @property
    def elapsed(self) -> float:
        """Seconds since the run started (until it finished)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

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
            "judge": dict(self.judge),
            "elapsed_seconds": round(elapsed, 3),
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
        if self.judge:
            judge = self.judge
            failures = ", ".join(f"{k} {v}" for k, v in judge.get("failures", {}).items()) or "none"
            lines.append(
                f"judge      {judge.get('requests', 0)} requests, "
                f"{judge.get('retries', 0)} retries, {judge.get('cache_hits', 0)} cache hits, "
                f"{judge.get('single_flight_shared', 0)} shared in flight, "
                f"failures: {failures}, tokens {judge.get('prompt_tokens', 0)} in / "
                f"{judge.get('completion_tokens', 0)} out",
            )
            rejected = judge.get("judge_rejected") or {}
            if rejected or judge.get("judge_not_a_mistake"):
                lines.append(
                    "           answers rejected: "
                    + (", ".join(f"{k} {v}" for k, v in rejected.items()) or "none")
                    + f"; asked again {judge.get('judge_asked_again', 0)}"
                    + f"; not a mistake {judge.get('judge_not_a_mistake', 0)}",
                )
            reader = judge.get("reader")
            if isinstance(reader, dict):
                lines.append(_reader_line(reader))
            lines.extend(_judge_details(judge))
        lines.append(f"time       {self.elapsed:.2f} s")
        return "\n".join(lines)
