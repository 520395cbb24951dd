"""Live queries: one polling loop per distinct (query, security context), fanned out to subscribers.

Many dashboards watch the same numbers, so the warehouse is polled once per distinct query, not once
per subscriber, and subscribers hear only changes. With Redis (`settings.redis_url`) the processes of
a deployment share that work: a lease (`SET NX PX`, renewed while polling) elects one poller per
query, which publishes changed results on the channel `hbi:live:<hash>` and keeps the latest one
under `hbi:live:<hash>:latest`, so a subscriber joining in any process gets it at once. Without
Redis, or when Redis fails, every process polls for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from headless_bi.errors import INTERNAL, HeadlessBIError, LimitExceededError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from headless_bi.runtime import Runtime
    from headless_bi.security.context import SecurityContext

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "hbi:live:"
MAX_INTERVAL_S = 3600.0  # a longer interval is polled hourly
MAX_KEEP_S = 3600.0  # the latest result stays in Redis at most this long
_LARGE_PAYLOAD = 256 * 1024  # decode bigger Redis payloads in a thread, off the event loop
# Compare-and-renew / compare-and-delete: a process only touches a lease it still holds.
_IF_HELD = "if redis.call('get', KEYS[1]) == ARGV[1] then return "
_RENEW = _IF_HELD + "redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = _IF_HELD + "redis.call('del', KEYS[1]) end return 0"


@dataclass(frozen=True)
class LiveUpdate:
    """One result of a live query, sent when it differs from the previous one."""

    data: list[dict[str, Any]]
    refreshed_at: datetime


class LiveError(HeadlessBIError):
    """A poll failed (possibly in another process): keeps the original error's code and message."""

    def __init__(self, message: str, code: str = INTERNAL):
        super().__init__(message)
        self.code = code


