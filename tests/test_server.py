"""The running service, end to end: `headless-bi serve` in a subprocess, real HTTP and WebSocket clients.

- TPC-H sf0.1 in DuckDB with `semantic_models/tpch` (plus a deliberately slow cube): the same numbers
  as the CLI, /healthz, GraphiQL, clean 4xx answers, and a slow query that blocks nobody.
- Live queries on PostgreSQL (its own schema per run, so the test can write while the server reads):
  an update is pushed after the data changes, identical subscriptions share one polling loop, and
  with Redis two server processes poll once between them.
- `--watch`: editing a model file swaps the schema without dropping WebSocket connections; a broken
  model is logged and the old version keeps serving.

The WebSocket client speaks graphql-transport-ws by hand (connection_init/ack, subscribe, next,
complete, ping/pong), so the protocol itself is under test, not a client library's reading of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from conftest import _missing
from psycopg.conninfo import conninfo_to_dict

from headless_bi.semantic.loader import load_models
from headless_bi.warehouse.files import load_files

REPO = Path(__file__).resolve().parents[1]
TPCH_MODELS = REPO / "semantic_models" / "tpch"
TPCH_TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
REDIS_URL = os.environ.get("HBI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_PASSWORD = "admin-test-password"
START_TIMEOUT_S = 90

LOAD = "query Load($q: QueryInput!) { load(query: $q) { data } }"
LIVE = (
    "subscription Live($q: QueryInput!, $i: Int) "
    "{ live(query: $q, intervalSeconds: $i) { data refreshedAt } }"
)
TYPED_Q1 = """{
  cube(where: {lineitem: {shipdate: {beforeOrOnDate: "1998-09-02"}}},
       orderBy: {lineitem: {returnflag: asc, linestatus: asc}}) {
    lineitem {
      returnflag linestatus quantity extended_price revenue charge avg_quantity avg_price avg_discount count
    }
  }
}"""
TYPED_Q6 = """{
  cube(where: {lineitem: {shipdate: {inDateRange: ["1994-01-01", "1994-12-31"]},
                          discount: {gte: 0.05, lte: 0.07}, quantity_value: {lt: 24}}}) {
    lineitem { discount_amount }
  }
}"""

# The TPC-H questions as semantic queries, shared with the answer tests and the benchmarks.
QUESTIONS = json.loads((TPCH_MODELS / "tpch_questions.json").read_text())
Q1, Q6 = QUESTIONS["Q1"], QUESTIONS["Q6"]
SMALL = {
    "measures": ["orders.count"],
    "dimensions": ["orders.orderstatus"],
    "order": {"orders.orderstatus": "asc"},
}
# ~600M hashed rows: seconds of DuckDB work on any machine, with no data to generate.
SLOW_CUBE = """
cubes:
  - name: slow
    sql: "SELECT r AS id, hash(r) % 7 AS bucket FROM range(600000000) t(r)"
    dimensions:
      - name: id
        sql: id
        type: number
        primary_key: true
    measures:
      - name: buckets
        sql: bucket
        type: sum
