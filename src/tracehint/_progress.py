"""A live progress line on a terminal (files, traces, sites, issues); nothing when piped."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from rich.console import Console
from rich.live import Live
from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tracehint._stats import RunStats

__all__ = ["progress"]


def _line(stats: RunStats) -> Text:
    elapsed = stats.elapsed
    rate = stats.traces / elapsed if elapsed > 0 else 0.0
    return Text.assemble(
        ("tracehint ", "bold"),
        f"files {stats.files}  traces {stats.traces}  sites {stats.sites}  ",
        (f"issues {stats.input_issues}", "yellow" if stats.input_issues else ""),
        f"  {stats.bytes_read / 1e6:.1f} MB  {rate:.0f} traces/s  {elapsed:.0f}s",
    )


@asynccontextmanager
async def progress(stats: RunStats, *, enabled: bool | None = None) -> AsyncIterator[None]:
    """Show a live progress line on stderr while the body runs.

    ``enabled=None`` shows it only when stderr is a terminal.
    """
    console = Console(stderr=True)
    if enabled is None:
        enabled = console.is_terminal
    if not enabled:
        yield
        return
    with Live(_line(stats), console=console, transient=True, auto_refresh=False) as live:
        async with anyio.create_task_group() as group:

            async def refresh() -> None:
                while True:
                    live.update(_line(stats), refresh=True)
                    await anyio.sleep(0.25)

            group.start_soon(refresh)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
