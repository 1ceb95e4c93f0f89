"""Client-side rate limits: token buckets (requests/s, tokens/min) and an adaptive limiter.

``TokenBucket`` spaces requests out to a fixed budget. ``AdaptiveLimiter`` bounds requests in
flight and moves the bound with the server's answers (AIMD, as TCP does with its window):
halved when the server says it is overloaded (429), one more after a run of successes, never
below one.
"""

from __future__ import annotations

from collections import deque

import anyio

__all__ = ["AdaptiveLimiter", "TokenBucket"]


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, bursts up to ``capacity``.

    ``acquire(n)`` waits until ``n`` tokens are available. Waiters are served in order (one
    lock), so a large request is not starved by small ones. ``refund(n)`` gives back what a
    request reserved but did not use (negative: takes what it used beyond its reservation).
    """

    def __init__(self, rate: float, capacity: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._updated: float | None = None
        self._lock = anyio.Lock()

    def _refill(self) -> None:
        now = anyio.current_time()
        if self._updated is None:
            self._updated = now
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait until ``amount`` tokens can be taken, then take them."""
        amount = min(amount, self.capacity)
        async with self._lock:
            while True:
                self._refill()
                if self._tokens >= amount:
                    self._tokens -= amount
                    return
                await anyio.sleep((amount - self._tokens) / self.rate)

    def refund(self, amount: float) -> None:
        """Give back ``amount`` tokens (or take ``-amount`` more: the bucket may go into debt).

        A request reserves what it may use before it is sent (its prompt and its whole answer
        budget); once the server reports what it used, the difference is settled here, so a
        tokens-per-minute budget counts the tokens really spent.
        """
        self._refill()
        self._tokens = min(self.capacity, self._tokens + amount)


class AdaptiveLimiter:
    """Bounds requests in flight; the bound adapts to the server (AIMD).

    ``acquire()`` waits for a slot and returns the limiter's *epoch*; a request that is rate
    limited reports it with ``rate_limited(epoch)``, which halves the bound once per epoch
    (many requests of one burst rejected together lower it once, not once each). After
    ``limit`` successes in a row (``succeeded()``) the bound grows by one, up to ``maximum``.

    ``start`` bounds the requests in flight until the first answer that is not a refusal
    (``succeeded()`` or ``answered()``), which opens the bound to ``limit`` at once (unless
    the server rate-limited us first): a server that refuses every request is found out after
    ``start`` requests, not after a whole fan-out.
    """

    def __init__(self, limit: int, *, minimum: int = 1, start: int | None = None) -> None:
        if limit < 1 or minimum < 1 or (start is not None and start < 1):
            raise ValueError("limits must be at least 1")
        self.maximum = limit
        self.minimum = min(minimum, limit)
        self._limit = min(start, limit) if start is not None else limit
        self._probing = self._limit < limit
        self._lowest = limit
        self._suggested = limit
        self._in_flight = 0
        self._epoch = 0
        self._successes = 0
        self._waiters: deque[anyio.Event] = deque()

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return self._limit

    @property
    def lowest(self) -> int:
        """The lowest bound reached so far."""
        return self._lowest

    @property
    def suggested(self) -> int:
        """Requests in flight the server seems to take: one less than the fewest it refused."""
        return self._suggested

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self._in_flight

    async def acquire(self) -> int:
        """Wait for a free slot and take it; return the current epoch."""
        # A free slot is taken without a scheduling round trip; only a full limiter waits.
        while self._in_flight >= self._limit:
            event = anyio.Event()
            self._waiters.append(event)
            try:
                await event.wait()
            except BaseException:
                if event.is_set():
                    self._wake()  # woken, but cancelled before taking the slot: pass it on
                else:
                    self._waiters.remove(event)
                raise
        self._in_flight += 1
        return self._epoch

    def release(self) -> None:
        """Give a slot back."""
        self._in_flight -= 1
        self._wake()

    def rate_limited(self, epoch: int) -> bool:
        """The server rejected a request taken in ``epoch`` as overload; ``True`` if halved."""
        self._successes = 0
        self._probing = False
        if epoch != self._epoch or self._limit <= self.minimum:
            return False
        # The server refused while at most ``limit`` were in flight: it takes fewer.
        self._suggested = min(self._suggested, max(self.minimum, self._limit - 1))
        self._limit = max(self.minimum, self._limit // 2)
        self._lowest = min(self._lowest, self._limit)
        self._epoch += 1
        return True

    def answered(self) -> None:
        """The server answered, if not with a success (a 5xx, a bad body): open the bound.

        The server takes requests, so the bound opens as after a success; nothing else changes.
        """
        if self._probing:
            self._probing = False
            self._limit = self.maximum
            self._wake()

    def refused(self) -> None:
        """A request was refused for good (a 4xx) before any success: one fewer may start.

        Until the first success, each such refusal takes its slot with it, so at most
        ``start`` requests are sent to a server that refuses them all.
        """
        if self._probing:
            self._limit = max(self.minimum, self._limit - 1)

    def succeeded(self) -> None:
        """A request got an answer; after ``limit`` in a row, allow one more in flight."""
        self._successes += 1
        if self._probing:
            self._probing = False
            self._limit = self.maximum
            self._wake()
        elif self._successes >= self._limit and self._limit < self.maximum:
            self._successes = 0
            self._limit += 1
            self._wake()

    def _wake(self) -> None:
        free = self._limit - self._in_flight
        while free > 0 and self._waiters:
            self._waiters.popleft().set()
            free -= 1
