"""A circuit breaker: a CRM that keeps failing gets no requests for a while, then one probe."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # requests go out
    OPEN = "open"  # no requests until `open_for` has passed
    HALF_OPEN = "half_open"  # one probe request; its outcome closes or opens the circuit


class CircuitBreaker:
    """Closed -> open after `failures` failures in a row; open -> half-open after `open_for`
    seconds; half-open lets one request through: a success closes, a failure opens again."""

    def __init__(self, failures: int, open_for: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._open_for = open_for
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0  # in a row
        self._open_until = 0.0
        self._probing = False
        self.opened = 0  # times the circuit opened

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def failures_in_a_row(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a request go out now? In half-open, True once: for the probe."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._clock() < self._open_until:
                return False
            self._state = BreakerState.HALF_OPEN
            self._probing = False
        if self._probing:
            return False
        self._probing = True
        return True

    def succeeded(self) -> BreakerState:
        """A request was answered; returns the state it left (to log a closing)."""
        before = self._state
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probing = False
        return before

    def failed(self) -> bool:
        """A request failed; True if that opened the circuit."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self._threshold
        ):
            self._state = BreakerState.OPEN
            self._open_until = self._clock() + self._open_for
            self._probing = False
            self.opened += 1
            return True
        return False  # closed and below the threshold, or open already (a request sent before)
