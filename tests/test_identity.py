"""Identity and authentication, end to end on real metadata DBs (a SQLite file and PostgreSQL).

- The CLI creates users, roles, tokens and API keys in FAB's own tables; the admin UI and the API
  accept each other's users (same password hashing).
- Every way a credential can be wrong is refused with UNAUTHENTICATED and its own message.
- A revoked key or a changed role takes effect within the ~2 s cache, also for `recheck`.
- Over HTTP: 401 without credentials, the login endpoint's token works on /graphql, WebSockets
  authenticate from the connection_init payload, and the admin UI's session cookie is accepted.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from werkzeug.security import generate_password_hash

from headless_bi import cli
from headless_bi.errors import AuthenticationError
from headless_bi.graphql import make_context
from headless_bi.runtime import Runtime, Settings
from headless_bi.security import tokens
from headless_bi.security.authenticate import Authenticator, _session_serializer
from headless_bi.security.context import SecurityContext
from headless_bi.security.metadata import metadata_engine
from headless_bi.security.store import IdentityStore, Role, User
from headless_bi.semantic.loader import load_models
from headless_bi.warehouse.duckdb_warehouse import DuckDBWarehouse

ROOT = Path(__file__).resolve().parents[1]
SECRET = "identity-test-secret-0123456789-abcdefghij"
MODELS = ROOT / "tests" / "models" / "jaffle"
TYPENAME = {"query": "{ __typename }"}


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh metadata DB: a SQLite file, or a PostgreSQL schema of its own dropped afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'metadata.db'}"
        yield url
        metadata_engine(url).dispose()
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = f"hbi_identity_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    parts = conninfo_to_dict(dsn)
    auth = parts.get("user", "postgres") + (f":{parts['password']}" if parts.get("password") else "")
    url = (
        f"postgresql://{auth}@{parts.get('host', '127.0.0.1')}:{parts.get('port', 5432)}/"
        f"{parts.get('dbname', 'test')}?options=-csearch_path%3D{schema}"
    )
    try:
        yield url
    finally:
        metadata_engine(url).dispose()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def settings_for(url: str, **options: Any) -> Settings:
    return Settings(models=str(MODELS), warehouse=":memory:", metadata_url=url, secret_key=SECRET, **options)


def refused(authenticator: Authenticator, headers: dict[str, str]) -> str:
    with pytest.raises(AuthenticationError) as info:
        authenticator.authenticate(headers)
    assert info.value.code == "UNAUTHENTICATED"
    assert "\n" not in info.value.message and "Traceback" not in info.value.message
    return info.value.message


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- CLI and store -------------------------------------------------------------------------------


def test_cli_users_roles_tokens_and_keys(
    metadata_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HBI_SECRET_KEY", SECRET)  # `token` signs with the service's key
    url = ["--metadata-url", metadata_url]
    code, out, err = run_cli(
        capsys, "users", "add", "erin", "--role", "Analyst", "--role", "Viewer",
        "--attr", "region=EU", "--attr", "region=US", "--attr", "tenant_id=t1", "--password", "pw-erin", *url,
    )  # fmt: skip
    assert code == 0, err
    assert "erin" in out and "password" not in out.lower().replace("'erin'", "")
    code, out, _ = run_cli(capsys, "users", "add", "frank", "--role", "Viewer", *url)
    assert code == 0 and "shown only now" in out
    frank_password = out.split("password: ", 1)[1].split()[0]

    code, out, _ = run_cli(capsys, "roles", "list", *url)
    assert code == 0
    roles = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()[2:]}
    assert roles == {"Admin": 0, "Analyst": 1, "Viewer": 2}
    code, out, _ = run_cli(capsys, "users", "list", *url)
    assert code == 0 and "erin" in out and '"region": ["EU", "US"]' in out

    # Clean one-line errors, exit 2.
    for args, message in [
        (["users", "add", "erin", "--role", "Viewer"], "User 'erin' already exists."),
        (["users", "add", "gina", "--role", "Boss"], "Unknown role(s) 'Boss'"),
        (["users", "add", "gina", "--role", "Viewer", "--attr", "region"], "is not KEY=VALUE"),
        (["token", "ghost"], "User 'ghost' does not exist."),
        (["token", "erin", "--expires", "soon"], "--expires: 'soon' is not a duration"),
        (["keys", "create", "ci-bot"], "pass --user USER"),
        (["keys", "revoke", "k_00000000"], "does not exist"),
    ]:
        code, out, err = run_cli(capsys, *args, *url)
        assert code == 2 and err.startswith("error: ") and message in err, (args, err)
        assert err.count("\n") == 1

    code, out, _ = run_cli(capsys, "users", "set-attr", "frank", "region=APAC", *url)
    assert code == 0 and "region=APAC" in out

    authenticator = Authenticator(settings_for(metadata_url))
    # Tokens from the CLI, with roles and attributes from the DB.
    code, out, err = run_cli(capsys, "token", "erin", "--expires", "1h", *url)
    assert code == 0, err
    claims = tokens.verify_token(out.strip(), SECRET)
    assert claims.subject == "erin" and claims.expires_at - claims.issued_at == 3600 and claims.token_id
    context = authenticator.authenticate(bearer(out.strip()))
    assert context == SecurityContext.create(
        "erin", {"Analyst", "Viewer"}, {"region": ["EU", "US"], "tenant_id": "t1"}, auth="jwt"
    )
    assert authenticator.authenticate({"authorization": f"bearer {out.strip()}"}).user == "erin"

    # Passwords as FAB hashes them: the login path accepts the CLI's users.
    assert authenticator.login("erin", "pw-erin")[0]
    assert authenticator.login("frank", frank_password)[0]
    with pytest.raises(AuthenticationError, match="Invalid user name or password"):
        authenticator.login("erin", "wrong")
    with pytest.raises(AuthenticationError, match="Invalid user name or password"):
        authenticator.login("nobody", "pw-erin")

    # API keys: owner defaults to the user called NAME; --user names another.
    code, out, err = run_cli(capsys, "keys", "create", "frank", *url)
    assert code == 0, err
    frank_key = out.strip().splitlines()[-1]
    code, out, err = run_cli(capsys, "keys", "create", "ci-bot", "--user", "erin", *url)
    assert code == 0, err
    erin_key = out.strip().splitlines()[-1]
    key_id = tokens.parse_api_key(erin_key)[0]
    code, out, _ = run_cli(capsys, "keys", "list", *url)
    assert key_id in out and "ci-bot" in out and erin_key not in out

    store = IdentityStore(metadata_url)
    stored = store.get_api_key(key_id)
    assert stored is not None and stored.secret_hash == tokens.hash_secret(tokens.parse_api_key(erin_key)[1])
    assert erin_key.split("_", 3)[-1] not in str(stored)  # only the hash is kept

    via_header = authenticator.authenticate(bearer(erin_key))
    via_x_api_key = authenticator.authenticate({"X-API-Key": erin_key})
    assert via_header == via_x_api_key
    assert via_header.user == "erin" and via_header.auth == "api_key" and via_header.key_id == key_id
    assert authenticator.authenticate({"X-API-Key": frank_key}).attribute_map == {"region": "APAC"}
    assert store.get_api_key(key_id).last_used_at is not None  # type: ignore[union-attr]

    # Revoked: refused within the cache TTL (~2 s), and `recheck` of a live context fails too.
    code, out, err = run_cli(capsys, "keys", "revoke", key_id, *url)
    assert code == 0, err
    started = time.monotonic()
    while True:
        try:
            authenticator.authenticate(bearer(erin_key))
        except AuthenticationError as exc:
            assert exc.message == f"API key '{key_id}' has been revoked."
            break
        assert time.monotonic() - started < 3.0, "revocation not seen within the cache TTL"
        time.sleep(0.1)
    with pytest.raises(AuthenticationError, match="has been revoked"):
        authenticator.recheck(via_header)
    assert authenticator.authenticate({"X-API-Key": frank_key}).user == "frank"  # others keep working


def test_fab_and_cli_share_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The admin UI's bootstrap admin gets tokens here; a CLI user logs into FAB's own auth."""
    from fab_ui.app import create_app as create_ui

    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    monkeypatch.setenv("HBI_ADMIN_PASSWORD", "admin-pw-123")
    ui = create_ui(settings_for(url), var_dir=tmp_path / "var")
    code, _, err = run_cli(capsys, "users", "add", "hana", "--role", "Analyst", "--password", "hana-pw",
                           "--metadata-url", url)  # fmt: skip
    assert code == 0, err
    with ui.app_context():
        sm = ui.appbuilder.sm
        assert sm.auth_user_db("hana", "hana-pw") is not None
        assert sm.auth_user_db("hana", "nope") is None
    authenticator = Authenticator(settings_for(url))
    token, _ = authenticator.login("admin", "admin-pw-123")
    assert authenticator.authenticate(bearer(token)).is_admin


