"""Counting failed authentications per client address."""

from __future__ import annotations

from producers.throttle import FailureLimiter, client_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_is_blocked_after_the_limit_until_the_oldest_failure_leaves_the_window():
    clock = Clock()
    limiter = FailureLimiter(3, 60, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
        clock.now += 10
    assert limiter.retry_after("10.0.0.1") == 30  # the first failure was 30 s ago
    assert limiter.retry_after("10.0.0.2") is None  # others are not affected
    clock.now += 30
    assert limiter.retry_after("10.0.0.1") is None
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 10  # two failures still in the window, plus this one


def test_failures_spread_wider_than_the_window_never_block():
    clock = Clock()
    limiter = FailureLimiter(2, 60, clock=clock)
    for _ in range(10):
        limiter.failed("10.0.0.1")
        clock.now += 61
        assert limiter.retry_after("10.0.0.1") is None


def test_ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4():
    assert client_id("2001:db8:1:2:aaaa::1") == client_id("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert client_id("2001:db8:1:3::1") != client_id("2001:db8:1:2::1")
    assert client_id("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_id(None) == "unknown"


def test_memory_is_bounded_by_max_clients():
    limiter = FailureLimiter(1, 60, max_clients=100, clock=Clock())
    for n in range(1000):
        limiter.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._failures) <= 100
