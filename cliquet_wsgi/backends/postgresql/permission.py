"""PostgreSQL permission backend: ACEs and user principals in two tables.

Shares its pool (and the calling thread's transaction) with the storage
backend when both point at the same database, so a record and its ACEs are
committed or rolled back together.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from cliquet_wsgi.backends.postgresql.base import PostgreSQLBackend, dumps
from cliquet_wsgi.backends.postgresql.pool import Pool
from cliquet_wsgi.permission import BoundPermissions, Permission


def _glob_regexp(pattern: str) -> str:
    """``*`` matches anything but ``/``; the rest is literal (PostgreSQL ARE syntax)."""
    return "^" + "[^/]*".join(re.escape(part) for part in pattern.split("*")) + "$"


def _pairs(object_id: str, permission: str, get_bound_permissions: BoundPermissions | None) -> list[dict[str, str]]:
    bound = get_bound_permissions(object_id, permission) if get_bound_permissions else [(object_id, permission)]
    return [{"o": o, "p": p} for o, p in bound]


class PostgreSQLPermission(PostgreSQLBackend, Permission):
    """Permissions in PostgreSQL through pg8000.

    Settings: ``permission_url`` and the ``permission_pool_*`` settings (a pool
    is shared per URL: the first backend built for a URL sizes it).
    """

    kind = "permission"

    def __init__(self, pool: Pool, settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(pool)

    def flush(self) -> None:
        with self.pool.transaction() as cursor:
            cursor.execute("DELETE FROM access_control_entries")
            cursor.execute("DELETE FROM user_principals")

    # -- user principals -----------------------------------------------------------

    def add_user_principal(self, user_id: str, principal: str) -> None:
        with self.pool.transaction() as cursor:
            cursor.execute(
                "INSERT INTO user_principals (user_id, principal) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (user_id, principal),
            )

    def remove_user_principal(self, user_id: str, principal: str) -> None:
        with self.pool.transaction() as cursor:
            cursor.execute("DELETE FROM user_principals WHERE user_id = %s AND principal = %s", (user_id, principal))

    def remove_principal(self, principal: str) -> None:
        with self.pool.transaction() as cursor:
            cursor.execute("DELETE FROM user_principals WHERE principal = %s", (principal,))

    def user_principals(self, user_id: str) -> set[str]:
        with self.pool.transaction() as cursor:
            cursor.execute("SELECT principal FROM user_principals WHERE user_id = %s", (user_id,))
            return {row[0] for row in cursor.fetchall()}

    # -- ACEs ----------------------------------------------------------------------

    def add_principal_to_ace(self, object_id: str, permission: str, principal: str) -> None:
        with self.pool.transaction() as cursor:
            cursor.execute(
                "INSERT INTO access_control_entries (object_id, permission, principal) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (object_id, permission, principal),
            )

    def remove_principal_from_ace(self, object_id: str, permission: str, principal: str) -> None:
        with self.pool.transaction() as cursor:
            cursor.execute(
                "DELETE FROM access_control_entries WHERE object_id = %s AND permission = %s AND principal = %s",
                (object_id, permission, principal),
            )

    def object_permission_principals(self, object_id: str, permission: str) -> set[str]:
        with self.pool.transaction() as cursor:
            cursor.execute(
                "SELECT principal FROM access_control_entries WHERE object_id = %s AND permission = %s",
                (object_id, permission),
            )
            return {row[0] for row in cursor.fetchall()}

    def object_permission_authorized_principals(
        self, object_id: str, permission: str, get_bound_permissions: BoundPermissions | None = None
    ) -> set[str]:
        pairs = _pairs(object_id, permission, get_bound_permissions)
        if not pairs:
            return set()
        with self.pool.transaction() as cursor:
            cursor.execute(
                "SELECT DISTINCT a.principal FROM access_control_entries a "
                "JOIN jsonb_to_recordset(%s::jsonb) AS b(o text, p text) "
                "ON a.object_id = b.o AND a.permission = b.p",
                (dumps(pairs),),
            )
            return {row[0] for row in cursor.fetchall()}

    def check_permission(
        self,
        object_id: str,
        permission: str,
        principals: Iterable[str],
        get_bound_permissions: BoundPermissions | None = None,
    ) -> bool:
        principals = sorted(set(principals))
        pairs = _pairs(object_id, permission, get_bound_permissions)
        if not principals or not pairs:
            return False
        with self.pool.transaction() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM access_control_entries a "
                "JOIN jsonb_to_recordset(%s::jsonb) AS b(o text, p text) "
                "ON a.object_id = b.o AND a.permission = b.p "
                "WHERE a.principal IN (SELECT jsonb_array_elements_text(%s::jsonb)))",
                (dumps(pairs), dumps(principals)),
            )
            return bool(cursor.fetchone()[0])

    def principals_accessible_objects(
        self,
        principals: Iterable[str],
        permission: str,
        object_id_match: str | None = None,
        get_bound_permissions: BoundPermissions | None = None,
    ) -> set[str]:
        principals = sorted(set(principals))
        if not principals:
            return set()
        if get_bound_permissions is not None and object_id_match is not None:
            bound = list(get_bound_permissions(object_id_match, permission))
        else:
            bound = [(object_id_match, permission)]
        if not bound:
            return set()
        # A NULL pattern means "any object".
        pairs = [{"r": _glob_regexp(o) if o is not None else None, "p": p} for o, p in bound]
        with self.pool.transaction() as cursor:
            cursor.execute(
                "SELECT DISTINCT a.object_id FROM access_control_entries a "
                "JOIN jsonb_to_recordset(%s::jsonb) AS b(r text, p text) "
                "ON a.permission = b.p AND (b.r IS NULL OR a.object_id ~ b.r) "
                "WHERE a.principal IN (SELECT jsonb_array_elements_text(%s::jsonb))",
                (dumps(pairs), dumps(principals)),
            )
            return {row[0] for row in cursor.fetchall()}

    def object_permissions(
        self, object_id: str, permissions: Sequence[str] | None = None
    ) -> dict[str, set[str]]:
        with self.pool.transaction() as cursor:
            cursor.execute(
                "SELECT permission, principal FROM access_control_entries WHERE object_id = %s "
                "AND (%s::jsonb IS NULL OR permission IN (SELECT jsonb_array_elements_text(%s::jsonb)))",
                (object_id, *([dumps(list(permissions))] * 2 if permissions is not None else [None, None])),
            )
            result: dict[str, set[str]] = {}
            for permission, principal in cursor.fetchall():
                result.setdefault(permission, set()).add(principal)
            return result

    def replace_object_permissions(self, object_id: str, permissions: Mapping[str, Iterable[str]]) -> None:
        if not permissions:
            return
        entries = [
            {"p": perm, "u": principal} for perm, principals in permissions.items() for principal in set(principals)
        ]
        with self.pool.transaction() as cursor:
            cursor.execute(
                "DELETE FROM access_control_entries WHERE object_id = %s "
                "AND permission IN (SELECT jsonb_array_elements_text(%s::jsonb))",
                (object_id, dumps(sorted(permissions))),
            )
            if entries:
                cursor.execute(
                    "INSERT INTO access_control_entries (object_id, permission, principal) "
                    "SELECT %s, e.p, e.u FROM jsonb_to_recordset(%s::jsonb) AS e(p text, u text) "
                    "ON CONFLICT DO NOTHING",
                    (object_id, dumps(entries)),
                )

    def delete_object_permissions(self, *object_ids: str) -> None:
        if not object_ids:
            return
        with self.pool.transaction() as cursor:
            cursor.execute(
                "DELETE FROM access_control_entries WHERE object_id IN (SELECT jsonb_array_elements_text(%s::jsonb))",
                (dumps(list(object_ids)),),
            )
