"""The read-only audit log page: who ran which query and how it ended, newest first.

Only `can_list` and `can_show` exist for it, so nobody can edit or delete audit rows through the UI;
no role in `ROLE_PERMISSIONS` gets it, which leaves it to Admin (FAB grants Admin every permission).
"""

from __future__ import annotations

from flask_appbuilder import ModelView
from flask_appbuilder.models.sqla.interface import SQLAInterface

from headless_bi.security.audit import AuditRecord


class AuditLogView(ModelView):
    datamodel = SQLAInterface(AuditRecord)
    route_base = "/auditlog"
    base_permissions = ["can_list", "can_show"]
    base_order = ("at", "desc")
    page_size = 50
    list_columns = ["at", "user", "roles", "auth", "path", "outcome", "rows", "duration_ms"]
    show_columns = ["at", "user", "roles", "auth", "path", "outcome", "rows", "duration_ms", "error", "query",
                    "sql_hash"]
    search_columns = ["user", "outcome", "path"]
    label_columns = {
        "at": "At (UTC)", "auth": "Authenticated by", "duration_ms": "Duration (ms)",
        "sql_hash": "SQL hash (sha256)", "query": "Query (JSON)",
    }
