"""Access policies on real data: a multi-tenant TPC-H (sf0.1) where users see their region only.

Every expected number comes from plain SQL on the same DuckDB file, not from the compiler.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from headless_bi.errors import FORBIDDEN, HeadlessBIError, UnknownMemberError
from headless_bi.security import SecurityContext
from headless_bi.security.govern import govern
from headless_bi.semantic.catalog import members, owners
from headless_bi.semantic.compiler import compile_query
from headless_bi.semantic.loader import load_models
from headless_bi.service import run_query
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse
from headless_bi.warehouse.files import load_files

MODELS = Path(__file__).parent / "models" / "secure"
TABLES = ("customer", "orders", "lineitem", "nation", "region")

REGION_OF_CUSTOMER = (
    "customer JOIN nation ON c_nationkey = n_nationkey JOIN region ON n_regionkey = r_regionkey"
)


@pytest.fixture(scope="module")
def tpch(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = shared_data / "tpch_sf0.1"
    path = tmp_path_factory.mktemp("secure") / "tpch.duckdb"
    load_files([folder / f"{t}.parquet" for t in TABLES], str(path))
    warehouse = DuckDBWarehouse(str(path))
    yield load_models(MODELS), warehouse
    warehouse.close()


def user(*roles: str, **attributes: str | list[str]) -> SecurityContext:
    return SecurityContext.create("u", roles, attributes)


def rows(tpch, query: dict, security: SecurityContext | None) -> list[dict]:
    model, warehouse = tpch
    return run_query(model, warehouse, query, security=security).data


def scalar(tpch, sql: str) -> float:
    value = tpch[1].execute(sql).column(0)[0].as_py()
    return float(value) if isinstance(value, Decimal) else value


def customers_in(tpch, *regions: str) -> int:
    listed = ", ".join(f"'{r}'" for r in regions)
    return scalar(tpch, f"SELECT count(*) FROM {REGION_OF_CUSTOMER} WHERE r_name IN ({listed})")


def revenue_in(tpch, region: str) -> float:
    return scalar(
        tpch,
        "SELECT sum(l_extendedprice * (1 - l_discount)) FROM lineitem JOIN orders ON l_orderkey = o_orderkey "
        f"JOIN {REGION_OF_CUSTOMER} ON o_custkey = c_custkey WHERE r_name = '{region}'",
    )


# -- rows ----------------------------------------------------------------------------------------


def test_each_region_sees_only_its_customers(tpch) -> None:
    query = {"measures": ["customer.count"]}
    europe = rows(tpch, query, user("Analyst", region="EUROPE"))
    asia = rows(tpch, query, user("Analyst", region="ASIA"))
    assert europe == [{"customer.count": customers_in(tpch, "EUROPE")}]
    assert asia == [{"customer.count": customers_in(tpch, "ASIA")}]
    assert europe != asia
    assert rows(tpch, query, user("Admin")) == [
        {"customer.count": scalar(tpch, "SELECT count(*) FROM customer")}
    ]


def test_grouping_by_region_shows_no_other_region(tpch) -> None:
    got = rows(
        tpch,
        {"measures": ["customer.count"], "dimensions": ["customer.region"]},
        user("Analyst", region="ASIA"),
    )
    assert got == [{"customer.region": "ASIA", "customer.count": customers_in(tpch, "ASIA")}]


def test_list_attribute_allows_each_listed_region(tpch) -> None:
    got = rows(tpch, {"measures": ["customer.count"]}, user("Analyst", region=["EUROPE", "ASIA"]))
    assert got == [{"customer.count": customers_in(tpch, "EUROPE", "ASIA")}]


def test_missing_attribute_denies_instead_of_widening(tpch) -> None:
    assert rows(tpch, {"measures": ["customer.count"]}, user("Analyst")) == [{"customer.count": 0}]
    got = rows(tpch, {"measures": ["sales.revenue"]}, user("Analyst"))
    assert got == [{"sales.revenue": None}]


def test_hostile_attribute_value_is_a_value(tpch) -> None:
    hostile = user("Analyst", region="EUROPE' OR '1'='1")
    assert rows(tpch, {"measures": ["customer.count"]}, hostile) == [{"customer.count": 0}]


def test_view_row_filter_reaches_cubes_the_query_does_not_name(tpch) -> None:
    """`sales.revenue` alone reads only lineitem; the view's region filter still joins to customer."""
    got = rows(tpch, {"measures": ["sales.revenue"]}, user("Analyst", region="EUROPE"))
    assert got[0]["sales.revenue"] == pytest.approx(revenue_in(tpch, "EUROPE"), rel=1e-9)
    everything = rows(tpch, {"measures": ["sales.revenue"]}, user("Admin"))
    total = scalar(tpch, "SELECT sum(l_extendedprice * (1 - l_discount)) FROM lineitem")
    assert everything[0]["sales.revenue"] == pytest.approx(total, rel=1e-9)


