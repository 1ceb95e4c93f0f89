"""The worker pool that runs a trace's judged sites at once: a task group's contract, kept."""

from __future__ import annotations

from functools import partial

import anyio
import pytest

from tracehint import StoppedError
from tracehint._fanout import FanOut

pytestmark = pytest.mark.anyio


async def test_every_job_of_a_batch_runs_at_once() -> None:
    # Each job waits until all have started: the batch ends only if they run concurrently.
    started = 0
    everyone = anyio.Event()

    async def job() -> None:
        nonlocal started
        started += 1
        if started == 10:
            everyone.set()
        await everyone.wait()

    async with FanOut(workers=16) as fanout:
        with anyio.fail_after(10):
            await fanout.run_all([job] * 10)
    assert started == 10


async def test_more_jobs_than_workers_wait_for_a_free_one() -> None:
    running = most = done = 0

    async def job() -> None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        running -= 1
        done += 1

    async with FanOut(workers=3) as fanout:
        await fanout.run_all([job] * 20)
        assert (done, most) == (20, 3)
        assert fanout._started == 3  # the pool did not grow past its bound


async def test_workers_are_kept_between_batches() -> None:
    async def job() -> None:
        await anyio.lowlevel.checkpoint()

    async with FanOut(workers=100) as fanout:
        for _ in range(5):
            await fanout.run_all([job] * 8)
        # Two batches at once need the workers of both.
        async with anyio.create_task_group() as group:
            group.start_soon(fanout.run_all, [job] * 8)
            group.start_soon(fanout.run_all, [job] * 8)
        assert fanout._started == 16  # workers reused, not started per batch


async def test_a_failing_job_cancels_the_others_of_its_batch_only() -> None:
    cancelled: list[int] = []
    release = anyio.Event()

    async def slow(number: int) -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(number)
            raise

    async def failing() -> None:
        await anyio.lowlevel.checkpoint()
        raise ValueError("boom")

    async def other_batch() -> None:
        await release.wait()

    async with FanOut(workers=10) as fanout, anyio.create_task_group() as group:
        group.start_soon(fanout.run_all, [other_batch, other_batch])
        with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="boom")), anyio.fail_after(10):
            await fanout.run_all([partial(slow, 1), failing, partial(slow, 2)])
        assert sorted(cancelled) == [1, 2]
        release.set()  # the other batch was not cancelled: it ends when released
        # The pool still works after a failed batch.
        await fanout.run_all([anyio.lowlevel.checkpoint] * 3)


async def test_a_cancelled_caller_cancels_its_jobs_and_waits_for_them() -> None:
    cleaned: list[int] = []
    both_started = anyio.Event()
    started = 0

    async def job(number: int) -> None:
        nonlocal started
        started += 1
        if started == 2:
            both_started.set()
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()  # the clean-up takes a turn of the loop
            cleaned.append(number)

    async with FanOut(workers=4) as fanout:
        async with anyio.create_task_group() as group:
            group.start_soon(fanout.run_all, [partial(job, 1), partial(job, 2)])
            with anyio.fail_after(10):
                await both_started.wait()
            group.cancel_scope.cancel()
        assert sorted(cleaned) == [1, 2]  # run_all returned only after both cleaned up


async def test_jobs_not_taken_yet_are_skipped_when_the_caller_is_cancelled() -> None:
    ran: list[int] = []
    first_running = anyio.Event()

    async def job(number: int) -> None:
        ran.append(number)
        first_running.set()
        await anyio.sleep_forever()

    async with FanOut(workers=1) as fanout:
        async with anyio.create_task_group() as group:
            group.start_soon(fanout.run_all, [partial(job, n) for n in range(5)])
            with anyio.fail_after(10):
                await first_running.wait()
            group.cancel_scope.cancel()

        # The one worker skips the four jobs it had not taken, then runs the next batch.
        async def last() -> None:
            ran.append(9)

        with anyio.fail_after(10):
            await fanout.run_all([last])
    assert ran == [0, 9]


async def test_a_caller_still_waiting_when_the_pool_closes_is_let_go() -> None:
    outcome: list[BaseException] = []
    started = anyio.Event()
    finished = anyio.Event()

    async def job() -> None:
        started.set()
        await anyio.sleep_forever()

    async def caller(fanout: FanOut) -> None:
        try:
            await fanout.run_all([job, job])
        except BaseExceptionGroup as group:
            outcome.extend(group.exceptions)
        finished.set()

    async with anyio.create_task_group() as group:
        async with FanOut(workers=2) as fanout:
            group.start_soon(caller, fanout)
            with anyio.fail_after(10):
                await started.wait()
        with anyio.fail_after(10):
            await finished.wait()
    assert [type(exc) for exc in outcome] == [StoppedError]


async def test_run_all_needs_the_pool_open() -> None:
    fanout = FanOut(workers=2)
    with pytest.raises(RuntimeError, match="async with"):
        await fanout.run_all([anyio.lowlevel.checkpoint])
