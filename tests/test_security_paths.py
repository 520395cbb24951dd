"""Every way in, tried with another user's data: the real server on a multi-tenant TPC-H (sf0.1).

`headless-bi serve` runs in a subprocess on the models of `tests/models/secure` (plus `reach.yml`
below: public cubes without policies that reach `customer` only through a join, a filter, a segment
or a `number` measure). Users come from the CLI and log in over HTTP: two analysts of different
regions (EUROPE, ASIA), a viewer (EUROPE, by API key) and the admin. For each path — typed `cube`,
`load`, `meta`, introspection, the `live` subscription, the result cache, compiled `sql`, FORBIDDEN
members, masked members, indirect reach, tokens — a user gets exactly their rows, computed here with
plain SQL on the same DuckDB file, and nothing of the other user's. Hostile input (hypothesis) never
widens what an analyst gets: a subset of their region's rows, or a clean coded GraphQL error.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import websockets
import yaml
from graphql_ws import GraphQLSocket
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_server import ADMIN_PASSWORD, LIVE, Server, bearer, query_input

from headless_bi import cli
from headless_bi.security import tokens
from headless_bi.security.store import IdentityStore, Role, User
from headless_bi.warehouse.files import load_files

SECURE_MODELS = Path(__file__).parent / "models" / "secure"
TABLES = ("customer", "orders", "lineitem", "nation", "region")
SECRET = "test-secret-key-0123456789-abcdefghij"  # what test_server.Server gives the service
REGIONS = ("AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST")
# Public cubes without policies of their own; each reaches the `customer` cube (row filter: the
# user's region; phone masked for analysts; name, acctbal hidden from viewers) another way.
REACH = """
cubes:
  - name: order_book
    sql_table: orders
    joins:
      - name: customer
        relationship: many_to_one
        sql: "{CUBE}.o_custkey = {customer}.c_custkey"
    dimensions:
      - name: orderkey
        sql: o_orderkey
        type: number
        primary_key: true
      - name: status
        sql: o_orderstatus
        type: string
      - name: buyer_phone
        sql: "{customer.phone}"
        type: string
      - name: buyer_name
        sql: "{customer.name}"
        type: string
    measures:
      - name: count
        type: count
      - name: customers_per_order
        sql: "1.0 * {customer.count} / NULLIF({count}, 0)"
        type: number
    segments:
      - name: wealthy_buyer
        sql: "{customer}.c_acctbal > 9000"
      - name: phone_starts_with_1
        sql: "{customer.phone} LIKE '1%'"
  - name: nation_book
    sql_table: nation
    dimensions:
      - name: nationkey
        sql: n_nationkey
        type: number
        primary_key: true
      - name: name
        sql: n_name
        type: string
"""
CUSTOMER_REGION = "customer JOIN nation ON c_nationkey = n_nationkey JOIN region ON n_regionkey = r_regionkey"
LOAD_FULL = "query Load($q: QueryInput!) { load(query: $q) { data sql } }"


# -- the warehouse, the models, the users, the server ------------------------------------------


@pytest.fixture(scope="module")
def warehouse(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secure_paths") / "tpch.duckdb"
    load_files([shared_data / "tpch_sf0.1" / f"{t}.parquet" for t in TABLES], str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/models/secure, with `customer` joined to `nation_book` so a query can pass through it."""
    folder = tmp_path_factory.mktemp("secure_models")
    secure = yaml.safe_load((SECURE_MODELS / "tpch_secure.yml").read_text())
    customer = next(c for c in secure["cubes"] if c["name"] == "customer")
    customer["joins"].append(
        {
            "name": "nation_book",
            "relationship": "many_to_one",
            "sql": "{CUBE}.c_nationkey = {nation_book}.n_nationkey",
        }
    )
    (folder / "tpch_secure.yml").write_text(yaml.safe_dump(secure, sort_keys=False))
    (folder / "reach.yml").write_text(REACH)
    return folder


class Sql:
    """Plain SQL on the warehouse file (read-only, beside the server's own read-only connection)."""

    def __init__(self, path: Path):
        self.path = path

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path), read_only=True) as conn:
            return [tuple(_plain(v) for v in row) for row in conn.sql(sql).fetchall()]

    def one(self, sql: str) -> Any:
        return self.rows(sql)[0][0]


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


@pytest.fixture(scope="module")
def sql(warehouse: Path) -> Sql:
    return Sql(warehouse)


class Users:
    """The service's users and how they authenticate (bearer token or API key headers)."""

    def __init__(self, server: Server, metadata_url: str):
        self.server = server
        self.metadata_url = metadata_url
        self.headers: dict[str, dict[str, str]] = {}

    def login(self, name: str, password: str) -> None:
        self.headers[name] = bearer(self.server, name, password)

    def store(self) -> IdentityStore:
        return IdentityStore(self.metadata_url)


def run_cli(*args: str) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(args))
    assert code == 0, (args, out.getvalue())
    return out.getvalue()


ANALYSTS = {"eve": "EUROPE", "ash": "ASIA", "lia": "EUROPE", "lee": "EUROPE", "kay": "EUROPE"}


