"""Client-side rate limits: requests per second and tokens per minute (token buckets)."""

from __future__ import annotations

import anyio

__all__ = ["TokenBucket"]


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, bursts up to ``capacity``.

    ``acquire(n)`` waits until ``n`` tokens are available. Waiters are served in order (one
    lock), so a large request is not starved by small ones.
    """

    def __init__(self, rate: float, capacity: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._updated: float | None = None
        self._lock = anyio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait until ``amount`` tokens can be taken, then take them."""
        amount = min(amount, self.capacity)
        async with self._lock:
            while True:
                now = anyio.current_time()
                if self._updated is None:
                    self._updated = now
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= amount:
                    self._tokens -= amount
                    return
                await anyio.sleep((amount - self._tokens) / self.rate)