def test_console_script_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    script = Path(sys.executable).with_name("headless-bi")
    command = [str(script), "roles", "list", "--metadata-url", url]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {"Admin", "Analyst", "Viewer"} <= {line.split()[0] for line in done.stdout.splitlines()[2:]}


# -- refusals ------------------------------------------------------------------------------------


def _flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] != "B" else "C") + text[index + 1 :]


def test_every_bad_credential_has_its_own_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = IdentityStore(url)
    store.add_user("ivan", ["Viewer"], password="pw")
    store.add_user("jill", ["Viewer"], password="pw")
    authenticator = Authenticator(settings_for(url), cache_ttl_s=0.0)
    good = tokens.issue_token("ivan", SECRET, expires_in_s=600)
    assert authenticator.authenticate(bearer(good)).user == "ivan"
    header, payload, signature = good.split(".")
    _, key = store.create_api_key("k", "ivan")
    key_id = tokens.parse_api_key(key)[0]
    with Session(store.engine) as session:
        session.execute(update(User).where(User.username == "jill").values(active=False))
        session.commit()

    messages = {
        "missing": refused(authenticator, {}),
        "scheme": refused(authenticator, {"Authorization": "Basic aXZhbjpwdw=="}),
        "malformed": refused(authenticator, bearer("not-a-token")),
        "garbled jwt": refused(authenticator, bearer("a.b.c")),
        "expired": refused(
            authenticator, bearer(tokens.issue_token("ivan", SECRET, expires_in_s=60, now=time.time() - 3600))
        ),
        "signature": refused(authenticator, bearer(f"{header}.{payload}.{_flip(signature, 10)}")),
        "payload": refused(authenticator, bearer(f"{header}.{_flip(payload, 12)}.{signature}")),
        "wrong secret": refused(authenticator, bearer(tokens.issue_token("ivan", "x" * 40, expires_in_s=60))),
        "unknown user": refused(authenticator, bearer(tokens.issue_token("ghost", SECRET, expires_in_s=60))),
        "inactive user": refused(authenticator, bearer(tokens.issue_token("jill", SECRET, expires_in_s=60))),
        "bad key": refused(authenticator, {"X-API-Key": key[:-4] + "abcd"}),
        "malformed key": refused(authenticator, {"X-API-Key": "hbi_nonsense"}),
    }
    store.revoke_api_key(key_id)
    messages["revoked key"] = refused(authenticator, {"X-API-Key": key})

    assert "Authentication required" in messages["missing"]
    assert "expired" in messages["expired"]
    assert "signature" in messages["signature"]
    assert messages["payload"] == messages["signature"] == messages["wrong secret"]  # all: not our signature
    assert messages["malformed"] == messages["garbled jwt"]
    assert messages["unknown user"] == "User 'ghost' does not exist."
    assert messages["inactive user"] == "User 'jill' is inactive."
    assert messages["revoked key"] == f"API key '{key_id}' has been revoked."
    distinct = {m for k, m in messages.items() if k not in ("payload", "wrong secret", "garbled jwt")}
    assert len(distinct) == len(messages) - 3, messages


