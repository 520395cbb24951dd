"""The audit log: rows as recorded, read back with plain SQL, on SQLite and on PostgreSQL.

PostgreSQL tests each get a throwaway schema reached through `search_path`, dropped afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import URL, inspect, text

from fab_ui import create_app
from fab_ui.bootstrap import ADMIN_PASSWORD_ENV
from headless_bi.errors import FORBIDDEN, ForbiddenError
from headless_bi.runtime import Settings
from headless_bi.security.audit import ERROR_MAX_CHARS, TABLE, AuditEvent, AuditLog, AuditRecord, sql_hash
from headless_bi.security.context import SecurityContext

# Raised inside Flask-AppBuilder 5.3's own forms (the admin page tests), not by this code.
pytestmark = [
    pytest.mark.filterwarnings("ignore:'DateTimeField' renders:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Yielding raw tuples from iter_choices:DeprecationWarning"),
]


COLUMNS = ["at", "user", "roles", "auth", "path", "query", "sql_hash", "rows", "duration_ms", "outcome",
           "error"]
QUOTED = ", ".join(f'"{c}"' for c in COLUMNS)  # "user" is a reserved word in PostgreSQL
SELECT = f"SELECT {QUOTED} FROM {TABLE} ORDER BY id"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'metadata.db'}"


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    schema = f"hbi_audit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_url(pg_dsn: str, pg_schema: str) -> str:
    params = conninfo_to_dict(pg_dsn)
    return URL.create(
        "postgresql+psycopg", username=params.get("user"), password=params.get("password"),
        host=params.get("host"), port=int(params.get("port") or 5432), database=params.get("dbname"),
        query={"options": f"-csearch_path={pg_schema}"},
    ).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def audit(metadata_url: str) -> Iterator[AuditLog]:
    log = AuditLog(metadata_url, flush_interval_s=0.05)
    yield log
    log.close()


def rows(log: AuditLog) -> list[dict[str, Any]]:
    with log.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(SELECT))]


def stored(event: AuditEvent) -> dict[str, Any]:
    """The row `event` should become; SQLite keeps UTC timestamps without their zone."""
    return {
        "at": event.at, "user": event.user, "roles": ",".join(sorted(event.roles)), "auth": event.auth,
        "path": event.path, "query": event.query, "sql_hash": event.sql_hash, "rows": event.rows,
        "duration_ms": event.duration_ms, "outcome": event.outcome, "error": event.error,
    }


def same_time(row: dict[str, Any]) -> dict[str, Any]:
    at = row["at"]
    if isinstance(at, str):  # SQLite through plain SQL
        at = datetime.fromisoformat(at)
    return {**row, "at": at if at.tzinfo else at.replace(tzinfo=UTC)}


def test_three_events_are_stored_field_by_field(audit: AuditLog) -> None:
    ctx = SecurityContext.create("ann", ["Analyst", "Viewer"], auth="jwt")
    sql = "SELECT sum(amount) FROM orders WHERE region = 'EU'"
    events = [
        AuditEvent.create(ctx, "graphql", query={"measures": ["orders.count"], "limit": 10}, sql=sql,
                          rows=42, duration_ms=12.5),
        AuditEvent.create(ctx, "load", query={"measures": ["orders.secret"]},
                          error=ForbiddenError("Member 'orders.secret' is not visible to you.")),
        AuditEvent("bob", "cli", outcome="TIMEOUT", roles=("Admin",), auth="local", error="took too long",
                   duration_ms=30000.0, at=datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)),
    ]
    for event in events:
        audit.record(event)
    assert audit.flush()
    assert [same_time(row) for row in rows(audit)] == [stored(e) for e in events]
    first, second, _ = rows(audit)
    assert first["sql_hash"] == hashlib.sha256(sql.encode()).hexdigest()
    assert json.loads(first["query"]) == {"measures": ["orders.count"], "limit": 10}
    assert first["roles"] == "Analyst,Viewer" and first["auth"] == "jwt" and first["outcome"] == "ok"
    assert second["outcome"] == FORBIDDEN
    assert second["error"] == "Member 'orders.secret' is not visible to you."
    assert second["sql_hash"] is None and second["rows"] is None


def test_the_sql_itself_is_never_stored(audit: AuditLog) -> None:
    sql = "SELECT * FROM orders WHERE tenant_id = 'acme-secret-tenant'"
    audit.record(AuditEvent.create(SecurityContext("ann"), "graphql", sql=sql))
    audit.flush()
    (row,) = rows(audit)
    assert row["sql_hash"] == sql_hash(sql) and len(row["sql_hash"]) == 64
    assert "acme-secret-tenant" not in json.dumps(row, default=str)


def test_long_values_are_cut_not_refused(audit: AuditLog) -> None:
    audit.record(AuditEvent("u" * 300, "p" * 40, outcome="X" * 40, error="e" * 5000))
    audit.record(AuditEvent("ann", "graphql"))
    assert audit.flush()
    long, short = rows(audit)
    assert len(long["user"]) == 255 and len(long["path"]) == 32 and len(long["outcome"]) == 32
    assert len(long["error"]) == ERROR_MAX_CHARS and long["error"].endswith("…")
    assert short["user"] == "ann"


def test_record_returns_at_once_and_batches(audit: AuditLog) -> None:
    started = time.perf_counter()
    for n in range(1000):
        audit.record(AuditEvent(f"user{n}", "graphql", rows=n))
    assert time.perf_counter() - started < 0.5  # queueing only: no DB round trip per event
    assert audit.flush()
    assert [row["rows"] for row in rows(audit)] == list(range(1000))


def test_writer_flushes_on_its_own(metadata_url: str) -> None:
    audit = AuditLog(metadata_url)  # default interval: at most 0.5 s until written
    try:
        audit.record(AuditEvent("ann", "graphql"))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not _count(audit):
            time.sleep(0.05)
        assert _count(audit) == 1
    finally:
        audit.close()


def _count(audit: AuditLog) -> int:
    with audit.engine.connect() as conn:
        try:
            return conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one()
        except Exception:  # not created yet
            return 0


def test_writer_survives_a_dropped_table(audit: AuditLog, caplog: pytest.LogCaptureFixture) -> None:
    audit.record(AuditEvent("ann", "graphql"))
    assert audit.flush()
    with audit.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {TABLE}"))
    with caplog.at_level(logging.ERROR, logger="headless_bi.security.audit"):
        audit.record(AuditEvent("bob", "load"))
        assert audit.flush()
    assert any("failed" in r.getMessage() for r in caplog.records)  # logged, not raised
    audit.record(AuditEvent("cy", "cube"))
    assert audit.flush()
    assert [row["user"] for row in rows(audit)] == ["bob", "cy"]  # the failed batch was retried
    assert audit.dropped == 0


def test_unreachable_db_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog("postgresql://postgres@127.0.0.1:1/test", flush_interval_s=0.02)
    with caplog.at_level(logging.ERROR, logger="headless_bi.security.audit"):
        started = time.perf_counter()
        for _ in range(10):
            audit.record(AuditEvent("ann", "graphql"))
        assert time.perf_counter() - started < 0.1
        assert audit.flush(timeout_s=10)
        audit.record(AuditEvent("bob", "graphql"))
        assert audit.flush(timeout_s=10)  # the writer thread is still alive and working
    audit.close()
    assert audit.dropped == 11
    assert any("dropped 10 events" in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
def test_full_queue_drops_the_oldest(pg_dsn: str, pg_schema: str, pg_url: str,
                                     caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog(pg_url, flush_interval_s=0.02, max_queue=5)
    audit.record(AuditEvent("first", "graphql"))
    assert audit.flush()
    with psycopg.connect(pg_dsn) as blocker:  # hold a lock: the writer's next insert waits on it
        blocker.execute(f'LOCK TABLE "{pg_schema}".{TABLE} IN ACCESS EXCLUSIVE MODE')
        audit.record(AuditEvent("blocked", "graphql"))
        _wait_for_lock_waiter(pg_dsn, f'"{pg_schema}".{TABLE}')
        with caplog.at_level(logging.WARNING, logger="headless_bi.security.audit"):
            for n in range(8):
                audit.record(AuditEvent(f"u{n}", "graphql"))
        blocker.rollback()
    assert audit.flush()
    audit.close()
    users = [row["user"] for row in rows(audit)]
    assert users == ["first", "blocked", "u3", "u4", "u5", "u6", "u7"]  # u0..u2 were the oldest waiting
    assert audit.dropped == 3
    assert any("Audit queue full" in r.getMessage() for r in caplog.records)


def _wait_for_lock_waiter(pg_dsn: str, table: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for _ in range(200):
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass", [table]
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the audit writer never waited on the lock")


def test_concurrent_recorders(audit: AuditLog) -> None:
    def worker(name: str) -> None:
        for n in range(200):
            audit.record(AuditEvent(name, "graphql", rows=n))

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert audit.flush()
    got = rows(audit)
    assert len(got) == 800
    for i in range(4):
        assert [r["rows"] for r in got if r["user"] == f"t{i}"] == list(range(200))


def test_closed_log_drops_and_warns(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditLog(sqlite_url, flush_interval_s=0.05)
    audit.record(AuditEvent("ann", "graphql"))
    audit.close()  # writes what was queued
    assert _count(audit) == 1
    with caplog.at_level(logging.WARNING, logger="headless_bi.security.audit"):
        audit.record(AuditEvent("bob", "graphql"))
    assert "closed" in caplog.text
    assert audit.flush(timeout_s=1)


def test_times_are_stored_in_utc(audit: AuditLog) -> None:
    paris = timezone(timedelta(hours=2))
    audit.record(AuditEvent("ann", "graphql", at=datetime(2024, 5, 1, 14, 0, tzinfo=paris)))
    audit.record(AuditEvent("bob", "graphql", at=datetime(2024, 5, 1, 12, 30)))  # naive: taken as UTC
    assert audit.flush()
    assert [same_time(row)["at"] for row in rows(audit)] == [
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC), datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    ]


def test_event_timestamp_is_utc_now() -> None:
    event = AuditEvent("ann", "graphql")
    assert event.at.tzinfo is UTC
    assert abs(datetime.now(UTC) - event.at) < timedelta(seconds=5)


# The admin page ------------------------------------------------------------------------------------

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PASSWORD = "correct-horse-battery-staple"


def login(client: FlaskClient, username: str, password: str) -> Any:
    token = CSRF.search(client.get("/login/").get_data(as_text=True))
    assert token, "login form has no CSRF token"
    return client.post("/login/", data={"username": username, "password": password, "csrf_token": token[1]})


@pytest.fixture
def ui_app(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, PASSWORD)
    app = create_app(Settings(metadata_url=sqlite_url), var_dir=tmp_path / "var")
    with app.app_context():  # FAB's create_all made the table, before any AuditLog existed
        assert TABLE in inspect(app.appbuilder.session.get_bind()).get_table_names()
    audit = AuditLog(sqlite_url, flush_interval_s=0.05)
    base = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    audit.record(AuditEvent("ann", "graphql", rows=7, at=base))
    audit.record(AuditEvent("bob", "load", outcome=FORBIDDEN, error="not for you",
                            at=base + timedelta(hours=1)))
    audit.record(AuditEvent("cyd", "cli", rows=1, at=base + timedelta(hours=2)))
    audit.close()
    return app


def test_admin_lists_the_audit_log_newest_first(ui_app: Flask) -> None:
    client = ui_app.test_client()
    assert client.get("/auditlog/list/").location.startswith("/login/")
    assert login(client, "admin", PASSWORD).location == "/"
    response = client.get("/auditlog/list/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    positions = [page.find(f">{user}<") for user in ("cyd", "bob", "ann")]
    assert -1 not in positions and positions == sorted(positions), positions
    assert FORBIDDEN in page
    assert 'href="/auditlog/list/"' in client.get("/catalog/").get_data(as_text=True)  # in the menu
    searched = client.get("/auditlog/list/?_flt_0_user=bob").get_data(as_text=True)
    assert ">bob<" in searched and ">ann<" not in searched and ">cyd<" not in searched
    with ui_app.app_context():
        ids = [r.id for r in ui_app.appbuilder.session.query(AuditRecord).filter_by(user="bob")]
    shown = client.get(f"/auditlog/show/{ids[0]}").get_data(as_text=True)
    assert "not for you" in shown


def test_audit_log_is_read_only_even_for_admin(ui_app: Flask) -> None:
    client = ui_app.test_client()
    login(client, "admin", PASSWORD)
    assert client.get("/auditlog/add").status_code in (302, 403, 404)
    assert client.get("/auditlog/edit/1").status_code in (302, 403, 404)
    assert client.get("/auditlog/delete/1").status_code in (302, 403, 404, 405)
    with ui_app.app_context():
        assert ui_app.appbuilder.session.query(AuditRecord).count() == 3
        granted = {pv.permission.name for pv in ui_app.appbuilder.sm.find_role("Admin").permissions
                   if pv.view_menu.name == "AuditLogView"}
    assert granted == {"can_list", "can_show"}


def test_analyst_is_refused_the_audit_log(ui_app: Flask) -> None:
    with ui_app.app_context():
        sm = ui_app.appbuilder.sm
        assert sm.add_user("al", "Al", "Yst", "al@example.com", sm.find_role("Analyst"), password=PASSWORD)
    client = ui_app.test_client()
    assert login(client, "al", PASSWORD).location == "/"
    assert client.get("/catalog/").status_code == 200
    assert client.get("/auditlog/list/").status_code == 403
    assert client.get("/auditlog/show/1").status_code == 403
    assert 'href="/auditlog/list/"' not in client.get("/catalog/").get_data(as_text=True)  # no menu entry
