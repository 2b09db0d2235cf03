"""Run-wide request and token pacing, and the pause that a 429 imposes on every request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class _Pacer:
    """GCRA-style pacing: each unit of cost reserves 60/per_minute seconds of a shared timeline."""

    def __init__(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute
        self.next_free = 0.0

    def reserve(self, now: float, cost: float) -> float:
        start = max(now, self.next_free)
        self.next_free = start + cost * self.interval
        return start

    def adjust(self, cost: float) -> None:
        self.next_free += cost * self.interval


class RateLimiter:
    """Paces requests to --rpm and estimated tokens to --tpm; pauses everyone after a 429."""

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._requests = _Pacer(rpm) if rpm else None
        self._tokens = _Pacer(tpm) if tpm else None
        self._clock = clock
        self._sleep = sleep
        self._paused_until = 0.0
        self.pauses = 0

    async def acquire(self, estimated_tokens: int = 0) -> None:
        """Wait until one more request of about this many tokens fits the limits."""
        while True:
            now = self._clock()
            if self._paused_until > now:
                await self._sleep(self._paused_until - now)
                continue
            start = now
            # Reservations are made without awaiting, so concurrent tasks never double-book a slot.
            if self._requests is not None:
                start = max(start, self._requests.reserve(now, 1))
            if self._tokens is not None and estimated_tokens:
                start = max(start, self._tokens.reserve(now, estimated_tokens))
            if start > now:
                await self._sleep(start - now)
            if self._paused_until <= self._clock():
                return

    def reconcile(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token timeline once the server reports what a request really used."""
        if self._tokens is not None:
            self._tokens.adjust(actual_tokens - estimated_tokens)

    def pause(self, seconds: float) -> None:
        """Hold every request of the run for this long (a 429's Retry-After)."""
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1
        for pacer in (self._requests, self._tokens):
            if pacer is not None:
                pacer.next_free = max(pacer.next_free, until)
