"""The Flask-AppBuilder UI: login, first-start bootstrap, the metadata DB, and serving through a2wsgi.

Every app gets its own SQLite file and var folder under tmp_path; the PostgreSQL test uses a
throwaway schema reached through `search_path`, so configuration alone moves the metadata DB.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from a2wsgi import WSGIMiddleware
from flask import Flask
from flask.testing import FlaskClient
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import URL

from fab_ui import create_app
from fab_ui.bootstrap import ADMIN_PASSWORD_ENV
from fab_ui.config import metadata_uri
from headless_bi.runtime import Settings
from headless_bi.semantic.loader import load_models

PASSWORD = "correct-horse-battery-staple"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
MODELS = Path(__file__).resolve().parents[1] / "semantic_models" / "demo"

AppFactory = Callable[..., Flask]

# Raised inside Flask-AppBuilder 5.3's own security forms, not by this code.
pytestmark = [
    pytest.mark.filterwarnings("ignore:'DateTimeField' renders:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Yielding raw tuples from iter_choices:DeprecationWarning"),
]


@pytest.fixture
def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppFactory:
    """`create_app` on a SQLite file and var folder in tmp_path, with the admin password from env."""
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, PASSWORD)

    def make(metadata_url: str | None = None, **kwargs: Any) -> Flask:
        settings = Settings(metadata_url=metadata_url or f"sqlite:///{tmp_path / 'metadata.db'}")
        return create_app(settings, var_dir=tmp_path / "var", **kwargs)

    return make


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """One app for the tests that only read: a first start costs a second (FAB's permissions)."""
    folder = tmp_path_factory.mktemp("fab_ui")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ADMIN_PASSWORD_ENV, PASSWORD)
        return create_app(Settings(metadata_url=f"sqlite:///{folder / 'metadata.db'}"), var_dir=folder)


@pytest.fixture
def client(shared_app: Flask) -> FlaskClient:
    """A fresh client (no cookies) on the shared app."""
    return shared_app.test_client()


def login(client: FlaskClient, username: str, password: str) -> Any:
    token = CSRF.search(client.get("/login/").get_data(as_text=True))
    assert token, "login form has no CSRF token"
    return client.post("/login/", data={"username": username, "password": password, "csrf_token": token[1]})


def count_users(app: Flask) -> int:
    with app.app_context():
        return app.appbuilder.sm.count_users()