"""
EVENTS_CUBE = (Path(__file__).parent / "models" / "live" / "events.yml").read_text()
EVENTS_QUERY = {"measures": ["events.count", "events.amount"]}


# --- the server process ------------------------------------------------------------------------


class Server:
    """`headless-bi serve --port 0` in a subprocess; the URL comes from its start-up banner."""

    def __init__(
        self,
        models: Path,
        warehouse: str,
        workdir: Path,
        *,
        watch: bool = False,
        env: dict[str, str] | None = None,
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "headless_bi.cli",
            "serve",
            "--models",
            str(models),
            "--warehouse",
            warehouse,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ] + (["--watch"] if watch else [])
        environment = {k: v for k, v in os.environ.items() if not k.startswith("HBI_")}
        environment.update(
            HBI_METADATA_URL=f"sqlite:///{workdir}/metadata.db",
            HBI_SECRET_KEY="test-secret-key-0123456789-abcdefghij",
            HBI_ADMIN_PASSWORD=ADMIN_PASSWORD,
            HBI_LIVE_MIN_INTERVAL_S="0.1",
            HBI_ANONYMOUS_ROLE="Admin",  # these tests predate authentication; test_identity.py covers it
            PYTHONUNBUFFERED="1",
        )
        environment.update(env or {})  # may override the defaults above (e.g. HBI_ANONYMOUS_ROLE="")
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            command, cwd=workdir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(START_TIMEOUT_S) or not self.url:
            self.stop()
            pytest.fail(f"server did not start:\n{self.output}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = re.search(r"GraphQL\s+(http://\S+)/graphql", line)
            if found:
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()  # exited

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "/healthz", timeout=10).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def bearer(server: Server, name: str, password: str) -> dict[str, str]:
    """The Authorization header of a token from the server's login endpoint."""
    response = httpx.post(server.url + "/auth/token", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def graphql(server: Server, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(server.url + "/graphql", json={"query": query, "variables": variables}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def query_input(query: dict[str, Any]) -> dict[str, Any]:
    """Cube's query JSON as GraphQL's `QueryInput`: order as [{id, desc}], filter values as strings."""
    out = dict(query)
    order = query.get("order")
    if order is not None:
        pairs = list(order.items()) if isinstance(order, dict) else order
        out["order"] = [{"id": member, "desc": direction == "desc"} for member, direction in pairs]
    if "filters" in query:
        out["filters"] = [
            {**f, "values": [str(v) for v in f["values"]]} if "values" in f else f for f in query["filters"]
        ]
    return out


def load(server: Server, query: dict[str, Any]) -> list[dict[str, Any]]:
    body = graphql(server, LOAD, {"q": query_input(query)})
    assert not body.get("errors"), body
    return body["data"]["load"]["data"]


def cli_rows(models: Path, warehouse: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "headless_bi.cli",
            "query",
            "--models",
            str(models),
            "--warehouse",
            warehouse,
            "--query",
            json.dumps(query),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["data"]


def wait_until(condition: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class GraphQLWS:
    """A graphql-transport-ws client written out message by message."""

    def __init__(self, connection: websockets.ClientConnection):
        self.connection = connection

    @classmethod
    async def open(cls, url: str) -> GraphQLWS:
        connection = await websockets.connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10)
        assert connection.subprotocol == "graphql-transport-ws"
        client = cls(connection)
        await client.send({"type": "connection_init", "payload": {}})
        assert await client.receive() == {"type": "connection_ack"}
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.connection.recv(), timeout))

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any]) -> None:
        payload = {"query": query, "variables": variables}
        await self.send({"id": op_id, "type": "subscribe", "payload": payload})

    async def next_payload(self, op_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next `next` payload for `op_id`, answering server pings on the way."""
        while True:
            message = await self.receive(timeout)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            assert message.get("id") == op_id, message
            assert message["type"] == "next", message
            return message["payload"]

    async def ping(self, timeout: float = 2.0) -> float:
        """Round trip of a protocol ping, in seconds."""
        started = time.perf_counter()
        await self.send({"type": "ping"})
        assert (await self.receive(timeout))["type"] == "pong"
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.connection.close()


async def live_rows(client: GraphQLWS, op_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    payload = await client.next_payload(op_id, timeout)
    assert not payload.get("errors"), payload
    return payload["data"]["live"]["data"]


# --- fixtures ------------------------------------------------------------------------------------


def tpch_duckdb(shared_data: Path, folder: Path) -> Path:
    path = folder / "tpch.duckdb"
    if not path.exists():
        tpch = shared_data / "tpch_sf0.1"
        load_files([tpch / f"{t}.parquet" for t in TPCH_TABLES], str(path))
    return path


@pytest.fixture(scope="module")
def tpch_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`semantic_models/tpch` plus the slow cube."""
    models = tmp_path_factory.mktemp("models") / "tpch"
    shutil.copytree(TPCH_MODELS, models)
    (models / "slow.yml").write_text(SLOW_CUBE)
    return models


@pytest.fixture(scope="module")
def tpch_server(
    shared_data: Path, tpch_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("tpch_server")
    warehouse = tpch_duckdb(shared_data, folder)
    server = Server(tpch_models, str(warehouse), folder / "work", env={"HBI_QUERY_THREADS": "8"})
    server.warehouse = str(warehouse)  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        _missing(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="module")
def pg_events(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A PostgreSQL schema of its own with an `events` table, the URL to serve it, and a models dir."""
    schema = f"hbi_server_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".events (id integer, kind text, amount numeric(10,2))')
        conn.execute(f"INSERT INTO \"{schema}\".events VALUES (1, 'a', 1.50), (2, 'b', 2.25)")
    params = conninfo_to_dict(pg_dsn)
    auth = params.get("user", "postgres") + (f":{params['password']}" if params.get("password") else "")
    url = (
        f"postgresql://{auth}@{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/"
        f"{params.get('dbname', 'test')}?options=-csearch_path%3D{schema}"
    )
    models = tmp_path_factory.mktemp("events_models")
    (models / "events.yml").write_text(EVENTS_CUBE)
    yield {"dsn": pg_dsn, "schema": schema, "url": url, "models": models}
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def add_event(pg_events: dict[str, Any], event_id: int, amount: str) -> None:
    with psycopg.connect(pg_events["dsn"], autocommit=True) as conn:
        table = f'"{pg_events["schema"]}".events'
        conn.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)", [event_id, "c", amount])


@pytest.fixture(scope="module")
def pg_server(pg_events: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(pg_events["models"], pg_events["url"], tmp_path_factory.mktemp("pg_server"))
    yield server
    server.stop()


# --- TPC-H over HTTP -----------------------------------------------------------------------------


def test_healthz(tpch_server: Server, tpch_models: Path) -> None:
    response = httpx.get(tpch_server.url + "/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    version = load_models(tpch_models).version
    assert body["status"] == "ok" and body["warehouse_reachable"] is True
    assert body["model_version"] == body["schema_version"] == version


def test_favicon_is_an_empty_answer_not_a_404(tpch_server: Server) -> None:
    response = httpx.get(tpch_server.url + "/favicon.ico")
    assert response.status_code == 204 and response.content == b""


@pytest.mark.parametrize(("query", "typed"), [(Q1, TYPED_Q1), (Q6, TYPED_Q6)], ids=["q1", "q6"])
def test_typed_and_generic_queries_match_cli(
    tpch_server: Server, tpch_models: Path, query: dict[str, Any], typed: str
) -> None:
    expected = cli_rows(tpch_models, tpch_server.warehouse, query)  # type: ignore[attr-defined]
    assert expected and load(tpch_server, query) == expected
    body = graphql(tpch_server, typed)
    assert not body.get("errors"), body
    typed_rows = [row["lineitem"] for row in body["data"]["cube"]]
    assert typed_rows == [{key.split(".", 1)[1]: value for key, value in row.items()} for row in expected]


def test_query_errors_are_graphql_errors(tpch_server: Server) -> None:
    body = graphql(tpch_server, LOAD, {"q": {"measures": ["lineitem.revnue"]}})
    assert body["data"] is None
    (error,) = body["errors"]
    assert "lineitem.revenue" in error["message"] and error["extensions"]["code"] == "UNKNOWN_MEMBER"


def test_graphiql_in_the_browser(tpch_server: Server) -> None:
    response = httpx.get(tpch_server.url + "/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()
    # its scripts and styles come from the service (no CDN), unchanged (the SRI hashes still hold)
    assert "unpkg.com" not in response.text
    assets = re.findall(r'(?:src|href)="(graphql/assets/[^"]+)"', response.text)
    assert len(assets) >= 5
    for asset in assets:
        served = httpx.get(f"{tpch_server.url}/{asset}")
        assert served.status_code == 200 and len(served.content) > 100, asset


def test_get_query(tpch_server: Server) -> None:
    response = httpx.get(
        tpch_server.url + "/graphql",
        params={"query": LOAD, "variables": json.dumps({"q": query_input(SMALL)})},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["load"]["data"] == load(tpch_server, SMALL)


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b'{"query": "{ __typename }"', {"Content-Type": "application/json"}, 400),  # malformed JSON
        (b'"just a string"', {"Content-Type": "application/json"}, 400),
        (b"42", {"Content-Type": "application/json"}, 400),
        (b'{"query": 42}', {"Content-Type": "application/json"}, 400),
        (b'{"query": "{ __typename \xff }"}', {"Content-Type": "application/json"}, 400),  # not UTF-8
        (b'{"query": "{ __typename }"}', {"Content-Type": "text/plain"}, 415),
        (b"query=%7B__typename%7D", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (b'{"query": "{ __typename }"}', {}, 415),
        (b'{"query": "{ __typename }", "variables": []}', {"Content-Type": "application/json"}, 400),
        (b"{}", {"Content-Type": "application/json"}, 400),  # no query
    ],
)
def test_bad_requests_get_clean_json_errors(
    tpch_server: Server, content: bytes, headers: dict[str, str], status: int
) -> None:
    response = httpx.post(tpch_server.url + "/graphql", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    (error,) = response.json()["errors"]
    assert error["message"] and error["extensions"]["code"]
    assert "Traceback" not in response.text


def test_wrong_method_is_405_json(tpch_server: Server) -> None:
    response = httpx.put(tpch_server.url + "/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


def test_oversized_bodies_are_refused(tpch_server: Server) -> None:
    body = json.dumps({"query": "{ __typename }", "variables": {"pad": "x" * 1_100_000}}).encode()
    declared = httpx.post(
        tpch_server.url + "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = httpx.post(
        tpch_server.url + "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    # just under the limit still works
    small = {"query": "{ __typename }", "variables": {"pad": "x" * 900_000}}
    assert httpx.post(tpch_server.url + "/graphql", json=small).status_code == 200


def test_slow_query_blocks_nobody(tpch_server: Server) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(base_url=tpch_server.url, timeout=120) as client:
            ws = await GraphQLWS.open(tpch_server.ws_url)
            slow_request = {"query": LOAD, "variables": {"q": {"measures": ["slow.buckets"]}}}
            small_request = {"query": LOAD, "variables": {"q": query_input(SMALL)}}
            slow = asyncio.create_task(client.post("/graphql", json=slow_request))
            await asyncio.sleep(0.2)  # the slow query is running in DuckDB now
            probes: list[tuple[float, float, float]] = []  # answered while the slow query still ran
            while not slow.done():
                t0 = time.perf_counter()
                health = await client.get("/healthz")
                health_s = time.perf_counter() - t0
                assert health.status_code == 200 and health.json()["warehouse_reachable"]
                t0 = time.perf_counter()
                small = await client.post("/graphql", json=small_request)
                small_s = time.perf_counter() - t0
                assert small.json()["data"] and small.json()["data"]["load"]["data"], small.text
                ping_s = await ws.ping()
                if not slow.done():
                    probes.append((health_s, small_s, ping_s))
                await asyncio.sleep(0.05)
            assert len(probes) >= 2, "the slow query finished too early to prove anything"
            assert max(max(p) for p in probes) < 1.0, probes
            response = slow.result()
            assert response.json()["data"]["load"]["data"][0]["slow.buckets"] > 0
            await ws.close()

    asyncio.run(main())


def test_admin_ui_is_mounted_at_root(tpch_server: Server) -> None:
    try:
        import fab_ui.app  # noqa: F401
    except ModuleNotFoundError:
        _missing("fab_ui is not installed: the admin UI cannot be checked")
    response = httpx.get(tpch_server.url + "/login/")
    assert response.status_code == 200
    assert 'name="username"' in response.text and 'name="password"' in response.text


def test_websocket_query_and_unknown_subprotocol(tpch_server: Server) -> None:
    async def main() -> None:
        ws = await GraphQLWS.open(tpch_server.ws_url)
        await ws.subscribe("q", LOAD, {"q": query_input(SMALL)})
        payload = await ws.next_payload("q")
        assert payload["data"]["load"]["data"] == load(tpch_server, SMALL)
        assert await ws.receive() == {"id": "q", "type": "complete"}
        await ws.close()
        with pytest.raises(websockets.exceptions.WebSocketException):
            async with websockets.connect(tpch_server.ws_url, subprotocols=["nonsense"]) as bad:
                await bad.recv()

    asyncio.run(main())


# --- live queries (PostgreSQL, Redis) ------------------------------------------------------------


def test_live_subscription_pushes_changes(pg_server: Server, pg_events: dict[str, Any]) -> None:
    async def main() -> None:
        ws = await GraphQLWS.open(pg_server.ws_url)
        await ws.subscribe("live", LIVE, {"q": EVENTS_QUERY, "i": 1})
        first = await live_rows(ws, "live")
        count = first[0]["events.count"]
        with pytest.raises(TimeoutError):  # polls with no change send nothing
            await ws.receive(timeout=2.5)
        add_event(pg_events, 100, "10.00")
        second = await live_rows(ws, "live", timeout=5)
        assert second[0]["events.count"] == count + 1
        assert second[0]["events.amount"] == pytest.approx(first[0]["events.amount"] + 10)
        await ws.send({"id": "live", "type": "complete"})
        stopped = await asyncio.to_thread(wait_until, lambda: pg_server.health()["live"]["queries"] == 0)
        assert stopped  # the loop stopped with its only subscriber
        await ws.ping()
        await ws.close()

    asyncio.run(main())


def test_identical_subscriptions_share_one_poll(pg_server: Server, pg_events: dict[str, Any]) -> None:
    async def main() -> None:
        clients = [await GraphQLWS.open(pg_server.ws_url) for _ in range(2)]
        for client in clients:
            await client.subscribe("s", LIVE, {"q": EVENTS_QUERY, "i": 1})
        first = [await live_rows(client, "s") for client in clients]
        assert first[0] == first[1]
        live = pg_server.health()["live"]
        assert live["queries"] == 1 and live["subscribers"] == 2
        before = live["polls"]
        await asyncio.sleep(4.2)
        polls = pg_server.health()["live"]["polls"] - before
        assert 3 <= polls <= 5, polls  # one loop at 1 s: 4; a loop per subscriber would make 8
        add_event(pg_events, 200, "1.00")
        updated = [await live_rows(client, "s", timeout=5) for client in clients]
        assert updated[0] == updated[1] and updated[0][0]["events.count"] == first[0][0]["events.count"] + 1
        for client in clients:
            await client.close()

    asyncio.run(main())


def test_invalid_live_query_is_refused(pg_server: Server) -> None:
    async def main() -> None:
        ws = await GraphQLWS.open(pg_server.ws_url)
        await ws.subscribe("bad", LIVE, {"q": {"measures": ["events.nope"]}, "i": 1})
        payload = await ws.next_payload("bad")
        assert payload["data"] is None and "events.nope" in payload["errors"][0]["message"]
        assert await ws.receive() == {"id": "bad", "type": "complete"}
        await ws.ping()  # the connection stays usable
        await ws.close()

    asyncio.run(main())


def test_poll_error_ends_the_subscription(pg_server: Server, pg_events: dict[str, Any]) -> None:
    table = f'"{pg_events["schema"]}".events'

    async def main() -> None:
        ws = await GraphQLWS.open(pg_server.ws_url)
        await ws.subscribe("gone", LIVE, {"q": EVENTS_QUERY, "i": 1})
        await live_rows(ws, "gone")
        with psycopg.connect(pg_events["dsn"], autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {table} RENAME TO events_away")
        try:
            payload = await ws.next_payload("gone", timeout=5)
            assert payload["errors"] and "events" in payload["errors"][0]["message"], payload
            assert await ws.receive() == {"id": "gone", "type": "complete"}
        finally:
            with psycopg.connect(pg_events["dsn"], autocommit=True) as conn:
                conn.execute(f'ALTER TABLE "{pg_events["schema"]}".events_away RENAME TO events')
        await ws.ping()
        await ws.close()

    asyncio.run(main())


def test_two_processes_share_one_poller_through_redis(
    pg_events: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    import redis

    prefix = f"hbi:test:{uuid.uuid4().hex[:12]}:live:"
    env = {"HBI_REDIS_URL": redis_url, "HBI_LIVE_PREFIX": prefix}
    servers = [Server(pg_events["models"], pg_events["url"], tmp_path / f"s{i}", env=env) for i in range(2)]

    async def main() -> None:
        clients = [await GraphQLWS.open(server.ws_url) for server in servers]
        await clients[0].subscribe("s", LIVE, {"q": EVENTS_QUERY, "i": 1})
        first = await live_rows(clients[0], "s")
        await clients[1].subscribe("s", LIVE, {"q": EVENTS_QUERY, "i": 1})
        assert await live_rows(clients[1], "s", timeout=0.9) == first  # the stored latest, before a poll
        await asyncio.sleep(2.5)
        lives = [server.health()["live"] for server in servers]
        assert [live["leading"] for live in lives] == [1, 0], lives
        assert lives[0]["polls"] >= 2 and lives[1]["polls"] == 0, lives

        add_event(pg_events, 300, "5.00")
        for client in clients:
            rows = await live_rows(client, "s", timeout=5)
            assert rows[0]["events.count"] == first[0]["events.count"] + 1
        for client in clients:
            await client.close()

    try:
        asyncio.run(main())
    finally:
        for server in servers:
            server.stop()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


# --- reload ---------------------------------------------------------------------------------------


def test_model_changes_swap_the_schema_without_dropping_connections(
    shared_data: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(TPCH_MODELS, models)
    warehouse = tpch_duckdb(shared_data, tmp_path)
    server = Server(models, str(warehouse), tmp_path / "work", watch=True)
    try:
        old_version = server.health()["model_version"]

        async def main() -> None:
            ws = await GraphQLWS.open(server.ws_url)  # opened on the old version
            lineitem = models / "lineitem.yml"
            lineitem.write_text(
                lineitem.read_text().replace(
                    "    measures:\n",
                    "    measures:\n      - name: max_quantity\n        sql: l_quantity\n        type: max\n",
                    1,
                )
            )
            health = await asyncio.to_thread(
                wait_until, lambda: (h := server.health())["schema_version"] != old_version and h
            )
            assert health, server.output
            assert health["model_version"] == health["schema_version"] == load_models(models).version
            new_query = {"measures": ["lineitem.max_quantity"]}
            assert load(server, new_query) == [{"lineitem.max_quantity": 50}]
            typed = "{ cube { lineitem { max_quantity } } }"  # a field only the new schema has
            expected = {"cube": [{"lineitem": {"max_quantity": 50.0}}]}
            assert graphql(server, typed)["data"] == expected
            await ws.subscribe("after", typed, {})  # the connection opened before the reload
            assert (await ws.next_payload("after"))["data"] == expected
            assert (await ws.receive())["type"] == "complete"

            # a broken model: logged, and the last good version keeps serving
            good_version = health["model_version"]
            (models / "broken.yml").write_text("cubes:\n  - name: broken\n    measures: [\n")
            logged = await asyncio.to_thread(
                wait_until, lambda: "do not load; still serving version" in server.output
            )
            assert logged, server.output
            health = server.health()
            assert health["model_version"] == health["schema_version"] == good_version
            assert load(server, new_query) == [{"lineitem.max_quantity": 50}]
            await ws.ping()

            # the reloadModels mutation goes through the same swap
            (models / "broken.yml").unlink()
            (models / "orders.yml").write_text((models / "orders.yml").read_text() + "\n# touched\n")
            reloaded = graphql(server, "mutation { reloadModels { version } }")["data"]["reloadModels"]
            assert reloaded["version"] == load_models(models).version != good_version
            health = server.health()
            assert health["model_version"] == health["schema_version"] == reloaded["version"]
            await ws.close()

        asyncio.run(main())
    finally:
        server.stop()