def test_anonymous_role_and_recheck(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = IdentityStore(url)
    store.add_user("kim", ["Viewer"], password="pw", attributes={"region": "EU"})
    anonymous = Authenticator(settings_for(url, anonymous_role="Viewer"))
    assert anonymous.authenticate({}) == SecurityContext.create("anonymous", {"Viewer"}, auth="anonymous")
    # Credentials that are present but bad are not silently downgraded to anonymous.
    refused(anonymous, bearer("garbage"))

    authenticator = Authenticator(settings_for(url), cache_ttl_s=0.2)
    context = authenticator.authenticate(bearer(authenticator.issue("kim")[0]))
    assert context.roles == {"Viewer"}
    with Session(store.engine) as session:
        user = session.scalar(select(User).where(User.username == "kim"))
        assert user is not None
        user.roles = [session.scalar(select(Role).where(Role.name == "Analyst"))]  # type: ignore[list-item]
        session.commit()
    store.set_attributes("kim", {"region": ["EU", "US"]})
    time.sleep(0.3)
    fresh = authenticator.recheck(context)
    assert fresh.roles == {"Analyst"} and fresh.attribute_map == {"region": ("EU", "US")}
    assert fresh.auth == "jwt" and fresh.policy_key != context.policy_key
    with Session(store.engine) as session:
        session.execute(update(User).where(User.username == "kim").values(active=False))
        session.commit()
    time.sleep(0.3)
    with pytest.raises(AuthenticationError, match="inactive"):
        authenticator.recheck(context)


def test_durations() -> None:
    assert [tokens.parse_duration(t) for t in ("90", "90s", "30m", "1h", "2d", 45)] == [
        90, 90, 1800, 3600, 172800, 45,
    ]  # fmt: skip
    for bad in ("", "1w", "-1h", "0", "h"):
        with pytest.raises(ValueError):
            tokens.parse_duration(bad)


# -- over HTTP and WebSocket --------------------------------------------------------------------


@pytest.fixture
def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, list[Any], IdentityStore]]:
    """The ASGI app on a DuckDB :memory: runtime, recording the security context each request gets."""
    from headless_bi.server.app import create_app

    monkeypatch.setenv("HBI_ADMIN_PASSWORD", "admin-pw-123")  # the admin UI's bootstrap admin

    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = IdentityStore(url)
    store.add_user("lena", ["Analyst"], password="lena-pw", attributes={"tenant_id": "t9"})
    settings = settings_for(url)
    runtime = Runtime(settings, DuckDBWarehouse(":memory:"), load_models(settings.models))
    seen: list[Any] = []

    def context(runtime: Runtime, **extra: Any) -> dict[str, Any]:
        seen.append(extra.get("security"))
        return make_context(runtime, **extra)

    with TestClient(create_app(runtime=runtime, context_factory=context)) as client:
        yield client, seen, store
    runtime.close()


