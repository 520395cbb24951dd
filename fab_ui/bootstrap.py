"""First start: tables, the Analyst and Viewer roles, and one admin user.

Everything here is idempotent, so it runs on every start (and in every worker): an existing admin
is never touched, and the admin password is never a fixed default.
"""

from __future__ import annotations

import logging
import os
import secrets

from flask_appbuilder import AppBuilder
from flask_appbuilder.const import LOGMSG_WAR_SEC_NO_USER
from flask_appbuilder.models.sqla import Model

log = logging.getLogger(__name__)


class _FirstStartNotice(logging.Filter):
    """FAB warns 'No user yet created, use flask fab command' on an empty database, just before
    `ensure_admin` creates the admin: on a first start that reads like a failure, so it is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != LOGMSG_WAR_SEC_NO_USER


_NOTICE_FILTER = _FirstStartNotice()
logging.getLogger("flask_appbuilder.security.manager").addFilter(_NOTICE_FILTER)

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD_ENV = "HBI_ADMIN_PASSWORD"

# What each role may do beyond the public home page; later security work fills these in.
# The Ask page only renders a shell: what a user may query is decided by the API's policies.
_ASK = [("can_ask", "AskView"), ("menu_access", "Ask")]
ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    "Analyst": [("can_list", "CatalogView"), ("menu_access", "Catalog"), *_ASK],
    "Viewer": [("can_list", "CatalogView"), ("menu_access", "Catalog"), *_ASK],
}


def bootstrap(appbuilder: AppBuilder) -> None:
    """Create missing tables, roles and the admin user. Needs an app context."""
    sm = appbuilder.sm
    # FAB creates tables only when its own are missing; this also adds any model added later.
    Model.metadata.create_all(appbuilder.session.get_bind())
    for name, permissions in ROLE_PERMISSIONS.items():
        role = sm.add_role(name)
        if role is None:
            raise RuntimeError(f"could not create role {name!r}")
        for permission, view_menu in permissions:
            sm.add_permission_role(role, sm.find_permission_view_menu(permission, view_menu))
    ensure_admin(appbuilder)


def ensure_admin(appbuilder: AppBuilder) -> bool:
    """Create user `admin` in the Admin role unless an admin exists; True if it was created.

    The password is `$HBI_ADMIN_PASSWORD`, else a random one printed once on stdout: the only
    place it ever appears.
    """
    sm = appbuilder.sm
    admin_role = sm.find_role(sm.auth_role_admin)
    if sm.find_user(username=ADMIN_USERNAME) is not None or (admin_role is not None and admin_role.user):
        return False
    password = os.environ.get(ADMIN_PASSWORD_ENV) or secrets.token_urlsafe(16)
    user = sm.add_user(
        username=ADMIN_USERNAME, first_name="Admin", last_name="User", email="admin@example.com",
        role=admin_role, password=password,
    )
    if not user:
        if sm.find_user(username=ADMIN_USERNAME) is not None:
            return False  # another worker created it at the same moment
        raise RuntimeError(f"could not create the {ADMIN_USERNAME!r} user (see the log)")
    if os.environ.get(ADMIN_PASSWORD_ENV):
        log.warning("Created admin user '%s' with the password from %s", ADMIN_USERNAME, ADMIN_PASSWORD_ENV)
    else:
        print(f"Created admin user '{ADMIN_USERNAME}' with password {password} — change it", flush=True)
    return True
