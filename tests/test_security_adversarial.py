"""Adversarial checks on the demo model, through the real server: one user trying to see, infer or
keep seeing what another user or role must not.

`headless-bi serve` runs on `semantic_models/demo` and the generated demo warehouse, credentials
required. Users: analysts of DACH (`ada`) and UK & Ireland (`uli`), a DACH viewer (`vic`), an analyst
without a region (`nor`), a second admin (`dan`, added once the server runs) who is demoted during a
test, analysts whose access is revoked or disabled during a test (`kim`, `ina`), and users for the
abuse limits.

Written by an attacker's review; what it found is fixed (WebSocket operations re-check the caller,
sign-in attempts are limited, signing out voids copied cookies, the UI catalog follows the policies,
refused typed probes are audited) and these tests keep it so, beside the defences that held.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import websockets
from graphql_ws import GraphQLSocket
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_server import ADMIN_PASSWORD, Server, bearer

from headless_bi import cli
from headless_bi.security import tokens
from headless_bi.security.store import IdentityStore, Role, User

DEMO_MODELS = Path(__file__).resolve().parents[1] / "semantic_models" / "demo"
SERVER_SECRET = "test-secret-key-0123456789-abcdefghij"  # what test_server.Server gives the service
RATE_LIMIT = 40  # queries per user and minute on this server (the abuse-limit tests rely on it)
LOAD = "query($q: QueryInput!) { load(query: $q) { data total } }"
BY_REGION = {"measures": ["sales.revenue"], "dimensions": ["sales.region"]}
REGIONS = {"UK & Ireland", "DACH", "Benelux", "France", "Nordics"}


def run_cli(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(args))
    assert code == 0, (args, out.getvalue())
    return out.getvalue()


class Demo:
    """The running server, its metadata DB and the users' credentials (request headers)."""

    def __init__(self, server: Server, metadata_url: str, warehouse: str):
        self.server = server
        self.metadata_url = metadata_url
        self.warehouse = warehouse
        self.headers: dict[str, dict[str, str]] = {}

    def login(self, name: str, password: str) -> None:
        self.headers[name] = bearer(self.server, name, password)

    def gql(self, user: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            self.server.url + "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=self.headers[user],
            timeout=60,
        )
        return response.json()  # type: ignore[no-any-return]

    def load(self, user: str, query: dict[str, Any]) -> dict[str, Any]:
        body = self.gql(user, LOAD, {"q": query})
        assert not body.get("errors"), body
        return body["data"]["load"]  # type: ignore[no-any-return]

    def store(self) -> IdentityStore:
        return IdentityStore(self.metadata_url)

    def sql(self, text: str) -> list[tuple[Any, ...]]:
        """Plain SQL on the warehouse file, beside the server's own read-only connection."""
        with duckdb.connect(self.warehouse, read_only=True) as conn:
            rows = conn.sql(text).fetchall()
        return [tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in rows]

    def ui_session(self, user: str, password: str) -> httpx.Client:
        """A browser-like client signed into the admin UI with FAB's login form."""
        client = httpx.Client(base_url=self.server.url, follow_redirects=False, timeout=30)
        page = client.get("/login/")
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        assert csrf is not None, page.text[:300]
        form = {"username": user, "password": password, "csrf_token": csrf.group(1)}
        assert client.post("/login/", data=form).status_code == 302
        assert client.cookies.get("session")
        return client


USERS: dict[str, tuple[str, list[str]]] = {
    # name: (role, region attribute values)
    "ada": ("Analyst", ["DACH"]),
    "uli": ("Analyst", ["UK & Ireland"]),
    "vic": ("Viewer", ["DACH"]),
    "nor": ("Analyst", []),
    "kim": ("Analyst", ["DACH"]),
    "ina": ("Analyst", ["DACH"]),
    "rita": ("Analyst", ["DACH"]),
    "lou": ("Analyst", ["DACH"]),
    "aud": ("Viewer", ["DACH"]),
}