def live_key(query: dict[str, Any], context_key: str) -> str:
    """Identity of a subscription: the normalised query JSON and the security context."""
    canonical = json.dumps([query, context_key], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass
class _Snapshot:
    """A poll's result, encoded once: the fingerprint decides "changed", the payload goes to Redis."""

    update: LiveUpdate
    fingerprint: str
    payload: str


def _snapshot(data: list[dict[str, Any]], refreshed_at: datetime) -> _Snapshot:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
    rows = json.dumps(data, separators=(",", ":"), default=str)  # column order as the query gave it
    payload = f'{{"fp":"{fingerprint}","refreshed_at":"{refreshed_at.isoformat()}","data":{rows}}}'
    return _Snapshot(LiveUpdate(data, refreshed_at), fingerprint, payload)


def _error_payload(error: HeadlessBIError) -> str:
    return json.dumps({"error": {"message": error.message, "code": error.code}})


def _as_user_error(exc: Exception) -> HeadlessBIError:
    """User errors pass through; anything else is logged and hidden behind a generic message."""
    if isinstance(exc, HeadlessBIError):
        return exc
    log.error("live query poll failed", exc_info=exc)
    return LiveError(f"Live query failed: internal error ({type(exc).__name__}).")


class _Mailbox:
    """Latest-only delivery to one subscriber: a slow reader skips stale results instead of queueing."""

    def __init__(self) -> None:
        self._item: LiveUpdate | BaseException | None = None
        self._ready = asyncio.Event()

    def put(self, item: LiveUpdate | BaseException) -> None:
        if not isinstance(self._item, BaseException):  # an error is final
            self._item = item
            self._ready.set()

    async def get(self) -> LiveUpdate | BaseException:
        await self._ready.wait()
        self._ready.clear()
        item, self._item = self._item, None
        assert item is not None
        return item


@dataclass(eq=False)
class _Channel:
    """One polling loop and its subscribers (each with the interval it asked for)."""

    key: str
    query: dict[str, Any]
    security: SecurityContext | None = None  # whose policies the query runs under
    subscribers: dict[_Mailbox, float] = field(default_factory=dict)
    latest: LiveUpdate | None = None
    fingerprint: str | None = None
    task: asyncio.Task[None] | None = None
    leading: bool = False
    failed: bool = False

    def interval(self, default: float) -> float:
        return min(self.subscribers.values(), default=default)

    def join(self, mailbox: _Mailbox, interval_s: float) -> None:
        self.subscribers[mailbox] = interval_s
        if self.latest is not None:
            mailbox.put(self.latest)

    def deliver(self, update: LiveUpdate, fingerprint: str) -> bool:
        """Send `update` if it differs from the last one; True when it did."""
        if fingerprint == self.fingerprint:
            return False
        self.latest, self.fingerprint = update, fingerprint
        for mailbox in self.subscribers:
            mailbox.put(update)
        return True

    def fail(self, error: BaseException) -> None:
        self.failed = True
        for mailbox in self.subscribers:
            mailbox.put(error)


async def rechecked(
    updates: AsyncIterator[LiveUpdate], every_s: float, check: Callable[[], Awaitable[None]]
) -> AsyncIterator[LiveUpdate]:
    """`updates`, with `check()` awaited before each one is passed on and at least every `every_s`
    while none comes: a subscriber who loses access is cut off (`check` raises) even when the
    result never changes, instead of keeping a stream open that only a change would re-check."""
    iterator = aiter(updates)
    pending: asyncio.Future[LiveUpdate] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=every_s)
            await check()
            if done:
                update, pending = pending.result(), None  # StopAsyncIteration at the end
                yield update
    except StopAsyncIteration:
        return
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class LiveHub:
    """Live queries of one process; `subscribe` is what the GraphQL `live` resolver iterates."""

    def __init__(self, runtime: Runtime, *, redis_url: str | None = None, prefix: str | None = None):
        self._runtime = runtime
        self._redis_url = redis_url if redis_url is not None else runtime.settings.redis_url
        self.prefix = prefix or runtime.settings.live_prefix or DEFAULT_PREFIX
        self._channels: dict[str, _Channel] = {}
        self._redis: Redis | None = None
        self.polls = 0  # polls this process ran, for /healthz and tests
        self._open: Counter[str] = Counter()  # open subscriptions per user ("" for the operator)

    async def subscribe(
        self, query: dict[str, Any], interval_s: float, security: SecurityContext | None = None
    ) -> AsyncIterator[LiveUpdate]:
        """The current result at once, then each changed result; a failed poll raises and ends it.

        Subscribers share a poll only with the same query and the same policy key (roles and
        attributes): one user's result is never pushed to another who may see other rows.
        """
        user = "" if security is None else security.user
        self._admit(user)
        self._open[user] += 1
        try:
            async for update in self._follow(query, interval_s, security):
                yield update
        finally:
            self._open[user] -= 1
            if self._open[user] <= 0:
                del self._open[user]

    def _admit(self, user: str) -> None:
        """Polls are not rate limited per query, so open streams are capped: per user and in all."""
        settings = self._runtime.settings
        if sum(self._open.values()) >= settings.live_max_total:
            raise LimitExceededError(
                f"this server already serves {settings.live_max_total} live queries: try again later"
            )
        if user and self._open[user] >= settings.live_max_per_user:
            raise LimitExceededError(
                f"user '{user}' already has {settings.live_max_per_user} live queries open: "
                "close one first"
            )

    async def _follow(
        self, query: dict[str, Any], interval_s: float, security: SecurityContext | None
    ) -> AsyncIterator[LiveUpdate]:
        interval = min(max(float(interval_s), self._runtime.settings.live_min_interval_s), MAX_INTERVAL_S)
        # The model version is part of the key: after a reload nobody is served the old model's result.
        scope = "operator" if security is None else f"sec:{security.policy_key}"
        key = live_key(query, f"{scope}|{self._runtime.model.version}")
        channel = self._channels.get(key)
        if channel is None or channel.failed:
            channel = self._channels[key] = _Channel(key, query, security)
            channel.task = asyncio.create_task(self._run(channel), name=f"hbi-live-{key[:12]}")
        mailbox = _Mailbox()
        channel.join(mailbox, interval)
        try:
            while True:
                item = await mailbox.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            channel.subscribers.pop(mailbox, None)
            if not channel.subscribers:
                self._forget(channel)
                if channel.task is not None:
                    channel.task.cancel()

    def stats(self) -> dict[str, Any]:
        return {
            "queries": len(self._channels),
            "subscribers": sum(len(c.subscribers) for c in self._channels.values()),
            "leading": sum(c.leading for c in self._channels.values()),
            "polls": self.polls,
            "redis": bool(self._redis_url),
        }

    async def aclose(self) -> None:
        """Stop every loop (releasing Redis leases) and close the Redis client."""
        tasks = [c.task for c in self._channels.values() if c.task is not None]
        self._channels.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # --- polling -------------------------------------------------------------------------------

    def _forget(self, channel: _Channel) -> None:
        if self._channels.get(channel.key) is channel:
            del self._channels[channel.key]

    async def _run(self, channel: _Channel) -> None:
        try:
            if self._redis_url:
                from redis.exceptions import RedisError

                try:
                    relay = _RedisRelay(self._client(), self.prefix)
                    await relay.run(channel, self._poll, self._runtime.settings.live_min_interval_s)
                    return
                except (RedisError, OSError) as exc:
                    log.warning(
                        "live query %s: Redis unavailable (%s); polling in this process", channel.key, exc
                    )
            await self._poll_locally(channel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            channel.fail(_as_user_error(exc))
        finally:
            channel.leading = False
            self._forget(channel)

    async def _poll_locally(self, channel: _Channel) -> None:
        channel.leading = True
        default = self._runtime.settings.live_min_interval_s
        while True:
            snapshot = await self._poll(channel)
            channel.deliver(snapshot.update, snapshot.fingerprint)
            await asyncio.sleep(channel.interval(default))

    async def _poll(self, channel: _Channel) -> _Snapshot:
        """Run the query through the runtime (a worker thread) and encode the rows off the loop too."""
        self.polls += 1
        result = await self._runtime.run(channel.query, security=channel.security)
        return await asyncio.to_thread(lambda: _snapshot(result.data, datetime.now(UTC)))

    def _client(self) -> Redis:
        if self._redis is None:
            from redis.asyncio import from_url

            assert self._redis_url is not None
            self._redis = from_url(self._redis_url)
        return self._redis


class _RedisRelay:
    """The Redis side of one channel: lease, publish on change, follow other processes' results."""

    def __init__(self, redis: Redis, prefix: str):
        self.redis = redis
        self.prefix = prefix
        self.token = uuid.uuid4().hex

    async def run(
        self, channel: _Channel, poll: Callable[[_Channel], Awaitable[_Snapshot]], default_interval: float
    ) -> None:
        name = f"{self.prefix}{channel.key}"
        latest_key, lease_key = f"{name}:latest", f"{name}:lease"
        loop = asyncio.get_running_loop()
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(name)
            stored = await self.redis.get(latest_key)
            if stored is not None and not await self._apply(channel, stored):
                return
            next_poll = loop.time()
            while True:
                if loop.time() >= next_poll:
                    interval = channel.interval(default_interval)
                    lease_ms = int(max(3 * interval, 2.0) * 1000)
                    channel.leading = await self._hold(lease_key, lease_ms)
                    if channel.leading:
                        try:
                            snapshot = await self._renewing(poll(channel), lease_key, lease_ms)
                        except Exception as exc:
                            error = _as_user_error(exc)
                            async with self.redis.pipeline(transaction=False) as pipe:
                                pipe.delete(latest_key)
                                pipe.publish(name, _error_payload(error))
                                await pipe.execute()
                            channel.fail(error)
                            return
                        keep_ms = int(min(max(10 * interval, 60.0), MAX_KEEP_S) * 1000)
                        if channel.deliver(snapshot.update, snapshot.fingerprint):
                            async with self.redis.pipeline(transaction=False) as pipe:
                                pipe.set(latest_key, snapshot.payload, px=keep_ms)
                                pipe.publish(name, snapshot.payload)
                                await pipe.execute()
                        else:
                            await self.redis.pexpire(latest_key, keep_ms)
                    next_poll = loop.time() + interval
                wait = max(next_poll - loop.time(), 0.01)
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
                if message is not None and not await self._apply(channel, message["data"]):
                    return
        finally:
            with contextlib.suppress(Exception):
                if channel.leading:
                    await self.redis.eval(_RELEASE, 1, lease_key, self.token)
                await pubsub.aclose()

    async def _hold(self, lease_key: str, lease_ms: int) -> bool:
        """Take the lease if free, or renew it if this process holds it."""
        if await self.redis.set(lease_key, self.token, nx=True, px=lease_ms):
            return True
        return bool(await self.redis.eval(_RENEW, 1, lease_key, self.token, lease_ms))

    async def _renewing(self, work: Awaitable[_Snapshot], lease_key: str, lease_ms: int) -> _Snapshot:
        """Await `work` while renewing the lease, so a slow query does not hand polling to another process."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(lease_ms / 3000)
                await self.redis.eval(_RENEW, 1, lease_key, self.token, lease_ms)

        renewer = asyncio.create_task(renew())
        try:
            return await work
        finally:
            renewer.cancel()

    @staticmethod
    async def _apply(channel: _Channel, raw: bytes | str) -> bool:
        """Deliver a payload from Redis; False when it carried an error (the stream ends)."""
        if len(raw) > _LARGE_PAYLOAD:
            message = await asyncio.to_thread(json.loads, raw)
        else:
            message = json.loads(raw)
        if "error" in message:
            error = message["error"]
            channel.fail(LiveError(error.get("message", "Live query failed."), error.get("code", INTERNAL)))
            return False
        refreshed_at = datetime.fromisoformat(message["refreshed_at"])
        channel.deliver(LiveUpdate(message["data"], refreshed_at), message["fp"])
        return True
