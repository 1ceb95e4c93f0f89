"""The progress line: what was read, the sites hinted, the judge's requests, and an ETA.

On a terminal it is a live line redrawn in place. Elsewhere (a log file, a pipe, CI), asked
for with ``--progress``, it is a plain line printed every few seconds: no carriage returns, no
colours, so the log reads as it was written.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from tracehint._ingest._discover import Found, FoundKind, discover

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterator,
        Awaitable,
        Callable,
        Coroutine,
        Iterator,
        Sequence,
    )

    from tracehint._judge import JudgeStats
    from tracehint._resume import ResumeState
    from tracehint._stats import RunStats

__all__ = ["InputSize", "measure_inputs", "progress", "progress_line"]

_REFRESH = 0.25
"""Seconds between redraws of the live line on a terminal."""
_RATE_WINDOW = 30.0
"""The request rate is measured over this many recent seconds."""


@dataclass(frozen=True, slots=True)
class InputSize:
    """How much a run has to read: its session files and their bytes."""

    files: int
    bytes: int


def _size(found: Found) -> int:
    """Bytes of a session file, or of an event folder's files (blocking)."""
    try:
        if found.kind is FoundKind.EVENT_FOLDER:
            with os.scandir(found.path) as entries:
                return sum(e.stat().st_size for e in entries if e.is_file())
        return os.stat(found.path).st_size  # noqa: PTH116 -- str paths
    except OSError:
        return 0


async def measure_inputs(
    paths: Sequence[str | os.PathLike[str]],
    *,
    resume: ResumeState | None = None,
    exclude: frozenset[str] = frozenset(),
) -> InputSize:
    """The files a run over ``paths`` will read and their size, for its ETA.

    Files an earlier run finished (``resume``) and the run's own outputs (``exclude``) are
    not counted: they are never read.
    """
    found = [item async for batch in discover(paths) for item in batch if isinstance(item, Found)]

    def sizes() -> InputSize:
        todo = [
            f
            for f in found
            if os.path.abspath(f.path) not in exclude  # noqa: PTH100 -- str paths
            and (resume is None or not resume.file_done(f.path))
        ]
        return InputSize(len(todo), sum(_size(f) for f in todo))

    return await anyio.to_thread.run_sync(sizes)


def _duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h07m``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _time_left(stats: RunStats, total: InputSize | None) -> float | None:
    """Seconds the run still needs, from its rates so far; ``None`` until it can tell.

    Reading runs ahead of hinting (a judge is the slow stage), so the estimate is the longer
    of two: reading the bytes not read yet, and hinting the sites not hinted yet, counting on
    as many sites per byte in the rest of the input as in what was read.
    """
    elapsed = stats.elapsed
    if total is None or elapsed <= 0 or stats.bytes_read <= 0:
        return None
    read = min(1.0, stats.bytes_read / total.bytes) if total.bytes else 1.0
    left = (1.0 - read) * elapsed / read
    if stats.sites_found:
        done = stats.sites_hinted
        if not done:
            return None  # no site hinted yet: no rate to go by
        expected = stats.sites_found / read
        left = max(left, (expected - done) * elapsed / done)
    return max(0.0, left)


def progress_line(
    stats: RunStats,
    *,
    judge: JudgeStats | None = None,
    total: InputSize | None = None,
    request_rate: float | None = None,
) -> str:
    """The progress line for the run so far (pure).

    ``judge`` adds the requests in flight and ``request_rate`` (requests per second, recent);
    ``total`` (what the run has to read) adds files out of the total and an ETA.
    """
    elapsed = stats.elapsed
    files = f"files {stats.files}" + (f"/{total.files}" if total is not None else "")
    failed = stats.hint_status.get("failed", 0)
    parts = [
        files,
        f"traces {stats.traces}",
        f"sites {stats.sites_hinted}/{stats.sites_found} hinted"
        + (f" ({failed} failed)" if failed else ""),
        f"issues {stats.input_issues}",
        f"{stats.bytes_read / 1e6:.1f} MB",
    ]
    if judge is not None:
        rate = f"{request_rate:.1f} req/s" if request_rate is not None else "- req/s"
        parts.append(f"judge {judge.in_flight} in flight, {rate}, {judge.requests} sent")
    left = _time_left(stats, total)
    parts.extend(
        (f"ETA {_duration(left)}" if left is not None else "ETA -", f"elapsed {_duration(elapsed)}")
    )
    return "tracehint: " + "  ".join(parts)


class _Line:
    """Builds the progress line, with the recent request rate and, once measured, the total."""

    def __init__(self, stats: RunStats, judge: JudgeStats | None) -> None:
        self.stats = stats
        self.judge = judge
        self.total: InputSize | None = None
        self._samples: deque[tuple[float, int]] = deque()

    def _rate(self, now: float, count: int) -> float | None:
        """Requests per second over the last ``_RATE_WINDOW`` seconds."""
        samples = self._samples
        samples.append((now, count))
        while len(samples) > 2 and now - samples[1][0] >= _RATE_WINDOW:
            samples.popleft()
        start, first = samples[0]
        return (count - first) / (now - start) if now > start else None

    def __call__(self) -> str:
        judge = self.judge
        rate = self._rate(anyio.current_time(), judge.requests) if judge is not None else None
        return progress_line(self.stats, judge=judge, total=self.total, request_rate=rate)

    async def measure(self, measure: Callable[[], Awaitable[InputSize]]) -> None:
        self.total = await measure()


def _write_line(line: str) -> None:
    """One plain progress line on stderr (blocking: run in a worker thread)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextmanager
def _display(
    console: Console, line: _Line, every: float
) -> Iterator[Callable[[], Coroutine[Any, Any, None]]]:
    """The loop that shows the line: redrawn in place on a terminal, else printed plainly."""
    if not console.is_terminal:

        async def print_lines() -> None:
            while True:
                await anyio.sleep(every)
                await anyio.to_thread.run_sync(_write_line, line())

        yield print_lines
        return
    with Live(Text(line()), console=console, transient=True, auto_refresh=False) as live:

        async def redraw() -> None:
            while True:
                await anyio.sleep(_REFRESH)
                live.update(Text(line()), refresh=True)

        yield redraw


@asynccontextmanager
async def progress(
    stats: RunStats,
    *,
    enabled: bool | None = None,
    judge: JudgeStats | None = None,
    measure: Callable[[], Awaitable[InputSize]] | None = None,
    every: float = 5.0,
) -> AsyncIterator[None]:
    """Show the progress line on stderr while the body runs.

    ``enabled=None`` shows it only when stderr is a terminal. On a terminal the line is redrawn
    in place; otherwise it is printed as a plain line every ``every`` seconds. ``judge`` (the
    judge client's live counters) adds the judge's requests; ``measure`` (run alongside the
    body, e.g. ``measure_inputs``) gives the total for files out of the total and the ETA.
    """
    console = Console(stderr=True)
    if enabled is None:
        enabled = console.is_terminal
    if not enabled:
        yield
        return
    line = _Line(stats, judge)
    async with anyio.create_task_group() as group:
        if measure is not None:
            group.start_soon(line.measure, measure)
        with _display(console, line, every) as show:
            group.start_soon(show)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
