"""Users, roles, user attributes and API keys in the metadata DB, without a Flask app.

Users and roles are Flask-AppBuilder's own tables and models (`ab_user`, `ab_role`, `ab_user_role`),
and passwords are hashed the way FAB hashes them, so a user made here logs into the admin UI and a
user made there gets tokens here. Attributes and API keys are two tables of ours declared on FAB's
`Model` metadata, so FAB's `create_all` makes them too.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from flask_appbuilder.models.sqla import Model
from flask_appbuilder.security.sqla.models import Role, User
from sqlalchemy import DateTime, Engine, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Mapped, Session, mapped_column, selectinload
from werkzeug.security import check_password_hash, generate_password_hash

from headless_bi.errors import BAD_QUERY, HeadlessBIError
from headless_bi.security.metadata import metadata_engine
from headless_bi.security.tokens import hash_secret, new_api_key, parse_api_key, password_fingerprint

REQUIRED_ROLES = ("Admin", "Analyst", "Viewer")
AttributeValue = str | tuple[str, ...]

# FAB's defaults (FAB_PASSWORD_HASH_METHOD / _SALT_LENGTH), so both sides read each other's hashes.
_HASH_METHOD, _SALT_LENGTH = "scrypt", 16


@functools.cache
def _fake_hash() -> str:
    """Checked when the user does not exist, so a wrong name costs as long as a wrong password."""
    return generate_password_hash(secrets.token_urlsafe(16), method=_HASH_METHOD, salt_length=_SALT_LENGTH)


class IdentityError(HeadlessBIError):
    """A user, role or key that cannot be created, found or changed as asked."""

    code = BAD_QUERY


class UserAttribute(Model):
    __tablename__ = "hbi_user_attribute"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    value: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: a string or a list of strings


class StoredApiKey(Model):
    __tablename__ = "hbi_api_key"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public: k_xxxxxxxx
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # sha256 hex, never the secret
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class UserSignOut(Model):
    """When the user last signed out of the admin UI: session cookies signed before are void."""

    __tablename__ = "hbi_user_sign_out"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True
    )
    signed_out_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)  # naive UTC


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    active: bool
    roles: frozenset[str]
    attributes: Mapping[str, AttributeValue]
    email: str = ""
    signed_out_at: dt.datetime | None = None  # naive UTC; UI sessions signed before it are void
    credential: str = ""  # `password_fingerprint` of the stored hash: tokens die with the password


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    user_id: int
    username: str
    secret_hash: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def utcnow() -> dt.datetime:
    """Naive UTC, as FAB's DateTime columns hold naive values on every backend."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class IdentityStore:
    """Reads and writes identities in the metadata DB at `metadata_url` (SQLite or PostgreSQL)."""

    def __init__(self, metadata_url: str, *, engine: Engine | None = None):
        self.metadata_url = metadata_url
        self.engine = engine or metadata_engine(metadata_url)
        self._ready = False
        self._lock = threading.Lock()

    # --- schema ---------------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create missing tables (FAB's and ours) and the required roles; once per store."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            for attempt in range(3):  # workers starting together may race to create the same table
                try:
                    Model.metadata.create_all(self.engine)
                    break
                except (IntegrityError, OperationalError, ProgrammingError):
                    if attempt == 2:
                        raise
            with Session(self.engine) as session:
                existing = set(session.scalars(select(Role.name)))
                for name in REQUIRED_ROLES:
                    if name not in existing:
                        _insert_ignoring_race(self.engine, Role(name=name))
            self._ready = True

    def _session(self) -> Session:
        self.ensure_schema()
        return Session(self.engine, expire_on_commit=False)

    # --- users ----------------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        roles: Sequence[str],
        *,
        password: str,
        attributes: Mapping[str, str | Iterable[str]] | None = None,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> UserRecord:
        """A new active user in `roles` (at least one, all existing); `IdentityError` if the name is taken."""
        username = username.strip()
        if not username:
            raise IdentityError("The user name must not be empty.")
        if not roles:
            raise IdentityError("Give the user at least one role (--role).")
        if not password:
            raise IdentityError("The password must not be empty.")
        with self._session() as session:
            role_rows = self._roles(session, roles)
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise IdentityError(f"User '{username}' already exists.")
            user = User(
                username=username,
                first_name=first_name or username,
                last_name=last_name or "-",
                email=email or f"{username}@localhost",
                active=True,
                password=generate_password_hash(password, method=_HASH_METHOD, salt_length=_SALT_LENGTH),
            )
            user.roles = role_rows
            session.add(user)
            try:
                session.flush()
            except IntegrityError:
                raise IdentityError(f"User '{username}' or email '{user.email}' already exists.") from None
            for name, value in (attributes or {}).items():
                session.add(UserAttribute(user_id=user.id, name=name, value=_attribute_json(name, value)))
            session.commit()
        found = self.get_user(username)
        assert found is not None
        return found

    def get_user(self, username: str) -> UserRecord | None:
        with self._session() as session:
            user = session.scalar(_user_query().where(User.username == username))
            return None if user is None else _record(session, user)

    def get_user_by_id(self, user_id: int) -> UserRecord | None:
        with self._session() as session:
            user = session.scalar(_user_query().where(User.id == user_id))
            return None if user is None else _record(session, user)

    def list_users(self) -> list[UserRecord]:
        with self._session() as session:
            users = session.scalars(_user_query().order_by(User.username)).all()
            return [_record(session, user) for user in users]

    def list_roles(self) -> list[tuple[str, int]]:
        """Every role with how many users hold it directly, by name."""
        with self._session() as session:
            roles = session.scalars(select(Role).options(selectinload(Role.user)).order_by(Role.name)).all()
            return [(role.name, len(role.user)) for role in roles]

    def set_attributes(
        self, username: str, attributes: Mapping[str, str | Iterable[str] | None]
    ) -> UserRecord:
        """Replace the named attributes of a user; a value of None (or an empty list) removes one."""
        with self._session() as session:
            user_id = session.scalar(select(User.id).where(User.username == username))
            if user_id is None:
                raise IdentityError(f"User '{username}' does not exist.")
            current = {
                a.name: a
                for a in session.scalars(select(UserAttribute).where(UserAttribute.user_id == user_id))
            }
            for name, value in attributes.items():
                row = current.get(name)
                empty = value is None or (not isinstance(value, str) and not list(value))
                if empty:
                    if row is not None:
                        session.delete(row)
                elif row is None:
                    session.add(UserAttribute(user_id=user_id, name=name, value=_attribute_json(name, value)))
                else:
                    row.value = _attribute_json(name, value)  # type: ignore[arg-type]
            session.commit()
        found = self.get_user(username)
        assert found is not None
        return found

    def check_password(self, username: str, password: str) -> UserRecord | None:
        """The active user whose name (or email) and password match, else None; constant effort."""
        if not username or not password or not password.strip("\x00"):
            return None
        with self._session() as session:
            user = session.scalar(_user_query().where(User.username == username))
            if user is None:
                user = session.scalar(_user_query().where(User.email == username))
            if user is None or not user.active or not user.password:
                check_password_hash(_fake_hash(), password)
                return None
            if not check_password_hash(user.password, password):
                user.fail_login_count = (user.fail_login_count or 0) + 1
                session.commit()
                return None
            user.login_count = (user.login_count or 0) + 1
            user.fail_login_count = 0
            user.last_login = dt.datetime.now()  # FAB writes local time here
            record = _record(session, user)
            session.commit()
            return record

    def signed_out_at(self, user_id: int) -> dt.datetime | None:
        """When the user last signed out of the admin UI (naive UTC), or None: one key lookup."""
        with self._session() as session:
            row = session.get(UserSignOut, user_id)
            return None if row is None else row.signed_out_at

    def sign_out(self, user_id: int, when: dt.datetime | None = None) -> None:
        """Void every admin UI session of the user signed before `when` (default: now)."""
        when = when or utcnow()
        with self._session() as session:
            row = session.get(UserSignOut, user_id)
            if row is None:
                session.add(UserSignOut(user_id=user_id, signed_out_at=when))
            else:
                row.signed_out_at = when
            try:
                session.commit()
            except IntegrityError:  # signed out twice at once: the other write stands
                session.rollback()

    # --- API keys -------------------------------------------------------------------------------

    def create_api_key(self, name: str, username: str) -> tuple[ApiKeyRecord, str]:
        """A new key for `username`; returns its record and the full key, which is not stored."""
        if not name.strip():
            raise IdentityError("The key name must not be empty.")
        with self._session() as session:
            user_id = session.scalar(select(User.id).where(User.username == username))
            if user_id is None:
                raise IdentityError(f"User '{username}' does not exist.")
            for _ in range(5):  # 36^8 ids: a collision is unlikely, but cheap to survive
                key_id, full_key = new_api_key()
                if session.get(StoredApiKey, key_id) is None:
                    break
            else:
                raise IdentityError("Could not allocate a key id; try again.")
            row = StoredApiKey(
                id=key_id,
                name=name.strip(),
                user_id=user_id,
                secret_hash=hash_secret(parse_api_key(full_key)[1]),
                created_at=utcnow(),
            )
            session.add(row)
            session.commit()
        record = self.get_api_key(key_id)
        assert record is not None
        return record, full_key

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._session() as session:
            found = session.execute(
                select(StoredApiKey, User.username)
                .join(User, User.id == StoredApiKey.user_id)
                .where(StoredApiKey.id == key_id)
            ).first()
            return None if found is None else _key_record(*found)

    def list_api_keys(self, username: str | None = None) -> list[ApiKeyRecord]:
        with self._session() as session:
            query = select(StoredApiKey, User.username).join(User, User.id == StoredApiKey.user_id)
            if username is not None:
                query = query.where(User.username == username)
            rows = session.execute(query.order_by(StoredApiKey.created_at, StoredApiKey.id)).all()
            return [_key_record(*row) for row in rows]

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Mark the key revoked (kept for the audit trail); revoking twice keeps the first time."""
        with self._session() as session:
            row = session.get(StoredApiKey, key_id)
            if row is None:
                raise IdentityError(f"API key '{key_id}' does not exist (see `headless-bi keys list`).")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                session.commit()
        record = self.get_api_key(key_id)
        assert record is not None
        return record

    def touch_api_key(self, key_id: str, when: dt.datetime | None = None) -> None:
        """Record a use of the key (callers throttle this: it is a write)."""
        with self._session() as session:
            row = session.get(StoredApiKey, key_id)
            if row is not None:
                row.last_used_at = when or utcnow()
                session.commit()

    # --- helpers --------------------------------------------------------------------------------

    def _roles(self, session: Session, names: Sequence[str]) -> list[Role]:
        wanted = list(dict.fromkeys(names))
        rows = {r.name: r for r in session.scalars(select(Role).where(Role.name.in_(wanted)))}
        missing = [n for n in wanted if n not in rows]
        if missing:
            known = ", ".join(session.scalars(select(Role.name).order_by(Role.name)))
            raise IdentityError(f"Unknown role(s) {', '.join(map(repr, missing))}; roles are: {known}.")
        return [rows[n] for n in wanted]


def _user_query():  # type: ignore[no-untyped-def]
    return select(User).options(selectinload(User.roles))


def _record(session: Session, user: User) -> UserRecord:
    roles = {role.name for role in user.roles}
    for group in getattr(user, "groups", None) or ():  # FAB 5: roles also come through groups
        roles.update(role.name for role in group.roles)
    rows = session.scalars(select(UserAttribute).where(UserAttribute.user_id == user.id)).all()
    attributes: dict[str, AttributeValue] = {}
    for row in rows:
        value = json.loads(row.value)
        attributes[row.name] = value if isinstance(value, str) else tuple(str(v) for v in value)
    signed_out = session.get(UserSignOut, user.id)
    return UserRecord(
        user.id,
        user.username,
        bool(user.active),
        frozenset(roles),
        attributes,
        user.email,
        signed_out.signed_out_at if signed_out is not None else None,
        password_fingerprint(user.password),
    )


def _key_record(row: StoredApiKey, username: str) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id,
        row.name,
        row.user_id,
        username,
        row.secret_hash,
        row.created_at,
        row.revoked_at,
        row.last_used_at,
    )


def _attribute_json(name: str, value: str | Iterable[str]) -> str:
    if not name or not name.strip():
        raise IdentityError("An attribute name must not be empty.")
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps([str(v) for v in value])


def _insert_ignoring_race(engine: Engine, row: Model) -> None:
    with Session(engine) as session:
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # another process created it a moment ago
            session.rollback()