def test_view_and_cube_row_filters_both_apply(tpch) -> None:
    """An Analyst of EUROPE with a view policy for everyone: the view filter and the customer cube's
    own filter both restrict; grouping by the view's region shows one region."""
    query = {"measures": ["sales.orders_count"], "dimensions": ["sales.region"]}
    got = rows(tpch, query, user("Analyst", region="EUROPE"))
    expected = scalar(
        tpch,
        f"SELECT count(*) FROM orders JOIN {REGION_OF_CUSTOMER} ON o_custkey = c_custkey "
        "WHERE r_name = 'EUROPE'",
    )
    assert got == [{"sales.region": "EUROPE", "sales.orders_count": expected}]


def test_policy_filters_are_inside_the_cube_source_before_aggregation(tpch) -> None:
    compiled = compile_query(
        tpch[0], {"measures": ["customer.count", "customer.balance"]}, security=user("Analyst", region="ASIA")
    )
    sql = compiled.sql
    assert 'FROM (SELECT * FROM customer AS "customer" WHERE' in sql, sql  # inside the FROM subquery
    assert "'ASIA'" in sql


def test_segment_and_filter_paths_are_restricted(tpch) -> None:
    query = {
        "measures": ["customer.count"],
        "segments": ["customer.wealthy"],
        "filters": [{"member": "customer.mktsegment", "operator": "equals", "values": ["BUILDING"]}],
    }
    got = rows(tpch, query, user("Analyst", region="AFRICA"))
    expected = scalar(
        tpch,
        f"SELECT count(*) FROM {REGION_OF_CUSTOMER} WHERE r_name = 'AFRICA' AND c_acctbal > 9000 "
        "AND c_mktsegment = 'BUILDING'",
    )
    assert got == [{"customer.count": expected}]


def test_conditions_read_user_attributes(tpch) -> None:
    all_customers = scalar(tpch, "SELECT count(*) FROM customer")
    assert rows(tpch, {"measures": ["customer.count"]}, user("Auditor", clearance="high")) == [
        {"customer.count": all_customers}
    ]
    with pytest.raises(HeadlessBIError) as refused:
        rows(tpch, {"measures": ["customer.count"]}, user("Auditor", clearance="low"))
    assert refused.value.code == FORBIDDEN


# -- members -------------------------------------------------------------------------------------


def test_hidden_member_is_forbidden_and_never_suggested(tpch) -> None:
    viewer = user("Viewer", region="EUROPE")
    with pytest.raises(HeadlessBIError) as named:
        rows(tpch, {"dimensions": ["customer.name"]}, viewer)
    assert named.value.code == FORBIDDEN
    with pytest.raises(UnknownMemberError) as typo:
        rows(tpch, {"dimensions": ["customer.nam"]}, viewer)
    assert "customer.name" not in str(typo.value)
    with pytest.raises(HeadlessBIError) as in_filter:
        rows(
            tpch,
            {
                "measures": ["customer.count"],
                "filters": [{"member": "customer.acctbal", "operator": "gt", "values": [0]}],
            },
            viewer,
        )
    assert in_filter.value.code == FORBIDDEN


def test_role_without_policy_sees_nothing_of_the_cube(tpch) -> None:
    stranger = user("Guest", region="EUROPE")
    with pytest.raises(HeadlessBIError) as refused:
        rows(tpch, {"measures": ["customer.count"]}, stranger)
    assert refused.value.code == FORBIDDEN
    governed = govern(tpch[0], stranger).model
    assert [o.name for o in owners(governed)] == ["sales"]


