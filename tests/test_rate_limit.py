"""The per-user rate limit, in process and against the real Redis at 127.0.0.1:6379.

Each Redis test uses its own key prefix (a uuid), deleted afterwards, so runs never collide.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from headless_bi.errors import RATE_LIMITED, RateLimitedError
from headless_bi.runtime import Settings
from headless_bi.security.rate_limit import RateLimiter, rate_limiter

REDIS_URL = os.environ.get("HBI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DOWN_URL = "redis://127.0.0.1:1/0"  # nothing listens there: connection refused at once


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(limiter: RateLimiter, user: str) -> RateLimitedError:
    with pytest.raises(RateLimitedError) as caught:
        limiter.check(user)
    return caught.value


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc} (required under CI)")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"hbi:test:rate:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_in_process_allows_exactly_n_then_refuses() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, clock=clock)
    for _ in range(3):
        limiter.check("ann")
        clock.now += 1
    error = refused(limiter, "ann")
    assert error.code == RATE_LIMITED
    assert error.retry_after_s == pytest.approx(57.0)  # the first query leaves the window at t+60
    assert "ann" in error.message and "3 queries a minute" in error.message


def test_in_process_window_slides() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock)
    limiter.check("ann")
    clock.now += 30
    limiter.check("ann")
    refused(limiter, "ann")
    clock.now += 30  # the first query is now 60 s old: one slot frees up, not two
    limiter.check("ann")
    assert refused(limiter, "ann").retry_after_s == pytest.approx(30.0)


def test_refused_queries_do_not_count_in_process() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    limiter.check("ann")
    for _ in range(5):
        refused(limiter, "ann")
    clock.now += 60
    limiter.check("ann")


def test_users_are_independent() -> None:
    limiter = RateLimiter(2)
    limiter.check("ann")
    limiter.check("ann")
    refused(limiter, "ann")
    limiter.check("bob")
    limiter.check("bob")
    refused(limiter, "bob")


def test_zero_disables_the_limit() -> None:
    limiter = RateLimiter(0, REDIS_URL)
    for _ in range(1000):
        limiter.check("ann")


def test_in_process_is_thread_safe() -> None:
    limiter = RateLimiter(500)
    refusals: list[RateLimitedError] = []

    def worker() -> None:
        for _ in range(100):
            try:
                limiter.check("ann")
            except RateLimitedError as exc:
                refusals.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(refusals) == 800 - 500


def test_idle_users_are_forgotten() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock)
    for n in range(100):
        limiter.check(f"user{n}")
    clock.now += 61
    limiter.check("ann")
    assert set(limiter._times) == {"ann"}


def test_redis_allows_exactly_n_then_refuses(redis_prefix: str) -> None:
    limiter = RateLimiter(5, REDIS_URL, prefix=redis_prefix)
    for _ in range(5):
        limiter.check("ann")
    error = refused(limiter, "ann")
    assert error.retry_after_s is not None and 0 < error.retry_after_s <= 60
    limiter.check("bob")  # another user has a count of its own
    ttl = redis.Redis.from_url(REDIS_URL).ttl(redis_prefix + "ann")
    assert 0 < ttl <= 60  # every key expires: nothing accumulates in Redis


def test_redis_counts_are_shared_between_processes(redis_prefix: str) -> None:
    first = RateLimiter(4, REDIS_URL, prefix=redis_prefix)
    second = RateLimiter(4, REDIS_URL, prefix=redis_prefix)  # as a second API process would
    first.check("ann")
    second.check("ann")
    first.check("ann")
    second.check("ann")
    refused(first, "ann")
    refused(second, "ann")
    second.check("bob")
    first.close()
    second.close()


def test_redis_window_resets(redis_prefix: str) -> None:
    limiter = RateLimiter(1, REDIS_URL, prefix=redis_prefix)
    limiter.check("ann")
    refused(limiter, "ann")
    redis.Redis.from_url(REDIS_URL).expire(redis_prefix + "ann", 0)  # as if the minute had passed
    limiter.check("ann")


def test_redis_down_fails_open_to_the_in_process_limit(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RateLimiter(3, DOWN_URL)
    with caplog.at_level(logging.WARNING, logger="headless_bi.security.rate_limit"):
        for _ in range(3):
            limiter.check("ann")  # no error from Redis reaches the query
        error = refused(limiter, "ann")
    assert error.retry_after_s is not None and 0 < error.retry_after_s <= 60
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # warned once, not on every query


def test_factory_reads_the_settings(redis_prefix: str) -> None:
    local = rate_limiter(Settings(rate_limit_per_minute=2))
    assert local.per_minute == 2 and local._redis is None
    shared = rate_limiter(Settings(rate_limit_per_minute=7, redis_url=REDIS_URL))
    assert shared.per_minute == 7 and shared._redis is not None
    assert rate_limiter(Settings(rate_limit_per_minute=0, redis_url=REDIS_URL))._redis is None
    shared.close()
