"""Run-wide request and token pacing, and the pause that a 429 imposes on every request."""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import time
from collections.abc import Awaitable, Callable, MutableSequence
from typing import Any

# Slots of the limiter's state: GCRA-style timelines where each request (or estimated token)
# reserves 60/per_minute seconds, and the end of the last 429's pause.
_REQUESTS, _TOKENS, _PAUSED = 0, 1, 2
# No request books more than one minute of a timeline (a request above --tpm counts as --tpm).
MAX_BOOKING = 60.0


class RateLimiter:
    """Paces requests to --rpm and estimated tokens to --tpm; pauses everyone after a 429.

    With shared=True the state lives in shared memory, so the worker processes of one run
    (forked after this is made) draw on one budget and all pause on any one's 429.

    The wait it imposes is bounded: a request waits for the current pause (which callers keep to
    --max-retry-wait) plus at most `max_booking` seconds for itself and for each request booked
    ahead of it, whatever token figures it is given.
    """

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        shared: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_booking: float = MAX_BOOKING,
    ) -> None:
        self.max_booking = max_booking
        self._request_interval = 60.0 / rpm if rpm else None
        self._token_interval = 60.0 / tpm if tpm else None
        self._clock = clock  # time.monotonic is one clock for every process on the machine
        self._sleep = sleep
        self._state: MutableSequence[float]
        self._guard: Any
        if shared:
            context = multiprocessing.get_context("fork")
            self._state, self._guard = context.RawArray("d", 3), context.Lock()
        else:
            self._state, self._guard = [0.0, 0.0, 0.0], contextlib.nullcontext()
        self.pauses = 0

    async def acquire(self, estimated_tokens: int = 0) -> None:
        """Wait until one more request of about this many tokens fits the limits."""
        while True:
            now = self._clock()
            with self._guard:
                paused_until = self._state[_PAUSED]
                start = now
                if paused_until <= now:
                    # Reservations are made under the guard and without awaiting: no slot is booked twice.
                    start = max(start, self._reserve(_REQUESTS, self._request_interval, now, 1))
                    if estimated_tokens:
                        start = max(start, self._reserve(_TOKENS, self._token_interval, now, estimated_tokens))
            if paused_until > now:
                await self._sleep(paused_until - now)
                continue
            if start > now:
                await self._sleep(start - now)
            if self._state[_PAUSED] <= self._clock():
                return

    def _reserve(self, slot: int, interval: float | None, now: float, cost: float) -> float:
        if interval is None:
            return now
        start = max(now, self._state[slot])
        self._state[slot] = start + self._booking(cost, interval)
        return start

    def _booking(self, cost: float, interval: float) -> float:
        # NaN, negative or absurd figures book nothing or at most max_booking, never "for ever".
        seconds = cost * interval
        return min(seconds, self.max_booking) if seconds > 0 else 0.0

    def reconcile(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token timeline once the server reports what a request really used."""
        if self._token_interval is not None:
            interval = self._token_interval
            correction = self._booking(actual_tokens, interval) - self._booking(estimated_tokens, interval)
            with self._guard:
                self._state[_TOKENS] += correction

    def paused_for(self) -> float:
        """Seconds left of the pause in force (0 when none)."""
        return max(0.0, self._state[_PAUSED] - self._clock())

    def pause(self, seconds: float) -> None:
        """Hold every request of the run for this long (a 429's Retry-After, capped by the caller)."""
        if not math.isfinite(seconds) or seconds <= 0:
            return  # an unreadable hint pauses no one; an infinite one must not pause for ever
        until = self._clock() + seconds
        with self._guard:
            if until > self._state[_PAUSED]:
                self._state[_PAUSED] = until
                self.pauses += 1
            for slot, interval in ((_REQUESTS, self._request_interval), (_TOKENS, self._token_interval)):
                if interval is not None:
                    self._state[slot] = max(self._state[slot], until)