@pytest.fixture(scope="module")
def server(
    warehouse: Path, models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Users]]:
    """The real server, authentication required (no anonymous role), a 60 s result cache."""
    work = tmp_path_factory.mktemp("secure_server")
    metadata_url = f"sqlite:///{work}/metadata.db"
    for name, region in ANALYSTS.items():
        run_cli(
            "users",
            "add",
            name,
            "--role",
            "Analyst",
            "--attr",
            f"region={region}",
            "--password",
            f"{name}-pw",
            "--metadata-url",
            metadata_url,
        )
    run_cli(
        "users", "add", "val", "--role", "Viewer", "--attr", "region=EUROPE", "--metadata-url", metadata_url
    )
    viewer_key = run_cli("keys", "create", "val-dash", "--user", "val", "--metadata-url", metadata_url)
    kay_key = run_cli("keys", "create", "kay-dash", "--user", "kay", "--metadata-url", metadata_url)
    env = {
        "HBI_ANONYMOUS_ROLE": "",  # credentials required, as in production
        "HBI_RESULT_CACHE_TTL_S": "60",
        "HBI_RATE_LIMIT_PER_MINUTE": "0",
        "HBI_QUERY_THREADS": "4",
    }
    srv = Server(models, str(warehouse), work, env=env)
    users = Users(srv, metadata_url)
    try:
        users.login("admin", ADMIN_PASSWORD)  # the bootstrap admin of the first start
        for name in ANALYSTS:
            users.login(name, f"{name}-pw")
        users.headers["val"] = {"X-API-Key": viewer_key.strip().splitlines()[-1]}
        users.headers["kay-key"] = {"Authorization": f"Bearer {kay_key.strip().splitlines()[-1]}"}
        yield srv, users
    finally:
        srv.stop()


