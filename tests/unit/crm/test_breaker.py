"""The circuit breaker's state machine on an injected clock."""

from cti_bridge.crm.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_n_failures_in_a_row_only():
    breaker = CircuitBreaker(failures=3, open_for=30, clock=Clock())
    assert not breaker.failed() and not breaker.failed()
    breaker.succeeded()  # an answer in between: the count starts again
    assert not breaker.failed() and not breaker.failed()
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    assert breaker.failed()
    assert breaker.state is BreakerState.OPEN and not breaker.allow() and breaker.opened == 1


def test_half_open_lets_one_probe_through_and_its_success_closes():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, open_for=30, clock=clock)
    breaker.failed()
    clock.now = 29.9
    assert not breaker.allow()
    clock.now = 30.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow() and not breaker.allow()  # nobody else while it is out
    assert breaker.succeeded() is BreakerState.HALF_OPEN
    assert breaker.state is BreakerState.CLOSED and breaker.allow() and breaker.allow()


def test_a_failed_probe_opens_for_another_period():
    clock = Clock()
    breaker = CircuitBreaker(failures=2, open_for=10, clock=clock)
    breaker.failed()
    breaker.failed()
    clock.now = 10
    assert breaker.allow()
    assert breaker.failed()  # one failure is enough in half-open
    assert breaker.state is BreakerState.OPEN and breaker.opened == 2
    clock.now = 19.9
    assert not breaker.allow()
    clock.now = 20
    assert breaker.allow()


def test_a_late_failure_while_open_does_not_extend_the_open_period():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, open_for=10, clock=clock)
    assert breaker.failed()
    clock.now = 5
    assert not breaker.failed()  # a request sent before the circuit opened, failing now
    clock.now = 10
    assert breaker.allow() and breaker.opened == 1
