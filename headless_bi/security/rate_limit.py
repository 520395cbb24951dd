"""Per-user query rate limit: at most `per_minute` queries in a window of 60 s, shared through Redis.

The limit is abuse protection, not billing, so it favours one cheap round trip over exactness.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from headless_bi.errors import RateLimitedError

if TYPE_CHECKING:  # runtime will import this module to wire the limiter in
    from headless_bi.runtime import Settings

log = logging.getLogger(__name__)

WINDOW_S = 60.0
WARN_EVERY_S = 60.0  # while Redis is down, repeat the warning at most this often


class RateLimiter:
    """`check(user)` raises `RateLimitedError` once `user` has made more than `per_minute` queries.

    Without `redis_url` the counts live in this process: a sliding 60 s log of request times per user,
    exact and thread-safe. With `redis_url` every API process shares one count per user: a fixed window
    that starts at the user's first query, kept in one key by `SET key 0 EX 60 NX`, `INCR`, `TTL` in
    one MULTI pipeline. That is one atomic round trip, O(1) memory per user, and Redis's own clock sets
    the window (API hosts' clocks may differ); the price is that a user can fit up to 2x `per_minute`
    around a window boundary, acceptable for abuse protection. Refused queries count too, so a client
    hammering through its limit stays refused until the window ends.

    If Redis is configured but unreachable the limiter fails open *to the in-process limit*: each
    process enforces `per_minute` on its own and a warning is logged (at most once a minute), so a Redis
    outage neither stops every query nor lifts the limit entirely. `per_minute=0` turns the limit off.
    """

    def __init__(
        self,
        per_minute: int,
        redis_url: str | None = None,
        *,
        prefix: str = "hbi:rate:",
        clock: Callable[[], float] = time.monotonic,
        socket_timeout_s: float = 0.5,
    ) -> None:
        self.per_minute = per_minute
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {}
        self._last_prune = clock()
        self._warned_at: float | None = None
        self._redis: redis.Redis | None = None
        if redis_url and per_minute > 0:
            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
            )

    def check(self, user: str) -> None:
        """Count one query by `user`; raise `RateLimitedError` (with `retry_after_s`) past the limit."""
        if self.per_minute <= 0:
            return
        if self._redis is not None:
            try:
                count, ttl = self._redis_count(user)
            except redis.RedisError as exc:
                self._warn_down(exc)
            else:
                if count > self.per_minute:
                    self._refuse(user, float(ttl) if ttl > 0 else WINDOW_S)
                return
        retry_after = self._local_check(user)
        if retry_after is not None:
            self._refuse(user, retry_after)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    def _refuse(self, user: str, retry_after_s: float) -> None:
        retry_after_s = min(max(retry_after_s, 0.0), WINDOW_S)
        raise RateLimitedError(
            f"Rate limit exceeded: user '{user}' may run {self.per_minute} queries a minute; "
            f"retry in {retry_after_s:.0f} s.",
            retry_after_s=retry_after_s,
        )

    def _redis_count(self, user: str) -> tuple[int, int]:
        assert self._redis is not None
        key = f"{self.prefix}{user}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(key, 0, ex=int(WINDOW_S), nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = pipe.execute()
        if self._warned_at is not None:
            log.warning("Redis is reachable again: rate limits are shared across processes")
            self._warned_at = None
        return int(count), int(ttl)

    def _warn_down(self, exc: Exception) -> None:
        now = self._clock()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("Redis unreachable for rate limits (%s): limiting each process on its own", exc)

    def _local_check(self, user: str) -> float | None:
        """Seconds until `user` may query again, or None after counting this query."""
        now = self._clock()
        with self._lock:
            if now - self._last_prune >= WINDOW_S:  # forget users idle for a whole window
                self._times = {u: t for u, t in self._times.items() if t and now - t[-1] < WINDOW_S}
                self._last_prune = now
            times = self._times.setdefault(user, deque())
            while times and now - times[0] >= WINDOW_S:
                times.popleft()
            if len(times) >= self.per_minute:
                return times[0] + WINDOW_S - now
            times.append(now)
            return None


def rate_limiter(settings: Settings) -> RateLimiter:
    """The limiter the settings ask for: `rate_limit_per_minute`, shared through `redis_url` if set."""
    return RateLimiter(settings.rate_limit_per_minute, settings.redis_url, prefix="hbi:rate:")