def gql(server: tuple[Server, Users], user: str, query: str, variables: dict[str, Any] | None = None) -> dict:
    srv, users = server
    response = httpx.post(
        srv.url + "/graphql",
        json={"query": query, "variables": variables},
        headers=users.headers[user],
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    for error in body.get("errors") or []:
        assert error.get("extensions", {}).get("code"), error  # every error has a stable code
        assert "Traceback" not in error["message"] and 'File "' not in error["message"], error
    return body


def load(server: tuple[Server, Users], user: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    body = gql(server, user, LOAD_FULL, {"q": query_input(query)})
    assert not body.get("errors"), body
    return body["data"]["load"]["data"]


def error_code(body: dict) -> str:
    assert body.get("errors"), body
    assert not body.get("data") or not any(body["data"].values()), body  # no rows with the error
    return body["errors"][0]["extensions"]["code"]


def customers_by_region(sql: Sql, region: str) -> int:
    return sql.one(f"SELECT count(*) FROM {CUSTOMER_REGION} WHERE r_name = '{region}'")


def revenue_by_shipmode(sql: Sql, region: str | None) -> dict[str, float]:
    where = f"WHERE r_name = '{region}'" if region else ""
    return dict(
        sql.rows(
            "SELECT l_shipmode, sum(l_extendedprice * (1 - l_discount)) FROM lineitem "
            f"JOIN orders ON l_orderkey = o_orderkey JOIN {CUSTOMER_REGION} ON o_custkey = c_custkey "
            f"{where} GROUP BY 1"
        )
    )


def approx_rows(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key


# -- load and the typed `cube` field ---------------------------------------------------------


def test_load_gives_each_user_their_region(server: Any, sql: Sql) -> None:
    by_region = {"measures": ["customer.count"], "dimensions": ["customer.region"]}
    for user, region in [("eve", "EUROPE"), ("ash", "ASIA"), ("val", "EUROPE")]:
        assert load(server, user, by_region) == [
            {"customer.region": region, "customer.count": customers_by_region(sql, region)}
        ], user
    admin = load(server, "admin", {**by_region, "order": {"customer.region": "asc"}})
    assert admin == [{"customer.region": r, "customer.count": customers_by_region(sql, r)} for r in REGIONS]

    by_shipmode = {"measures": ["sales.revenue"], "dimensions": ["sales.shipmode"]}
    for user, region in [("eve", "EUROPE"), ("ash", "ASIA"), ("admin", None)]:
        got = {r["sales.shipmode"]: r["sales.revenue"] for r in load(server, user, by_shipmode)}
        approx_rows(got, revenue_by_shipmode(sql, region))
    # Asking for the other region's rows by filter gives nothing, not the other region.
    other = {
        "measures": ["customer.count"],
        "filters": [{"member": "customer.region", "operator": "equals", "values": ["ASIA"]}],
    }
    assert load(server, "eve", other) == [{"customer.count": 0}]
    assert load(server, "eve", {**other, "dimensions": ["customer.region"]}) == []


def test_typed_cube_field_gives_each_user_their_region(server: Any, sql: Sql) -> None:
    query = "{ cube { customer { count region } } }"
    for user, region in [("eve", "EUROPE"), ("ash", "ASIA"), ("val", "EUROPE")]:
        body = gql(server, user, query)
        assert not body.get("errors"), body
        assert body["data"]["cube"] == [
            {"customer": {"count": customers_by_region(sql, region), "region": region}}
        ], user
    body = gql(server, "admin", "{ cube(orderBy: {customer: {region: asc}}) { customer { count region } } }")
    assert [row["customer"]["region"] for row in body["data"]["cube"]] == list(REGIONS)

    where = '{ cube(where: {customer: {region: {equals: "ASIA"}}}) { customer { count region } } }'
    assert gql(server, "eve", where)["data"]["cube"] == []
    typed_view = "{ cube { sales { revenue shipmode } } }"
    got = {
        r["sales"]["shipmode"]: r["sales"]["revenue"] for r in gql(server, "ash", typed_view)["data"]["cube"]
    }
    approx_rows(got, revenue_by_shipmode(sql, "ASIA"))


def test_compiled_sql_is_for_admins_only(server: Any) -> None:
    q = {"q": query_input({"measures": ["customer.count"]})}
    for user in ("eve", "ash", "val"):
        body = gql(server, user, LOAD_FULL, q)
        assert body["data"]["load"]["sql"] is None, user
    admin_sql = gql(server, "admin", LOAD_FULL, q)["data"]["load"]["sql"]
    assert isinstance(admin_sql, str) and "customer" in admin_sql.lower()


# -- members: hidden, masked ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "query"),
    [
        ("eve", {"measures": ["sales.orders_total_price"]}),
        (
            "ash",
            {
                "measures": ["sales.revenue"],
                "filters": [{"member": "sales.orders_total_price", "operator": "gt", "values": ["0"]}],
            },
        ),
        ("val", {"dimensions": ["customer.name"]}),
        ("val", {"measures": ["customer.count"], "dimensions": ["customer.acctbal"]}),
        ("val", {"measures": ["customer.count"], "segments": ["customer.wealthy"]}),
        (
            "val",
            {
                "measures": ["customer.count"],
                "filters": [{"member": "customer.acctbal", "operator": "gt", "values": ["9000"]}],
            },
        ),
        (
            "val",
            {
                "measures": ["customer.count"],
                "filters": [
                    {
                        "or": [
                            {"member": "customer.region", "operator": "set"},
                            {"member": "customer.phone", "operator": "startsWith", "values": ["1"]},
                        ]
                    }
                ],
            },
        ),
    ],
)
def test_naming_a_hidden_member_is_forbidden(server: Any, user: str, query: dict[str, Any]) -> None:
    body = gql(server, user, LOAD_FULL, {"q": query_input(query)})
    assert error_code(body) == "FORBIDDEN"
    assert body["data"] is None or body["data"]["load"] is None


def test_hidden_members_are_never_suggested(server: Any) -> None:
    body = gql(server, "val", LOAD_FULL, {"q": query_input({"dimensions": ["customer.nam"]})})
    assert error_code(body) == "UNKNOWN_MEMBER"
    assert "customer.name" not in json.dumps(body)
    typed = gql(server, "val", "{ cube { customer { name } } }")
    assert typed["errors"] and "Cannot query field 'name'" in typed["errors"][0]["message"]
    assert "acctbal" not in json.dumps(typed) and "phone" not in json.dumps(typed)


def test_masked_members_return_and_filter_only_the_mask(server: Any, sql: Sql) -> None:
    masks = dict(
        sql.rows(
            f"SELECT '***-' || right(c_phone, 4) AS m, count(*) FROM {CUSTOMER_REGION} "
            "WHERE r_name = 'EUROPE' GROUP BY 1"
        )
    )
    got = load(server, "eve", {"measures": ["customer.count"], "dimensions": ["customer.phone"]})
    assert {r["customer.phone"]: r["customer.count"] for r in got} == masks

    real_phone, tail_count = sql.rows(
        f"SELECT c_phone, (SELECT count(*) FROM {CUSTOMER_REGION} WHERE r_name = 'EUROPE' "
        "AND right(c_phone, 4) = right(c.c_phone, 4)) FROM customer AS c JOIN nation ON "
        "c.c_nationkey = n_nationkey JOIN region ON n_regionkey = r_regionkey WHERE r_name = 'EUROPE' "
        "ORDER BY c_custkey LIMIT 1"
    )[0]

    def count(operator: str, values: list[str]) -> list[dict[str, Any]]:
        return load(
            server,
            "eve",
            {
                "measures": ["customer.count"],
                "filters": [{"member": "customer.phone", "operator": operator, "values": values}],
            },
        )

    # The real value (or a real prefix) matches nothing; only the masked value matches.
    assert count("equals", [real_phone]) == [{"customer.count": 0}]
    assert count("startsWith", [real_phone[:6]]) == [{"customer.count": 0}]
    assert count("contains", [real_phone[:6]]) == [{"customer.count": 0}]
    assert count("equals", ["***-" + real_phone[-4:]]) == [{"customer.count": tail_count}]
    # The viewer's masked measure: -1, and a HAVING on it cannot find the real balance.
    assert load(server, "val", {"measures": ["customer.balance"]}) == [{"customer.balance": -1}]
    having = {
        "measures": ["customer.balance"],
        "dimensions": ["customer.mktsegment"],
        "filters": [{"member": "customer.balance", "operator": "gt", "values": ["0"]}],
    }
    assert load(server, "val", having) == []
    # The admin sees the real thing.
    admin = load(
        server,
        "admin",
        {
            "dimensions": ["customer.phone"],
            "filters": [{"member": "customer.phone", "operator": "equals", "values": [real_phone]}],
        },
    )
    assert admin == [{"customer.phone": real_phone}]


def test_members_built_on_hidden_or_masked_members_are_hidden_or_masked(server: Any, sql: Sql) -> None:
    """`order_book.buyer_phone` is `{customer.phone}`: it must not show the phone analysts see masked;
    `order_book.buyer_name` is `{customer.name}`, which viewers may not see at all."""
    europe_phones = {p for (p,) in sql.rows(f"SELECT c_phone FROM {CUSTOMER_REGION} WHERE r_name = 'EUROPE'")}
    got = load(server, "eve", {"dimensions": ["order_book.buyer_phone"], "limit": 50})
    assert got and not {r["order_book.buyer_phone"] for r in got} & europe_phones, got[:3]
    body = gql(server, "val", LOAD_FULL, {"q": query_input({"dimensions": ["order_book.buyer_name"]})})
    assert error_code(body) == "FORBIDDEN"
    body = gql(
        server,
        "eve",
        LOAD_FULL,
        {
            "q": query_input(
                {"measures": ["order_book.count"], "segments": ["order_book.phone_starts_with_1"]}
            )
        },
    )
    assert error_code(body) == "FORBIDDEN"
    # The admin gets the real values through the same members.
    admin = load(
        server,
        "admin",
        {
            "dimensions": ["order_book.buyer_phone"],
            "filters": [{"member": "order_book.orderkey", "operator": "equals", "values": ["1"]}],
        },
    )
    assert admin == [
        {
            "order_book.buyer_phone": sql.one(
                "SELECT c_phone FROM orders JOIN customer ON o_custkey = c_custkey WHERE o_orderkey = 1"
            )
        }
    ]


# -- meta and introspection -------------------------------------------------------------------


META = "{ meta { cubes { name members { name } } } }"


def meta_members(server: Any, user: str) -> dict[str, set[str]]:
    body = gql(server, user, META)
    assert not body.get("errors"), body
    return {c["name"]: {m["name"] for m in c["members"]} for c in body["data"]["meta"]["cubes"]}


def test_meta_lists_only_what_each_user_may_use(server: Any) -> None:
    admin, eve, val = (meta_members(server, u) for u in ("admin", "eve", "val"))
    for listing in (admin, eve, val):
        assert not {"orders", "lineitem", "nation"} & listing.keys()  # private cubes never listed
    assert {"customer.name", "customer.phone", "customer.acctbal", "sales.orders_total_price"} <= (
        admin["customer"] | admin["sales"]
    )
    assert "sales.orders_total_price" not in eve["sales"] | val["sales"]
    assert "customer.phone" in eve["customer"]  # masked: listed, and returns the mask
    assert val["customer"] == {"customer.count", "customer.mktsegment", "customer.region", "customer.balance"}
    assert "order_book.buyer_name" not in val["order_book"] and "order_book.buyer_name" in admin["order_book"]


INTROSPECT = "{ __schema { types { name fields { name } inputFields { name } enumValues { name } } } }"


def schema_fields(server: Any, user: str) -> dict[str, set[str]]:
    body = gql(server, user, INTROSPECT)
    assert not body.get("errors"), body
    return {
        t["name"]: {
            f["name"] for f in (t["fields"] or []) + (t["inputFields"] or []) + (t["enumValues"] or [])
        }
        for t in body["data"]["__schema"]["types"]
    }


def test_introspection_lacks_hidden_members(server: Any) -> None:
    admin, eve, val = (schema_fields(server, u) for u in ("admin", "eve", "val"))

    def fields_named(types: dict[str, set[str]], prefix: str) -> set[str]:
        return set().union(*(f for name, f in types.items() if name.startswith(prefix)))

    assert "orders_total_price" in fields_named(admin, "Sales")
    assert "orders_total_price" not in fields_named(eve, "Sales") | fields_named(val, "Sales")
    assert {"name", "acctbal", "phone", "wealthy"} <= fields_named(admin, "Customer")
    assert not {"name", "acctbal", "phone", "custkey", "wealthy"} & fields_named(val, "Customer")
    assert "buyer_name" not in fields_named(val, "OrderBook")
    assert "buyer_name" in fields_named(admin, "OrderBook")
    one_type = gql(server, "val", '{ __type(name: "CustomerMembers") { fields { name } } }')["data"]["__type"]
    assert one_type is not None, "type name changed: adapt the test"
    assert {f["name"] for f in one_type["fields"]} == {"count", "mktsegment", "region", "balance"}


# -- a cube's row filter applies however the cube is reached --------------------------------


def test_row_filter_applies_through_join_filter_segment_and_number_measure(server: Any, sql: Sql) -> None:
    orders_of = f"orders JOIN {CUSTOMER_REGION} ON o_custkey = c_custkey"
    # A join: order_book -> customer -> nation_book names no member of customer.
    got = load(server, "eve", {"measures": ["order_book.count"], "dimensions": ["nation_book.name"]})
    named = {r["nation_book.name"]: r["order_book.count"] for r in got if r["nation_book.name"] is not None}
    assert named == dict(
        sql.rows(f"SELECT n_name, count(*) FROM {orders_of} WHERE r_name = 'EUROPE' GROUP BY 1")
    )
    admin = load(server, "admin", {"measures": ["order_book.count"], "dimensions": ["nation_book.name"]})
    assert len([r for r in admin if r["nation_book.name"]]) == 25
    # A filter on a customer member, with no customer member selected.
    building = {
        "measures": ["order_book.count"],
        "filters": [{"member": "customer.mktsegment", "operator": "equals", "values": ["BUILDING"]}],
    }
    assert load(server, "ash", building) == [
        {
            "order_book.count": sql.one(
                f"SELECT count(*) FROM {orders_of} WHERE r_name = 'ASIA' AND c_mktsegment = 'BUILDING'"
            )
        }
    ]
    # A segment written on customer's columns.
    wealthy = {"measures": ["order_book.count"], "segments": ["order_book.wealthy_buyer"]}
    assert load(server, "eve", wealthy) == [
        {
            "order_book.count": sql.one(
                f"SELECT count(*) FROM {orders_of} WHERE r_name = 'EUROPE' AND c_acctbal > 9000"
            )
        }
    ]
    # A number measure over customer.count: the customers counted are the user's region's only.
    ratio = load(server, "ash", {"measures": ["order_book.customers_per_order"]})
    expected = customers_by_region(sql, "ASIA") / sql.one("SELECT count(*) FROM orders")
    assert ratio[0]["order_book.customers_per_order"] == pytest.approx(expected, rel=1e-9)


# -- the result cache -------------------------------------------------------------------------


def test_result_cache_never_serves_another_users_rows(server: Any, sql: Sql) -> None:
    query = {"measures": ["sales.revenue"], "dimensions": ["sales.region"], "limit": 777}
    region_revenue = dict(
        sql.rows(
            "SELECT r_name, sum(l_extendedprice * (1 - l_discount)) FROM lineitem JOIN orders ON "
            f"l_orderkey = o_orderkey JOIN {CUSTOMER_REGION} ON o_custkey = c_custkey GROUP BY 1"
        )
    )

    def revenue(user: str) -> dict[str, float]:
        return {r["sales.region"]: r["sales.revenue"] for r in load(server, user, query)}

    approx_rows(revenue("admin"), region_revenue)  # the admin's result is now cached (60 s)
    approx_rows(revenue("eve"), {"EUROPE": region_revenue["EUROPE"]})
    approx_rows(revenue("ash"), {"ASIA": region_revenue["ASIA"]})  # right after eve's identical query
    approx_rows(revenue("lia"), {"EUROPE": region_revenue["EUROPE"]})  # same policies as eve: may share
    approx_rows(revenue("admin"), region_revenue)
    typed = "{ cube(limit: 555) { customer { count region } } }"
    assert sorted(r["customer"]["region"] for r in gql(server, "admin", typed)["data"]["cube"]) == list(
        REGIONS
    )
    assert gql(server, "ash", typed)["data"]["cube"] == [
        {"customer": {"count": customers_by_region(sql, "ASIA"), "region": "ASIA"}}
    ]


# -- ask ----------------------------------------------------------------------------------------

ASK = (
    'query Ask($q: String!) { ask(question: $q, today: "1998-08-02") { query data sql alternatives titles } }'
)


def test_ask_answers_from_the_callers_rows_and_members_only(server: Any, sql: Sql) -> None:
    """`ask` proposes on the caller's governed model and runs like `load`: whatever it makes of the
    question, its rows are the caller's region's and it never names what the caller may not see."""
    for user, region in [("eve", "EUROPE"), ("ash", "ASIA")]:
        body = gql(server, user, ASK, {"q": "number of customers by region"})
        assert not body.get("errors"), body
        answer = body["data"]["ask"]
        assert answer["sql"] is None
        for row in answer["data"]:
            assert row.get("customer.region", region) == region, row
            if "customer.count" in row:
                assert row["customer.count"] <= customers_by_region(sql, region), row
        if answer["query"] == {"measures": ["customer.count"], "dimensions": ["customer.region"]}:
            assert answer["data"] == [
                {"customer.region": region, "customer.count": customers_by_region(sql, region)}
            ]
    for question in ("customer names and account balances", "total order price by customer name"):
        body = gql(server, "val", ASK, {"q": question})
        text = json.dumps(body)
        for hidden in ("customer.name", "customer.acctbal", "orders_total_price", "order_book.buyer_name"):
            assert hidden not in text, (question, body)


# -- live subscriptions -----------------------------------------------------------------------


class Subscriber(GraphQLSocket):
    """A live-query client of one of the fixture's users."""

    @classmethod
    async def open(cls, server: Any, user: str) -> Subscriber:  # type: ignore[override]
        srv, users = server
        return await super().open(srv.ws_url, users.headers[user])  # type: ignore[return-value]

    async def subscribe(self, query: dict[str, Any], op_id: str = "1", interval: int = 1) -> None:
        payload = {"query": LIVE, "variables": {"q": query_input(query), "i": interval}}
        await self.send({"id": op_id, "type": "subscribe", "payload": payload})


LIVE_QUERY = {"measures": ["customer.count"], "dimensions": ["customer.region"]}


def live_test(body: Callable[[], Any]) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


def test_live_first_push_is_each_users_own_rows(server: Any, sql: Sql) -> None:
    async def run() -> None:
        clients = {u: await Subscriber.open(server, u) for u in ("admin", "eve", "ash")}
        try:
            for client in clients.values():  # the same query from all three at once
                await client.subscribe(LIVE_QUERY)
            for user, client in clients.items():
                message = await client.receive()
                assert message["type"] == "next", message
                rows = message["payload"]["data"]["live"]["data"]
                regions = list(REGIONS) if user == "admin" else ["EUROPE" if user == "eve" else "ASIA"]
                assert sorted(rows, key=lambda r: r["customer.region"]) == [
                    {"customer.region": r, "customer.count": customers_by_region(sql, r)} for r in regions
                ], user
            viewer = await Subscriber.open(server, "val")
            await viewer.subscribe({"measures": ["customer.count"], "dimensions": ["customer.name"]})
            refused = stream_error(await viewer.receive())
            assert refused is not None and refused["extensions"]["code"] == "FORBIDDEN"
            await viewer.close()
        finally:
            for client in clients.values():
                await client.close()

    live_test(run)


def stream_error(message: dict[str, Any]) -> dict[str, Any] | None:
    """The error a message carries (`error`, or `next` with errors and no data), else None."""
    if message["type"] == "error":
        return message["payload"][0]
    assert message["type"] == "next", message
    payload = message["payload"]
    if payload.get("errors"):
        assert not (payload.get("data") or {}).get("live"), payload  # no rows with the error
        return payload["errors"][0]
    return None


async def _ends_with_error(client: Subscriber, change: Callable[[], None]) -> dict[str, Any]:
    """Read the first push, make `change`, then expect the stream to end with an error (no new rows)."""
    first = await client.receive()
    assert first["type"] == "next" and not first["payload"].get("errors"), first
    change()
    started = time.monotonic()
    message = await client.receive(timeout=20)
    error = stream_error(message)
    assert error is not None, f"a push after the change: {message}"  # the data is static: nothing new
    assert time.monotonic() - started < 15
    assert (await client.receive())["type"] == "complete"
    return error


@pytest.mark.parametrize("change", ["role", "attribute", "revoke"])
def test_live_stream_ends_when_access_changes(server: Any, change: str) -> None:
    _, users = server
    user = {"role": "lia", "attribute": "lee", "revoke": "kay-key"}[change]

    def apply() -> None:
        if change == "role":
            with Session(users.store().engine) as session:
                record = session.scalar(select(User).where(User.username == "lia"))
                viewer = session.scalar(select(Role).where(Role.name == "Viewer"))
                assert record is not None and viewer is not None
                record.roles = [viewer]
                session.commit()
        elif change == "attribute":
            run_cli("users", "set-attr", "lee", "region=ASIA", "--metadata-url", users.metadata_url)
        else:
            key_id = tokens.parse_api_key(users.headers["kay-key"]["Authorization"].split()[1])[0]
            run_cli("keys", "revoke", key_id, "--metadata-url", users.metadata_url)

    async def run() -> None:
        client = await Subscriber.open(server, user)
        try:
            await client.subscribe(LIVE_QUERY)
            error = await _ends_with_error(client, apply)
            expected = "UNAUTHENTICATED" if change == "revoke" else "FORBIDDEN"
            assert error["extensions"]["code"] == expected, error
        finally:
            await client.close()

    live_test(run)


# -- tokens over HTTP -------------------------------------------------------------------------


def _status(server: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    srv, _ = server
    response = httpx.post(srv.url + "/graphql", json={"query": "{ __typename }"}, headers=headers, timeout=30)
    return response.status_code, response.json()


def _flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] != "B" else "C") + text[index + 1 :]


def test_bad_tokens_are_refused_with_clean_401s(server: Any) -> None:
    """What test_identity.py checks on the in-process app (missing, bad signature), here through the
    real server: expired, payload or signature tampered, revoked key, wrong scheme, malformed."""
    srv, users = server
    store = users.store()
    _, doomed = store.create_api_key("doomed", "eve")
    assert _status(server, {"X-API-Key": doomed})[0] == 200
    store.revoke_api_key(tokens.parse_api_key(doomed)[0])
    deadline = time.monotonic() + 3.0  # the server caches identities for 2 s
    while _status(server, {"X-API-Key": doomed})[0] == 200:
        assert time.monotonic() < deadline, "revocation not seen within the cache TTL"
        time.sleep(0.1)
    good = tokens.issue_token("eve", SECRET, expires_in_s=600)
    header, payload, signature = good.split(".")
    cases = {
        "missing": {},
        "expired": {
            "Authorization": "Bearer "
            + tokens.issue_token("eve", SECRET, expires_in_s=60, now=time.time() - 7200)
        },
        "signature": {"Authorization": f"Bearer {header}.{payload}.{_flip(signature, 5)}"},
        "payload": {"Authorization": f"Bearer {header}.{_flip(payload, 15)}.{signature}"},
        "other secret": {"Authorization": "Bearer " + tokens.issue_token("admin", "x" * 40, expires_in_s=60)},
        "scheme": {"Authorization": "Basic ZXZlOmV2ZS1wdw=="},
        "malformed": {"Authorization": "Bearer not-a-token"},
        "empty bearer": {"Authorization": "Bearer"},
        "revoked key": {"X-API-Key": doomed},
        "bad key": {"X-API-Key": doomed[:-3] + "zzz"},
    }
    messages = {}
    for name, headers in cases.items():
        status, body = _status(server, headers)
        assert status == 401, (name, body)
        assert list(body) == ["errors"] and len(body["errors"]) == 1, (name, body)
        error = body["errors"][0]
        assert error["extensions"] == {"code": "UNAUTHENTICATED"}, (name, body)
        assert "Traceback" not in error["message"] and "\n" not in error["message"], (name, error)
        messages[name] = error["message"]
    assert "expired" in messages["expired"].lower()
    assert "revoked" in messages["revoked key"]
    assert messages["payload"] == messages["signature"] == messages["other secret"]
    # A tampered admin token over WebSocket is refused too, before any operation.
    admin_token = users.headers["admin"]["Authorization"].split()[1]
    h, p, s = admin_token.split(".")

    async def ws() -> None:
        connection = await websockets.connect(srv.ws_url, subprotocols=["graphql-transport-ws"])
        await connection.send(
            json.dumps(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {h}.{p}.{_flip(s, 3)}"}}
            )
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(connection.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    asyncio.run(ws())


# -- hostile input ----------------------------------------------------------------------------


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` four times in five: each hostile axis alone, so most examples still reach the warehouse."""
    return st.one_of(good, good, good, good, bad)


# fmt: off
HOSTILE_TEXT = st.one_of(
    st.sampled_from([
        "EUROPE' OR '1'='1", "ASIA", "x') OR 1=1 --", "'; DROP TABLE customer; --", "%", "_", "\\",
        "' UNION SELECT c_phone FROM customer --", "EUROPE\x00", "{ userAttributes.region }",
        "${securityContext.region}", "1e309", "-0", "NaN", "0x41", "*/ OR /*", '"', "''", "EUROPE",
    ]),
    st.text(max_size=30),
)
# Members the analyst's query may name (so many examples do reach the warehouse) ...
QUERYABLE = st.sampled_from(["customer.region", "customer.count", "customer.phone", "customer.mktsegment"])
# ... and names that must never widen anything: hidden, private, another owner's, or not names at all.
OFF_LIMITS = st.one_of(
    st.sampled_from([
        "customer.name", "customer.acctbal", "customer.tenant", "customer.custkey", "customer.wealthy",
        "orders.status", "lineitem.revenue", "nation.name", "sales.region", "sales.orders_total_price",
        "order_book.buyer_phone", "order_book.buyer_name", "customer.region) OR (1=1", "customer.*",
        "customer", "customer..region", "__schema", "CUSTOMER.REGION", "customer.region--",
        "customer.region.month", "customer.phone'--",
    ]),
    st.text(max_size=20),
)
MEMBERS = mostly(QUERYABLE, OFF_LIMITS)
OPERATOR_NAMES = st.sampled_from([
    "equals", "notEquals", "contains", "notContains", "startsWith", "endsWith", "gt", "lt", "set",
    "notSet", "inDateRange", "beforeDate",
])
OPERATORS = mostly(OPERATOR_NAMES, st.one_of(
    st.sampled_from(["equals OR 1=1", "measureFilter", "EQUALS"]), st.text(max_size=12)
))
FILTERS = st.recursive(
    st.fixed_dictionaries({
        "member": MEMBERS,
        "operator": OPERATORS,
        "values": st.lists(st.one_of(HOSTILE_TEXT, st.none()), max_size=3),
    }),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"or": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"and": st.lists(inner, min_size=1, max_size=3)}),
    ),
    max_leaves=4,
)
TIMEZONES = mostly(
    st.sampled_from(["UTC", "Europe/Berlin", "Asia/Tokyo", "America/St_Johns", "Etc/GMT-14"]),
    st.one_of(
        st.sampled_from(["'; DROP TABLE orders; --", "UTC' OR '1'='1", "../../etc/passwd", "+25:00", ""]),
        st.text(max_size=20),
    ),
)
GRANULARITIES = mostly(
    st.sampled_from(["day", "week", "month", "quarter", "year"]),
    st.one_of(st.sampled_from(["decade", "day) OR (1=1", "'", "MONTH", "month'; --"]), st.text(max_size=9)),
)
DATE_RANGES = mostly(
    st.sampled_from([["1995-01-01", "1995-12-31"], ["1992-01-01", "1998-12-31"], ["last 7 days"], ["1996"]]),
    st.lists(HOSTILE_TEXT, min_size=1, max_size=2),
)
SALES_MEASURES = mostly(st.sampled_from(["sales.quantity", "sales.orders_count"]), OFF_LIMITS)
SALES_DIMENSIONS = mostly(
    st.sampled_from(["sales.shipmode", "sales.returnflag", "sales.mktsegment"]), OFF_LIMITS
)
HIDDEN_FROM_ANALYSTS = ("sales.orders_total_price", "customer.tenant", "orders.", "lineitem.", "nation.")
TEXT_OPERATORS = ["equals", "notEquals", "contains", "notContains", "startsWith", "endsWith"]
# fmt: on
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check_subset(body: dict[str, Any], allowed: Callable[[dict[str, Any]], bool]) -> None:
    """Either rows the analyst may see, or a clean coded error with no rows."""
    if body.get("errors"):
        event(f"error {error_code(body)}")
        return
    rows = body["data"]["load"]["data"]
    event("rows" if rows else "no rows")
    for row in rows:
        assert allowed(row), row


@pytest.fixture(scope="module")
def europe(sql: Sql) -> dict[str, Any]:
    customers = customers_by_region(sql, "EUROPE")
    revenue = sum(revenue_by_shipmode(sql, "EUROPE").values())
    names = {n for (n,) in sql.rows(f"SELECT c_name FROM {CUSTOMER_REGION} WHERE r_name = 'EUROPE'")}
    return {"customers": customers, "revenue": revenue, "names": names}


def _europe_customer_row(limits: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    def allowed(row: dict[str, Any]) -> bool:
        region_ok = row.get("customer.region", "EUROPE") == "EUROPE"
        count = row.get("customer.count")
        phone = row.get("customer.phone")
        return (
            region_ok
            and (count is None or 0 <= count <= limits["customers"])
            and (phone is None or re.fullmatch(r"\*\*\*-\d{4}", phone) is not None)
            and set(row) <= {"customer.region", "customer.count", "customer.phone", "customer.mktsegment"}
        )

    return allowed


@SETTINGS
@given(filters=st.lists(FILTERS, max_size=2), order=st.lists(MEMBERS, max_size=2), timezone=TIMEZONES)
def test_hostile_filters_order_and_timezone_never_widen(
    server: Any, europe: dict[str, Any], filters: list[dict[str, Any]], order: list[str], timezone: str
) -> None:
    query = query_input(
        {
            "measures": ["customer.count"],
            "dimensions": ["customer.region", "customer.phone", "customer.mktsegment"],
            "filters": filters,
            "timezone": timezone,
            "limit": 50,
        }
    )
    query["order"] = [{"id": key, "desc": index % 2 == 0} for index, key in enumerate(order)]
    body = gql(server, "eve", LOAD_FULL, {"q": query})
    _check_subset(body, _europe_customer_row(europe))
    if not body.get("errors"):
        assert body["data"]["load"]["sql"] is None


@SETTINGS
@given(
    filters=st.lists(
        st.fixed_dictionaries(
            {
                "member": st.sampled_from(["customer.region", "customer.phone", "customer.mktsegment"]),
                "operator": st.sampled_from(TEXT_OPERATORS),
                "values": st.lists(HOSTILE_TEXT, min_size=1, max_size=3),
            }
        ),
        min_size=1,
        max_size=3,
    ),
    combine=st.sampled_from(["and", "or"]),
)
def test_hostile_filter_values_reach_sql_and_never_widen(
    server: Any, europe: dict[str, Any], filters: list[dict[str, Any]], combine: str
) -> None:
    """Only the values are hostile, so these queries do run: values stay values, however they read."""
    query = {
        "measures": ["customer.count"],
        "dimensions": ["customer.region", "customer.phone", "customer.mktsegment"],
        "filters": [{combine: filters}],
        "limit": 50,
    }
    body = gql(server, "eve", LOAD_FULL, {"q": query_input(query)})
    _check_subset(body, _europe_customer_row(europe))


@SETTINGS
@given(
    measures=st.lists(SALES_MEASURES, max_size=1),
    dimensions=st.lists(SALES_DIMENSIONS, max_size=2),
    granularity=GRANULARITIES,
    date_range=DATE_RANGES,
    timezone=TIMEZONES,
)
def test_hostile_members_granularities_and_ranges_never_widen(
    server: Any,
    europe: dict[str, Any],
    measures: list[str],
    dimensions: list[str],
    granularity: str,
    date_range: list[str],
    timezone: str,
) -> None:
    query = {
        "measures": ["sales.revenue", *measures],
        "dimensions": ["sales.region", *dimensions],
        "timeDimensions": [
            {"dimension": "sales.orders_orderdate", "granularity": granularity, "dateRange": date_range}
        ],
        "timezone": timezone,
        "limit": 50,
    }
    body = gql(server, "eve", LOAD_FULL, {"q": query})
    if body.get("errors"):
        event(f"error {error_code(body)}")
        return
    rows = body["data"]["load"]["data"]
    event("rows" if rows else "no rows")
    assert all(r.get("sales.region") == "EUROPE" for r in rows), rows[:3]
    assert sum(r["sales.revenue"] or 0 for r in rows) <= europe["revenue"] * (1 + 1e-9)
    for row in rows:  # an analyst may add customer members; never hidden ones, never others' values
        assert not [k for k in row if k.startswith(HIDDEN_FROM_ANALYSTS)], row
        assert "customer.name" not in row or row["customer.name"] in europe["names"], row
        phone = row.get("customer.phone")
        assert phone is None or re.fullmatch(r"\*\*\*-\d{4}", phone), row
