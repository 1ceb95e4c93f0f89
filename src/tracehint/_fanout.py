"""Run a batch of jobs at once on long-lived worker tasks, as a task group would.

anyio spawns a task in 40 to 60 µs (a handle, an event and a cancel scope each); a judged site costs
about 0.4 ms of CPU in all, so a task per site was an eighth of it. ``FanOut`` keeps its workers:
a job is handed over through a memory object stream and run in a cancel scope of its own, which
costs a tenth of that.

``run_all`` keeps a task group's contract for the caller: every job of the batch runs
concurrently (workers are started as they are needed, up to ``workers``; past that, jobs wait
for a free worker); it returns once all of them are done; the first job that fails cancels the
others of its batch and the failures are raised together in a ``BaseExceptionGroup``; a caller
that is cancelled cancels its jobs and waits for them to finish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

import anyio

from tracehint._exceptions import StoppedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence
    from types import TracebackType

    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    Job = Callable[[], Awaitable[object]]

__all__ = ["FanOut"]


@dataclass(slots=True, eq=False)
class _Batch:
    """The jobs of one ``run_all`` call: how many are left, their scopes, their failures."""

    left: int
    """Jobs not finished (``pending`` included)."""
    pending: int
    """Jobs no worker has taken yet."""
    done: anyio.Event = field(default_factory=anyio.Event)
    scopes: set[anyio.CancelScope] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)
    cancelled: bool = False
    """Set when a job failed or the caller was cancelled: the jobs not taken yet are skipped."""

    def take(self) -> bool:
        """A worker takes one job: whether to run it."""
        self.pending -= 1
        return not self.cancelled

    def finish_one(self) -> None:
        self.left -= 1
        self._check()

    def cancel(self) -> None:
        self.cancelled = True
        for scope in self.scopes:
            scope.cancel()
        self._check()

    def fail(self, error: BaseException) -> None:
        self.errors.append(error)
        if not self.cancelled:
            self.cancel()

    def _check(self) -> None:
        # Done when every job finished, or, once cancelled, every job a worker took.
        if self.left == 0 or (self.cancelled and self.left == self.pending):
            self.done.set()


class FanOut:
    """Long-lived worker tasks that run batches of jobs concurrently (see the module docstring).

    An async context manager: the workers live in its task group; leaving it cancels them, and
    a batch still waiting then fails with ``StoppedError``.
    """

    def __init__(self, workers: int) -> None:
        self._most = max(1, workers)
        self._started = 0
        self._free = 0
        """Workers not running a job (waiting for one, or not started yet)."""
        self._queued = 0
        """Jobs sent that no worker has taken yet."""
        self._group: TaskGroup | None = None
        self._send: MemoryObjectSendStream[tuple[_Batch, Job]] | None = None
        self._receive: MemoryObjectReceiveStream[tuple[_Batch, Job]] | None = None
        self._waiting: set[_Batch] = set()

    async def __aenter__(self) -> Self:
        self._send, self._receive = anyio.create_memory_object_stream[tuple[_Batch, "Job"]](
            math.inf
        )
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        group, self._group = self._group, None
        send, receive = self._send, self._receive
        self._send = self._receive = None
        if group is None:
            return None
        group.cancel_scope.cancel()
        try:
            return await group.__aexit__(exc_type, exc, tb)
        finally:
            if send is not None:
                send.close()
            if receive is not None:
                receive.close()
            for batch in self._waiting:  # their callers are still waiting: let them go
                batch.fail(StoppedError("the worker pool was closed"))
                batch.done.set()
            self._waiting.clear()

    async def run_all(self, jobs: Sequence[Job]) -> None:
        """Run ``jobs`` concurrently and return once all are done (see the module docstring)."""
        if self._send is None:
            raise RuntimeError("FanOut.run_all needs the pool open (async with)")
        if not jobs:
            return
        batch = _Batch(len(jobs), len(jobs))
        self._waiting.add(batch)
        send = self._send
        for job in jobs:
            send.send_nowait((batch, job))
        self._grow(len(jobs))
        try:
            await batch.done.wait()
        except BaseException:
            batch.cancel()
            with anyio.CancelScope(shield=True):
                await batch.done.wait()  # a task group waits for its cancelled tasks too
            raise
        finally:
            self._waiting.discard(batch)
        if batch.errors:
            raise BaseExceptionGroup("errors in a batch of jobs", batch.errors)

    def _grow(self, jobs: int) -> None:
        """Start workers for the jobs no free worker will take (up to the most allowed)."""
        assert self._group is not None  # noqa: S101 -- checked by run_all
        self._queued += jobs
        for _ in range(min(self._queued - self._free, self._most - self._started)):
            self._started += 1
            self._free += 1  # counted free from now: the next batch must not start it again
            self._group.start_soon(self._work)

    async def _work(self) -> None:
        receive = self._receive
        assert receive is not None  # noqa: S101 -- started by run_all
        while True:
            try:
                batch, job = await receive.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return
            self._free -= 1
            self._queued -= 1
            try:
                if batch.take():
                    with anyio.CancelScope() as scope:
                        batch.scopes.add(scope)
                        try:
                            await job()
                        except Exception as exc:  # noqa: BLE001 -- raised by run_all
                            batch.fail(exc)
                        finally:
                            batch.scopes.discard(scope)
            except BaseException:  # the pool is closing: __aexit__ lets the caller go
                batch.cancel()
                raise
            batch.finish_one()
            self._free += 1