def test_http_requires_credentials_and_login_issues_tokens(service: Any) -> None:
    client, seen, _ = service
    response = client.post("/graphql", json=TYPENAME)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED" and "Authentication required" in error["message"]
    assert client.get("/graphql", params={"query": "{ __typename }"}).status_code == 401
    page = client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "<html" in page.text.lower()  # GraphiQL itself is public

    wrong = client.post("/auth/token", json={"username": "lena", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {
        "errors": [{"message": "Invalid user name or password.", "extensions": {"code": "UNAUTHENTICATED"}}]
    }
    assert client.post("/auth/token", json={"username": "lena"}).status_code == 400
    broken = client.post("/auth/token", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 400
    assert client.post("/auth/token", json={"username": "lena", "password": "lena-pw",
                                            "expires_in": "1y"}).status_code == 400  # fmt: skip

    login = client.post("/auth/token", json={"username": "lena", "password": "lena-pw", "expires_in": "15m"})
    assert login.status_code == 200, login.text
    body = login.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    response = client.post("/graphql", json=TYPENAME, headers=bearer(body["access_token"]))
    assert response.status_code == 200 and response.json() == {"data": {"__typename": "Query"}}
    assert seen[-1] == SecurityContext.create("lena", {"Analyst"}, {"tenant_id": "t9"}, auth="jwt")

    token = body["access_token"]
    tampered = token[:-12] + ("AAAAAAAA" if "AAAAAAAA" not in token else "BBBBBBBB") + token[-4:]
    response = client.post("/graphql", json=TYPENAME, headers=bearer(tampered))
    assert response.status_code == 401 and "signature" in response.json()["errors"][0]["message"]


def test_websocket_authenticates_from_connection_init(service: Any) -> None:
    client, seen, store = service
    _, key = store.create_api_key("dash", "lena")
    protocol = ["graphql-transport-ws"]
    with client.websocket_connect("/graphql", subprotocols=protocol) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        closed = ws.receive()
        assert closed["type"] == "websocket.close" and closed["code"] == 4401
        assert "Authentication required" in closed["reason"]
    with client.websocket_connect("/graphql", subprotocols=protocol) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": "Bearer hbi_bad"}})
        closed = ws.receive()
        assert closed["code"] == 4401 and "malformed" in closed["reason"]
    for payload, headers in [({"Authorization": f"Bearer {key}"}, {}), ({}, {"X-API-Key": key})]:
        with client.websocket_connect("/graphql", subprotocols=protocol, headers=headers) as ws:
            ws.send_json({"type": "connection_init", "payload": payload})
            assert ws.receive_json()["type"] == "connection_ack"
            ws.send_json({"type": "subscribe", "id": "1", "payload": TYPENAME})
            assert ws.receive_json()["payload"] == {"data": {"__typename": "Query"}}
        assert seen[-1].user == "lena" and seen[-1].auth == "api_key"
    # The legacy graphql-ws protocol answers connection_error.
    with client.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        message = ws.receive_json()
        assert message["type"] == "connection_error"
        assert message["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()


def test_admin_ui_session_cookie_is_accepted(service: Any) -> None:
    client, seen, store = service
    user = store.get_user("lena")
    assert user is not None
    cookie = _session_serializer(SECRET).dumps({"_user_id": str(user.id), "_fresh": True})
    client.cookies.set("session", cookie)
    response = client.post("/graphql", json=TYPENAME)
    assert response.status_code == 200, response.text
    assert seen[-1].user == "lena" and seen[-1].auth == "session"
    # cross-site protection: a cookie-only GET (a link on another site) runs nothing...
    linked = client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"accept": "application/json"}
    )
    assert linked.status_code == 401 and "cross-site" in linked.json()["errors"][0]["message"]
    # ...while the same GET from the UI's own scripts (X-Requested-With) is served
    own = client.get(
        "/graphql", params={"query": "{ __typename }"},
        headers={"accept": "application/json", "x-requested-with": "XMLHttpRequest"},
    )  # fmt: skip
    assert own.status_code == 200, own.text
    client.cookies.set("session", _session_serializer("another-secret-0123456789").dumps({"_user_id": "1"}))
    assert client.post("/graphql", json=TYPENAME).status_code == 401  # forged
    client.cookies.set("session", _session_serializer(SECRET).dumps({"csrf_token": "x"}))
    assert client.post("/graphql", json=TYPENAME).status_code == 401  # logged out


def test_logging_into_the_admin_ui_authenticates_graphql(service: Any) -> None:
    """The browser case: FAB's login form sets the session cookie that /graphql then accepts."""
    client, seen, _ = service
    page = client.get("/login/")
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf is not None, page.text[:500]
    form = {"username": "admin", "password": "admin-pw-123", "csrf_token": csrf.group(1)}
    assert client.post("/login/", data=form, follow_redirects=False).status_code == 302
    response = client.post("/graphql", json=TYPENAME)
    assert response.status_code == 200, response.text
    assert seen[-1].user == "admin" and seen[-1].auth == "session" and seen[-1].is_admin
    client.get("/logout/", follow_redirects=False)
    assert client.post("/graphql", json=TYPENAME).status_code == 401


def test_a_token_dies_with_its_users_password(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = IdentityStore(url)
    store.add_user("otto", ["Admin"], password="pw")
    authenticator = Authenticator(settings_for(url), cache_ttl_s=0.0)
    token, _ = authenticator.issue("otto")
    assert authenticator.authenticate(bearer(token)).roles == {"Admin"}
    with Session(store.engine) as session:  # the admin leaves; a viewer later gets the same name
        user = session.scalar(select(User).where(User.username == "otto"))
        user.roles = []  # type: ignore[union-attr]
        session.delete(user)
        session.commit()
    store.add_user("otto", ["Viewer"], password="pw2")
    assert "predates the current password of user 'otto'" in refused(authenticator, bearer(token))
    fresh, _ = authenticator.issue("otto")
    assert authenticator.authenticate(bearer(fresh)).roles == {"Viewer"}
    with Session(store.engine) as session:  # a changed password ends the tokens issued before it
        user = session.scalar(select(User).where(User.username == "otto"))
        user.password = generate_password_hash("pw3")  # type: ignore[union-attr]
        session.commit()
    assert "predates the current password" in refused(authenticator, bearer(fresh))