def test_catalog_lists_only_what_the_role_may_use(tpch) -> None:
    governed = govern(tpch[0], user("Viewer", region="EUROPE")).model
    customer = governed.cubes["customer"]
    assert sorted(v.name for v in members(governed, customer)) == ["balance", "count", "mktsegment", "region"]
    sales = governed.views["sales"]
    assert "orders_total_price" not in {v.name for v in members(governed, sales)}
    admin = govern(tpch[0], user("Admin")).model
    assert "orders_total_price" in {v.name for v in members(admin, admin.views["sales"])}


def test_masked_members_return_and_filter_only_the_mask(tpch) -> None:
    analyst = user("Analyst", region="EUROPE")
    got = rows(
        tpch, {"dimensions": ["customer.phone"], "order": {"customer.phone": "asc"}, "limit": 3}, analyst
    )
    assert got and all(r["customer.phone"].startswith("***-") and len(r["customer.phone"]) == 8 for r in got)
    real_phone = scalar(tpch, f"SELECT c_phone FROM {REGION_OF_CUSTOMER} WHERE r_name = 'EUROPE' LIMIT 1")
    probe = {
        "measures": ["customer.count"],
        "filters": [{"member": "customer.phone", "operator": "equals", "values": [real_phone]}],
    }
    assert rows(tpch, probe, analyst) == [{"customer.count": 0}]  # the real value matches nothing
    masked_balance = rows(tpch, {"measures": ["customer.balance"]}, user("Viewer", region="EUROPE"))
    assert masked_balance == [{"customer.balance": -1}]


def test_same_query_same_sql_shape_for_two_regions_but_different_numbers(tpch) -> None:
    query = {
        "measures": ["sales.revenue"],
        "dimensions": ["sales.shipmode"],
        "order": {"sales.shipmode": "asc"},
    }
    europe = rows(tpch, query, user("Analyst", region="EUROPE"))
    america = rows(tpch, query, user("Analyst", region="AMERICA"))
    expected = (
        tpch[1]
        .execute(
            "SELECT l_shipmode, sum(l_extendedprice * (1 - l_discount)) FROM lineitem "
            f"JOIN orders ON l_orderkey = o_orderkey JOIN {REGION_OF_CUSTOMER} ON o_custkey = c_custkey "
            "WHERE r_name = 'AMERICA' GROUP BY 1 ORDER BY 1"
        )
        .to_pylist()
    )
    assert [r["sales.shipmode"] for r in america] == [e["l_shipmode"] for e in expected]
    for got, want in zip(america, expected, strict=True):
        assert got["sales.revenue"] == pytest.approx(float(list(want.values())[1]), rel=1e-9)
    assert europe != america


# -- the result cache ----------------------------------------------------------------------------


def test_result_cache_is_never_shared_across_policies(tpch, tmp_path: Path) -> None:
    from headless_bi.runtime import Runtime, Settings

    model, warehouse = tpch
    settings = Settings(metadata_url=f"sqlite:///{tmp_path / 'm.db'}", audit=False, result_cache_ttl_s=60)
    runtime = Runtime(settings, warehouse, model)
    query = {"measures": ["sales.revenue"]}
    admin = runtime.query(query, security=user("Admin"), path="load").data
    analyst = runtime.query(query, security=user("Analyst", region="ASIA"), path="load").data
    assert runtime.results.hits == 0  # the admin's cached total was not served to the analyst
    assert analyst[0]["sales.revenue"] == pytest.approx(revenue_in(tpch, "ASIA"), rel=1e-9)
    assert admin[0]["sales.revenue"] != analyst[0]["sales.revenue"]
    again = runtime.query(query, security=user("Analyst", region="ASIA"), path="load").data
    assert again == analyst and runtime.results.hits == 1  # same policies: served from the cache
    other = runtime.query(query, security=user("Analyst", region="EUROPE"), path="load").data
    assert runtime.results.hits == 1
    assert other[0]["sales.revenue"] == pytest.approx(revenue_in(tpch, "EUROPE"), rel=1e-9)
    runtime.query({**query, "renewQuery": True}, security=user("Admin"), path="load")
    runtime.query(query, security=user("Admin"))  # internal re-runs (live polls) bypass the cache
    assert runtime.results.hits == 1
