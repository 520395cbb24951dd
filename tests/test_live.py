"""LiveHub: first result at once, then only changes; one loop per distinct query; Redis fan-out.

The warehouse is an in-memory DuckDB the test writes to through the runtime's own connection, so a
change is visible to the next poll. The Redis tests run two hubs on separate Redis clients, as two
API processes would, under a key prefix unique to the run, and delete their keys afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import _missing

from headless_bi.errors import HeadlessBIError, LimitExceededError, QueryError
from headless_bi.live import LiveHub, LiveUpdate, live_key
from headless_bi.runtime import Runtime, Settings
from headless_bi.security import SecurityContext

REDIS_URL = os.environ.get("HBI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MODEL = (Path(__file__).parent / "models" / "live" / "events.yml").read_text()
COUNT = {"measures": ["events.count", "events.amount"]}
BY_KIND = {"measures": ["events.count"], "dimensions": ["events.kind"], "order": {"events.kind": "asc"}}
CTX = SecurityContext.create("ana", ["Analyst"], {"region": "EU"})
OTHER_ROLE = SecurityContext.create("vic", ["Viewer"], {"region": "EU"})
INTERVAL = 0.05


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "events.yml").write_text(MODEL)
    settings = Settings(models=str(tmp_path / "models"), warehouse=":memory:", live_min_interval_s=INTERVAL)
    rt = Runtime.start(settings)
    rt.warehouse.execute("CREATE TABLE events (id INTEGER, kind VARCHAR, amount DECIMAL(10, 2))")
    rt.warehouse.execute("INSERT INTO events VALUES (1, 'a', 1.50), (2, 'b', 2.25)")
    yield rt
    rt.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        _missing(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"hbi:test:{uuid.uuid4().hex[:12]}:live:"
    yield prefix
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


class Reader:
    """Reads a live stream in a background task, so waiting with a timeout never cancels the stream."""

    def __init__(self, stream: AsyncIterator[LiveUpdate]):
        self.queue: asyncio.Queue[LiveUpdate | BaseException | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump(stream))

    async def _pump(self, stream: AsyncIterator[LiveUpdate]) -> None:
        try:
            async for update in stream:
                self.queue.put_nowait(update)
        except Exception as exc:
            self.queue.put_nowait(exc)
        self.queue.put_nowait(None)

    async def next(self, timeout: float = 5.0) -> LiveUpdate:
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        if item is None:
            raise StopAsyncIteration
        return item

    async def nothing_within(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        assert self.queue.empty(), f"unexpected update: {self.queue.get_nowait()}"

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def insert(runtime: Runtime, row: tuple[int, str, float]) -> None:
    runtime.warehouse.execute(f"INSERT INTO events VALUES ({row[0]}, '{row[1]}', {row[2]})")


def counts(update: LiveUpdate) -> dict[str, Any]:
    return update.data[0]


def test_first_result_at_once_then_only_changes(runtime: Runtime) -> None:
    async def main() -> None:
        hub = LiveHub(runtime, redis_url="")
        stream = Reader(hub.subscribe(COUNT, INTERVAL, CTX))
        first = await stream.next()
        assert counts(first) == {"events.count": 2, "events.amount": 3.75}
        await stream.nothing_within(6 * INTERVAL)  # polls continue, nothing changed
        assert hub.polls >= 3
        insert(runtime, (3, "a", 10))
        second = await stream.next()
        assert counts(second) == {"events.count": 3, "events.amount": 13.75}
        assert second.refreshed_at > first.refreshed_at
        await stream.close()
        await hub.aclose()

    asyncio.run(main())


def test_identical_subscriptions_share_one_loop(runtime: Runtime) -> None:
    async def main() -> None:
        hub = LiveHub(runtime, redis_url="")
        one = Reader(hub.subscribe(BY_KIND, INTERVAL, CTX))
        # the same query with keys in another order is the same subscription
        same = {"order": {"events.kind": "asc"}, "dimensions": ["events.kind"], "measures": ["events.count"]}
        two = Reader(hub.subscribe(same, INTERVAL, CTX))
        other_context = Reader(hub.subscribe(BY_KIND, INTERVAL, OTHER_ROLE))
        first = [await s.next() for s in (one, two, other_context)]
        assert first[0].data == first[1].data == first[2].data
        assert hub.stats()["queries"] == 2 and hub.stats()["subscribers"] == 3
        await other_context.close()

        before = hub.polls
        await asyncio.sleep(20 * INTERVAL)
        polls = hub.polls - before
        assert 10 <= polls <= 22, polls  # one loop: ~20 polls; two loops would make ~40

        insert(runtime, (3, "c", 1))
        assert (await one.next()).data == (await two.next()).data
        await one.close()
        assert hub.stats()["queries"] == 1  # still polled for the second subscriber
        await two.close()
        await asyncio.sleep(0)
        assert hub.stats() | {"polls": 0} == {
            "queries": 0,
            "subscribers": 0,
            "leading": 0,
            "polls": 0,
            "redis": False,
        }
        stopped = hub.polls
        await asyncio.sleep(5 * INTERVAL)
        assert hub.polls == stopped  # the loop stopped with its last subscriber
        await hub.aclose()

    asyncio.run(main())


def test_interval_clamped_to_minimum(runtime: Runtime) -> None:
    async def main() -> None:
        hub = LiveHub(runtime, redis_url="")
        stream = Reader(hub.subscribe(COUNT, 0.0, CTX))
        await stream.next()
        before = hub.polls
        await asyncio.sleep(10 * INTERVAL)
        assert hub.polls - before <= 11  # a zero interval would poll as fast as DuckDB answers
        await stream.close()
        await hub.aclose()

    asyncio.run(main())


def test_open_streams_are_capped_per_user_and_in_all(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "events.yml").write_text(MODEL)
    settings = Settings(
        models=str(tmp_path / "models"), warehouse=":memory:", live_min_interval_s=INTERVAL,
        live_max_per_user=2, live_max_total=3,
    )  # fmt: skip
    rt = Runtime.start(settings)
    rt.warehouse.execute("CREATE TABLE events (id INTEGER, kind VARCHAR, amount DECIMAL(10, 2))")

    async def main() -> None:
        hub = LiveHub(rt, redis_url="")
        mine = [Reader(hub.subscribe({**COUNT, "limit": n}, INTERVAL, CTX)) for n in (1, 2)]
        for stream in mine:
            await stream.next()
        third = Reader(hub.subscribe({**COUNT, "limit": 3}, INTERVAL, CTX))
        with pytest.raises(LimitExceededError, match="user 'ana' already has 2 live queries"):
            await third.next()
        other = Reader(hub.subscribe(COUNT, INTERVAL, OTHER_ROLE))  # another user: 3 in all
        await other.next()
        fourth = Reader(hub.subscribe(COUNT, INTERVAL, SecurityContext.create("zoe", ["Analyst"])))
        with pytest.raises(LimitExceededError, match="already serves 3 live queries"):
            await fourth.next()
        await mine[0].close()  # a closed stream frees its place
        again = Reader(hub.subscribe({**COUNT, "limit": 4}, INTERVAL, CTX))
        await again.next()
        for stream in (*mine, third, other, fourth, again):
            await stream.close()
        await hub.aclose()

    asyncio.run(main())
    rt.close()


def test_poll_error_ends_the_stream(runtime: Runtime) -> None:
    async def main() -> None:
        hub = LiveHub(runtime, redis_url="")
        stream = Reader(hub.subscribe(COUNT, INTERVAL, CTX))
        await stream.next()
        runtime.warehouse.execute("DROP TABLE events")
        with pytest.raises(QueryError):
            await stream.next()
        with pytest.raises(StopAsyncIteration):
            await stream.next()
        assert hub.stats()["queries"] == 0
        # a bad query fails its subscriber at once
        with pytest.raises(QueryError, match="Unknown"):
            await Reader(hub.subscribe({"measures": ["events.nope"]}, INTERVAL, CTX)).next()
        await hub.aclose()

    asyncio.run(main())


def test_key_normalises_query_and_separates_contexts() -> None:
    assert live_key({"a": 1, "b": [1, 2]}, "x") == live_key({"b": [1, 2], "a": 1}, "x")
    assert live_key({"a": 1}, "x") != live_key({"a": 1}, "y")
    assert live_key({"b": [1, 2]}, "x") != live_key({"b": [2, 1]}, "x")


def test_redis_one_poller_serves_two_processes(runtime: Runtime, redis_prefix: str) -> None:
    # Two hubs on one warehouse stand for two API processes; only the lease holder polls.
    async def main() -> None:
        first_hub = LiveHub(runtime, redis_url=REDIS_URL, prefix=redis_prefix)
        second_hub = LiveHub(runtime, redis_url=REDIS_URL, prefix=redis_prefix)
        a = Reader(first_hub.subscribe(COUNT, INTERVAL, CTX))
        assert counts(await a.next())["events.count"] == 2
        b = Reader(second_hub.subscribe(COUNT, INTERVAL, CTX))
        assert counts(await b.next(timeout=1))["events.count"] == 2  # from the stored latest

        await asyncio.sleep(20 * INTERVAL)
        assert first_hub.stats()["leading"] == 1 and second_hub.stats()["leading"] == 0
        assert second_hub.polls == 0 and first_hub.polls >= 10

        insert(runtime, (3, "a", 1))
        assert counts(await a.next())["events.count"] == 3
        assert counts(await b.next())["events.count"] == 3  # through pub/sub

        # the poller's last subscriber leaves: the lease is released and the other process takes over
        await a.close()
        await asyncio.sleep(5 * INTERVAL)
        assert second_hub.stats()["leading"] == 1
        first_polls = first_hub.polls
        insert(runtime, (4, "a", 1))
        assert counts(await b.next())["events.count"] == 4
        # the new row came through the second process's polls: the first one polls no more (counting
        # the second's polls instead races with a poll that started before the insert)
        assert first_hub.polls == first_polls and second_hub.polls > 0

        await b.close()
        await first_hub.aclose()
        await second_hub.aclose()

    asyncio.run(main())


def test_redis_error_reaches_subscribers_in_every_process(runtime: Runtime, redis_prefix: str) -> None:
    async def main() -> None:
        hubs = [LiveHub(runtime, redis_url=REDIS_URL, prefix=redis_prefix) for _ in range(2)]
        streams = [Reader(hub.subscribe(COUNT, INTERVAL, CTX)) for hub in hubs]
        for stream in streams:
            await stream.next()
        runtime.warehouse.execute("DROP TABLE events")
        for stream in streams:
            with pytest.raises(HeadlessBIError) as raised:  # QueryError here, LiveError in the follower
                await stream.next()
            assert raised.value.code == "BAD_QUERY" and "events" in raised.value.message
        for hub in hubs:
            await hub.aclose()

    asyncio.run(main())


def test_unreachable_redis_falls_back_to_local_polling(runtime: Runtime) -> None:
    async def main() -> None:
        hub = LiveHub(runtime, redis_url="redis://127.0.0.1:1/0")
        stream = Reader(hub.subscribe(COUNT, INTERVAL, CTX))
        assert counts(await stream.next())["events.count"] == 2
        await stream.close()
        await hub.aclose()

    asyncio.run(main())
