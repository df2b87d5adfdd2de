"""The circuit breaker's states on a clock the test turns (the API-level test in
tests/reliability/test_cloud_faults.py runs it against a real failing provider)."""

from __future__ import annotations

import threading

from agents.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_the_failures_in_a_row_and_probes_once_after_the_reset() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failed()
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.failed()
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_after_s() == 10
    clock.now += 9.5
    assert not breaker.allow() and breaker.retry_after_s() == 0.5
    clock.now += 0.5
    assert breaker.state == "half_open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.failed()  # the probe failed: open again, for a full reset period
    assert breaker.state == "open" and breaker.retry_after_s() == 10
    clock.now += 10
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_a_success_resets_the_count_and_zero_failures_means_no_breaker() -> None:
    breaker = CircuitBreaker(2, 10, clock=Clock())
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    assert breaker.state == "closed"  # not two in a row
    off = CircuitBreaker(0, 10)
    for _ in range(50):
        off.failed()
    assert off.allow() and off.state == "closed"


def test_an_abandoned_probe_lets_the_next_one_run() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5, clock=clock)
    breaker.failed()
    clock.now += 5
    assert breaker.allow()
    breaker.abandoned()  # its caller went away: no verdict
    assert breaker.allow()


def test_concurrent_callers_in_half_open_get_exactly_one_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5, clock=clock)
    breaker.failed()
    clock.now += 5
    allowed: list[bool] = []
    barrier = threading.Barrier(32)

    def call() -> None:
        barrier.wait()
        allowed.append(breaker.allow())

    threads = [threading.Thread(target=call) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1
