"""The answer cache: TTLs for found and unknown numbers, on an injected clock; LRU bound."""

from cti_bridge.crm.cache import CrmCache
from cti_bridge.tickets.crm import CrmLookup, CrmProfile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def found(phone: str) -> CrmLookup:
    return CrmLookup(phone=phone, profile=CrmProfile(name=phone), fetched_at=1.0)


def unknown(phone: str) -> CrmLookup:
    return CrmLookup(phone=phone, profile=None, fetched_at=1.0)


def test_found_and_unknown_numbers_expire_on_their_own_ttls():
    clock = Clock()
    cache = CrmCache(ttl=600, not_found_ttl=60, size=10, clock=clock)
    cache.put(found("+1"))
    cache.put(unknown("+2"))
    clock.now += 59.9
    assert cache.get("+1") == found("+1") and cache.get("+2") == unknown("+2")
    clock.now += 0.1
    assert cache.get("+2") is None and cache.get("+1") is not None
    clock.now += 540
    assert cache.get("+1") is None
    assert len(cache) == 0


def test_a_ttl_of_zero_keeps_nothing_and_forgets_the_older_answer():
    clock = Clock()
    cache = CrmCache(ttl=600, not_found_ttl=0, size=10, clock=clock)
    cache.put(found("+1"))
    cache.put(unknown("+1"))  # the CRM forgot the caller: the found answer must not linger
    assert cache.get("+1") is None


def test_the_least_recently_used_number_goes_first():
    cache = CrmCache(ttl=600, not_found_ttl=60, size=2, clock=Clock())
    cache.put(found("+1"))
    cache.put(found("+2"))
    assert cache.get("+1") is not None  # +1 used: +2 is now the oldest
    cache.put(found("+3"))
    assert cache.get("+2") is None and cache.get("+1") is not None and cache.get("+3") is not None


def test_a_fresh_answer_restarts_the_ttl():
    clock = Clock()
    cache = CrmCache(ttl=10, not_found_ttl=10, size=5, clock=clock)
    cache.put(found("+1"))
    clock.now += 8
    cache.put(found("+1"))
    clock.now += 8
    assert cache.get("+1") is not None
