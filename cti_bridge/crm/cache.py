"""Answers kept per number for a while: a repeat caller within the TTL costs the CRM nothing."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from cti_bridge.tickets.crm import CrmLookup


class CrmCache:
    """A found caller is kept `ttl` seconds, a number the CRM does not know `not_found_ttl`; at
    most `size` numbers, the least recently used dropped first. Failures are never kept: the
    circuit breaker is what spares a failing CRM."""

    def __init__(
        self, *, ttl: float, not_found_ttl: float, size: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._not_found_ttl = not_found_ttl
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[CrmLookup, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, phone: str) -> CrmLookup | None:
        entry = self._entries.get(phone)
        if entry is None:
            return None
        lookup, expires_at = entry
        if self._clock() >= expires_at:
            del self._entries[phone]
            return None
        self._entries.move_to_end(phone)
        return lookup

    def put(self, lookup: CrmLookup) -> None:
        ttl = self._ttl if lookup.found else self._not_found_ttl
        if ttl <= 0:
            self._entries.pop(lookup.phone, None)
            return
        self._entries[lookup.phone] = (lookup, self._clock() + ttl)
        self._entries.move_to_end(lookup.phone)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