@pytest.fixture(scope="module")
def demo(demo_duckdb: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    work = tmp_path_factory.mktemp("adversarial_server")
    metadata_url = f"sqlite:///{work}/metadata.db"
    for name, (role, regions) in USERS.items():
        attrs = [arg for region in regions for arg in ("--attr", f"region={region}")]
        run_cli("users", "add", name, "--role", role, *attrs, "--password", f"{name}-pw-1",
                "--metadata-url", metadata_url)  # fmt: skip
    kim_key = run_cli("keys", "create", "kim-dash", "--user", "kim", "--metadata-url", metadata_url)
    env = {
        "HBI_ANONYMOUS_ROLE": "",  # credentials required, as in production
        "HBI_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT),
        "HBI_QUERY_THREADS": "4",
    }
    server = Server(DEMO_MODELS, demo_duckdb, work, env=env)
    demo = Demo(server, metadata_url, demo_duckdb)
    try:
        demo.login("admin", ADMIN_PASSWORD)  # created at the first start: only while no admin exists
        run_cli("users", "add", "dan", "--role", "Admin", "--password", "dan-pw-1",
                "--metadata-url", metadata_url)  # fmt: skip
        for name in ("ada", "uli", "vic", "nor", "dan", "ina", "rita", "aud"):
            demo.login(name, f"{name}-pw-1")
        demo.headers["kim-key"] = {"Authorization": f"Bearer {kim_key.strip().splitlines()[-1]}"}
        yield demo
    finally:
        server.stop()


def _regions(rows: list[dict[str, Any]]) -> set[str]:
    return {r["sales.region"] for r in rows}


# -- WebSocket ---------------------------------------------------------------------------------


def _set_roles(demo: Demo, user: str, *roles: str) -> None:
    with Session(demo.store().engine) as session:
        record = session.scalar(select(User).where(User.username == user))
        assert record is not None
        record.roles = [r for r in session.scalars(select(Role).where(Role.name.in_(roles)))]
        session.commit()


def _set_active(demo: Demo, user: str, active: bool) -> None:
    with Session(demo.store().engine) as session:
        record = session.scalar(select(User).where(User.username == user))
        assert record is not None
        record.active = active
        session.commit()


@pytest.mark.parametrize("change", ["role", "revoke", "disable"])
def test_open_websocket_queries_follow_access_changes(demo: Demo, change: str) -> None:
    """Each operation on an open WebSocket runs as the caller is now: a demoted admin gets the
    analyst's rows, a revoked key or a disabled user is refused (the connection closes with 4401)."""
    user = {"role": "dan", "revoke": "kim-key", "disable": "ina"}[change]

    def apply() -> None:
        if change == "role":  # an admin demoted to an analyst of DACH
            _set_roles(demo, "dan", "Analyst")
            run_cli("users", "set-attr", "dan", "region=DACH", "--metadata-url", demo.metadata_url)
        elif change == "revoke":
            key_id = tokens.parse_api_key(demo.headers["kim-key"]["Authorization"].split()[1])[0]
            run_cli("keys", "revoke", key_id, "--metadata-url", demo.metadata_url)
        else:
            _set_active(demo, "ina", False)

    async def run() -> dict[str, Any]:
        socket = await GraphQLSocket.open(demo.server.ws_url, demo.headers[user])
        try:
            before = await socket.operation(LOAD, {"q": BY_REGION})
            assert before["data"]["load"]["data"], before
            apply()
            await asyncio.sleep(3)  # identities are cached for 2 s
            try:
                return await socket.operation(LOAD, {"q": BY_REGION})
            except websockets.exceptions.ConnectionClosed as closed:  # closing the connection is a fix too
                return {"errors": [{"message": f"closed: {closed}"}]}
        finally:
            await socket.connection.close()

    after = asyncio.run(asyncio.wait_for(run(), 60))
    if change == "role":
        # Either refused, or answered as the analyst dan now is: DACH only, and no compiled SQL.
        rows = (after.get("data") or {}).get("load") or {"data": []}
        assert _regions(rows["data"]) <= {"DACH"}, after
        reload = demo.gql("dan", "mutation { reloadModels { version } }")  # over HTTP: refused
        assert reload["errors"][0]["extensions"]["code"] == "FORBIDDEN", reload
    else:
        assert after.get("errors") and not (after.get("data") or {}).get("load"), after


def test_cross_site_websocket_with_the_ui_cookie_is_refused(demo: Demo) -> None:
    """Cross-site WebSocket hijacking: a page on another origin opening /graphql with the signed-in
    admin's cookie is refused at the handshake (browsers send the cookie, but not our Origin)."""
    client = demo.ui_session("admin", ADMIN_PASSWORD)
    cookie = client.cookies.get("session")

    async def attempt(origin: str) -> None:
        await websockets.connect(
            demo.server.ws_url,
            subprotocols=["graphql-transport-ws"],
            additional_headers={"Cookie": f"session={cookie}"},
            origin=origin,  # type: ignore[arg-type]
            open_timeout=10,
        )

    for origin in ("http://evil.example", "http://127.0.0.1:1", "null"):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            asyncio.run(attempt(origin))
        assert refused.value.response.status_code == 403


# -- credentials -------------------------------------------------------------------------------


def test_login_endpoint_limits_password_guessing(demo: Demo) -> None:
    """Sign-in attempts per user name are limited (10 a minute by default), right or wrong."""
    statuses = []
    with httpx.Client(base_url=demo.server.url, timeout=30) as client:
        for attempt in range(RATE_LIMIT + 10):
            response = client.post("/auth/token", json={"username": "lou", "password": f"guess-{attempt}"})
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    assert set(statuses) <= {401, 429}
    assert 429 in statuses, f"{len(statuses)} wrong passwords for one user, none refused as too many"


def test_ui_session_cookie_is_dead_after_logout(demo: Demo) -> None:
    """A copy of the UI's session cookie taken before sign-out opens neither the API nor the UI."""
    client = demo.ui_session("vic", "vic-pw-1")
    stolen = client.cookies.get("session")
    query = {"query": "{ load(query: {measures: [\"sales.revenue\"]}) { data } }"}
    signed_in = httpx.post(demo.server.url + "/graphql", json=query, cookies={"session": stolen})
    assert signed_in.status_code == 200 and signed_in.json()["data"]["load"]["data"], signed_in.text
    client.get("/logout/")
    time.sleep(2.5)  # identities are cached for 2 s
    replayed = httpx.post(demo.server.url + "/graphql", json=query, cookies={"session": stolen})
    assert replayed.status_code == 401, replayed.text
    page = httpx.get(demo.server.url + "/ask/", cookies={"session": stolen})
    assert page.status_code in (302, 401, 403) or "login" in page.text.lower(), page.text[:300]
    # signing in again works, and the new session is not voided by the old one's refusal
    again = demo.ui_session("vic", "vic-pw-1")
    cookies = {"session": again.cookies["session"]}
    fresh = httpx.post(demo.server.url + "/graphql", json=query, cookies=cookies)
    assert fresh.status_code == 200, fresh.text


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # forged with short keys
def test_expired_tampered_and_foreign_tokens_get_nothing(demo: Demo) -> None:
    import jwt

    good = demo.headers["ada"]["Authorization"].split()[1]
    claims = jwt.decode(good, options={"verify_signature": False})
    now = int(time.time())
    header, _, signature = good.split(".")
    admin_payload = jwt.encode({**claims, "sub": "admin"}, "x").split(".")[1]
    forged = {
        "admin claims, wrong key": jwt.encode({**claims, "sub": "admin"}, "not-the-key", algorithm="HS256"),
        "expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, SERVER_SECRET),
        "alg none": jwt.encode({**claims, "sub": "admin"}, None, algorithm="none"),
        "payload swapped": f"{header}.{admin_payload}.{signature}",
        "unknown user": jwt.encode({**claims, "sub": "ghost"}, SERVER_SECRET),
    }
    for why, token in forged.items():
        response = httpx.post(
            demo.server.url + "/graphql",
            json={"query": LOAD, "variables": {"q": BY_REGION}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 401, (why, response.text)
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", why


# -- the admin UI ------------------------------------------------------------------------------


def test_ui_catalog_lists_only_what_the_user_may_use(demo: Demo) -> None:
    """The Catalog page lists what `meta` lists for the same user, nothing of what is closed to them."""
    meta = demo.gql("vic", "{ meta { cubes { name } } }")["data"]["meta"]["cubes"]
    allowed = {c["name"] for c in meta}
    assert allowed == {"sales", "orders_overview", "store_traffic"}
    page = demo.ui_session("vic", "vic-pw-1").get("/catalog/")
    assert page.status_code == 200, page.text[:300]
    for hidden in ("customer_360", "Customer 360", "order_items", "Cost of Goods Sold"):
        assert hidden not in page.text, f"the catalog shows {hidden!r} to a viewer"


# -- query shapes the view row filters must survive --------------------------------------------


SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (view, query)
    "running total": ("sales", {
        "measures": ["sales.revenue_running_total"],
        "timeDimensions": [{"dimension": "sales.created_at", "granularity": "second",
                            "dateRange": ["2026-01-01", "2026-01-07"]}]}),
    "trailing window": ("sales", {
        "measures": ["sales.revenue_trailing_7_days"],
        "timeDimensions": [{"dimension": "sales.created_at", "granularity": "week",
                            "dateRange": ["2026-01-01", "2026-03-31"]}]}),
    "ungrouped": ("sales", {"dimensions": ["sales.stores_name", "sales.status"],
                            "ungrouped": True, "limit": 200}),
    "total and offset": ("sales", {"measures": ["sales.revenue"], "dimensions": ["sales.stores_name"],
                                   "total": True, "limit": 1, "offset": 1}),
    "or of set and notSet": ("sales", {"measures": ["sales.revenue"], "filters": [{"or": [
        {"member": "sales.region", "operator": "set"}, {"member": "sales.region", "operator": "notSet"}]}]}),
    "dimension only": ("orders_overview", {"dimensions": ["orders_overview.customers_name"], "limit": 5000}),
    "traffic rolling": ("store_traffic", {
        "measures": ["store_traffic.visits_trailing_7_days", "store_traffic.conversion_rate"],
        "timeDimensions": [{"dimension": "store_traffic.date", "granularity": "day",
                            "dateRange": ["2026-03-01", "2026-03-31"]}]}),
}  # fmt: skip


@pytest.mark.parametrize("shape", list(SHAPES))
def test_query_shapes_give_an_analyst_exactly_the_admins_rows_of_her_region(demo: Demo, shape: str) -> None:
    view, query = SHAPES[shape]
    mine = demo.load("ada", query)
    region = {"member": f"{view}.region", "operator": "equals", "values": ["DACH"]}
    admins = demo.load("admin", {**query, "filters": [*query.get("filters", []), region]})
    assert mine["data"], "the shape should return rows for DACH"
    assert sorted(map(repr, mine["data"])) == sorted(map(repr, admins["data"]))
    assert mine["total"] == admins["total"]


def test_running_total_buckets_come_from_the_callers_rows(demo: Demo) -> None:
    """Second buckets of a rolling measure are the DACH order times only (not every region's)."""
    query = SHAPES["running total"][1]
    got = {r["sales.created_at.second"][:19] for r in demo.load("ada", query)["data"]}
    want = {
        row[0].strftime("%Y-%m-%dT%H:%M:%S")
        for row in demo.sql(
            "SELECT DISTINCT date_trunc('second', o.created_at) FROM orders o "
            "JOIN stores s ON o.store_id = s.id JOIN regions r ON s.region_id = r.id "
            "WHERE r.name = 'DACH' AND o.created_at >= '2026-01-01' AND o.created_at < '2026-01-08' "
            "AND EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id)"
        )
    }
    assert got == want


def test_analyst_without_region_sees_no_row_of_any_view(demo: Demo) -> None:
    for query in (
        BY_REGION,
        {"measures": ["orders_overview.count", "orders_overview.unique_customers"]},
        {"measures": ["store_traffic.visits"], "segments": ["store_traffic.open_days"]},
        {"dimensions": ["orders_overview.customers_name"]},
    ):
        for row in demo.load("nor", query)["data"]:
            assert all(value in (None, 0) for value in row.values()), (query, row)


# -- abuse limits and the audit log ------------------------------------------------------------


def _audit(demo: Demo, user: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    time.sleep(1.5)  # the audit writer batches
    with demo.store().engine.connect() as conn:
        sql = "SELECT path, outcome, query FROM hbi_audit_log WHERE user = :u ORDER BY id"
        return [tuple(row) for row in conn.execute(text(sql), {"u": user})]


def test_rate_limit_refuses_and_audits_the_refusal(demo: Demo) -> None:
    codes = []
    for _ in range(RATE_LIMIT + 3):
        body = demo.gql("rita", LOAD, {"q": {"measures": ["sales.line_count"]}})
        codes.append(body["errors"][0]["extensions"]["code"] if body.get("errors") else "ok")
    assert codes[:RATE_LIMIT] == ["ok"] * RATE_LIMIT
    assert set(codes[RATE_LIMIT:]) == {"RATE_LIMITED"}, codes
    assert any(outcome == "RATE_LIMITED" for _, outcome, _ in _audit(demo, "rita"))


def test_refused_typed_query_for_a_hidden_member_is_audited(demo: Demo) -> None:
    """Probing for a hidden member through the typed API is refused by validation and audited."""
    refused = demo.gql("aud", "{ cube { sales { gross_margin } } }")
    assert refused.get("errors"), refused
    refused_load = demo.gql("aud", LOAD, {"q": {"measures": ["sales.gross_margin"]}})
    assert refused_load["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    paths = [path for path, outcome, _ in _audit(demo, "aud") if outcome != "ok"]
    assert "load" in paths
    assert "cube" in paths, paths