def test_login_page_renders(client: FlaskClient) -> None:
    response = client.get("/login/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="username"' in page and 'name="password"' in page
    assert CSRF.search(page)


def test_home_page_says_what_it_is_and_links_graphiql(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "headless-bi" in page and "GraphQL" in page
    assert 'href="/graphql"' in page


def test_admin_logs_in_with_the_env_password(client: FlaskClient) -> None:
    response = login(client, "admin", PASSWORD)
    assert response.status_code == 302 and not response.location.startswith("/login")
    users = client.get("/users/list/")
    assert users.status_code == 200
    assert "admin@example.com" in users.get_data(as_text=True)


def test_bad_password_is_refused(client: FlaskClient) -> None:
    response = login(client, "admin", PASSWORD + "x")
    assert response.status_code == 302 and response.location.startswith("/login/")
    assert "Invalid login" in client.get(response.location).get_data(as_text=True)
    assert client.get("/users/list/").location.startswith("/login/")


def test_login_without_csrf_token_is_refused(client: FlaskClient) -> None:
    response = client.post("/login/", data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/users/list/").location.startswith("/login/")


def test_users_list_requires_login(client: FlaskClient) -> None:
    response = client.get("/users/list/")
    assert response.status_code == 302
    assert response.location.startswith("/login/")


def test_roles_exist_with_catalog_access(make_app: AppFactory) -> None:
    app = make_app()
    with app.app_context():
        sm = app.appbuilder.sm
        assert sm.find_role("Admin") is not None
        for name in ("Analyst", "Viewer"):
            role = sm.find_role(name)
            assert role is not None
            granted = {(pv.permission.name, pv.view_menu.name) for pv in role.permissions}
            assert granted == {
                ("can_list", "CatalogView"), ("menu_access", "Catalog"),
                ("can_ask", "AskView"), ("menu_access", "Ask"),
            }


def test_second_start_does_not_create_a_second_admin(make_app: AppFactory) -> None:
    first = make_app()
    second = make_app()
    assert count_users(first) == count_users(second) == 1
    assert login(second.test_client(), "admin", PASSWORD).location == "/"


def test_random_admin_password_is_printed_once(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ADMIN_PASSWORD_ENV)
    app = make_app()
    out = capsys.readouterr().out
    printed = re.search(r"Created admin user 'admin' with password (\S+) — change it", out)
    assert printed and printed[1] != PASSWORD
    make_app()
    assert "Created admin user" not in capsys.readouterr().out
    assert login(app.test_client(), "admin", printed[1]).location == "/"


def test_no_admin_is_created_when_another_admin_exists(make_app: AppFactory) -> None:
    app = make_app()
    with app.app_context():
        sm = app.appbuilder.sm
        sm.add_user("root", "R", "Oot", "root@example.com", sm.find_role("Admin"), password=PASSWORD)
        assert sm.delete_user(sm.find_user(username="admin"))
    make_app()
    with app.app_context():
        assert app.appbuilder.sm.find_user(username="admin") is None


def test_generated_secret_key_persists(make_app: AppFactory, tmp_path: Path) -> None:
    first, second = make_app(), make_app()
    key_file = tmp_path / "var" / "secret_key"
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key_file.read_text()
    assert len(first.config["SECRET_KEY"]) >= 32
    assert key_file.stat().st_mode & 0o077 == 0
    client = first.test_client()
    login(client, "admin", PASSWORD)
    cookie = client.get_cookie("session")
    assert cookie is not None
    other = second.test_client()
    other.set_cookie("session", cookie.value)
    assert other.get("/users/list/").status_code == 200  # the session survives a "restart"


def test_secret_key_from_settings_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, PASSWORD)
    settings = Settings(metadata_url=f"sqlite:///{tmp_path / 'm.db'}", secret_key="k" * 40)
    app = create_app(settings, var_dir=tmp_path / "var")
    assert app.config["SECRET_KEY"] == "k" * 40
    assert not (tmp_path / "var" / "secret_key").exists()
    assert not app.debug


def test_catalog_lists_the_model(make_app: AppFactory) -> None:
    model = load_models(str(MODELS))
    client = make_app(model_provider=lambda: model).test_client()
    assert client.get("/catalog/").location.startswith("/login/")
    login(client, "admin", PASSWORD)
    page = client.get("/catalog/").get_data(as_text=True)
    assert model.version in page
    for name, cube in model.cubes.items():
        assert (f"<code>{name}</code>" in page) == cube.public


def test_catalog_without_a_model(client: FlaskClient) -> None:
    login(client, "admin", PASSWORD)
    assert "No semantic model is loaded" in client.get("/catalog/").get_data(as_text=True)


def test_viewer_reads_the_catalog_but_not_the_users(make_app: AppFactory) -> None:
    app = make_app()
    with app.app_context():
        sm = app.appbuilder.sm
        assert sm.add_user("vera", "Vera", "V", "vera@example.com", sm.find_role("Viewer"), password=PASSWORD)
    client = app.test_client()
    assert login(client, "vera", PASSWORD).location == "/"
    assert client.get("/catalog/").status_code == 200
    assert client.get("/users/list/").status_code == 403


def test_served_through_a2wsgi(make_app: AppFactory) -> None:
    asgi = WSGIMiddleware(make_app())

    async def run() -> None:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            page = await http.get("/login/")
            assert page.status_code == 200
            token = CSRF.search(page.text)
            assert token
            assert (await http.get("/static/appbuilder/css/ab.css")).status_code == 200
            response = await http.post(
                "/login/", data={"username": "admin", "password": PASSWORD, "csrf_token": token[1]}
            )
            assert response.status_code == 302 and response.headers["location"] == "/"
            assert (await http.get("/users/list/")).status_code == 200

    asyncio.run(run())


def test_metadata_uri_normalises_sqlite_and_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert metadata_uri("sqlite:///var/metadata.db") == f"sqlite:///{tmp_path / 'var' / 'metadata.db'}"
    assert (tmp_path / "var").is_dir()
    assert metadata_uri("sqlite://") == "sqlite://"
    assert metadata_uri("postgresql://u:p@h:5433/db") == "postgresql+psycopg://u:p@h:5433/db"
    assert metadata_uri("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards."""
    schema = f"hbi_fab_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
def test_metadata_db_on_postgres(make_app: AppFactory, pg_dsn: str, pg_schema: str) -> None:
    params = conninfo_to_dict(pg_dsn)
    url = URL.create(
        "postgresql+psycopg", username=params.get("user"), password=params.get("password"),
        host=params.get("host"), port=int(params.get("port") or 5432), database=params.get("dbname"),
        query={"options": f"-csearch_path={pg_schema}"},
    ).render_as_string(hide_password=False)
    apps = [make_app(url), make_app(url)]
    try:
        assert count_users(apps[1]) == 1
        client = apps[1].test_client()
        assert login(client, "admin", PASSWORD).location == "/"
        assert client.get("/users/list/").status_code == 200
        with psycopg.connect(pg_dsn) as conn:
            tables = {row[0] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [pg_schema]
            )}
            roles = {row[0] for row in conn.execute(f'SELECT name FROM "{pg_schema}".ab_role')}
        assert {"ab_user", "ab_role", "ab_permission_view"} <= tables
        assert {"Admin", "Analyst", "Viewer"} <= roles
    finally:
        for app in apps:
            with app.app_context():
                app.extensions["sqlalchemy"].engine.dispose()
