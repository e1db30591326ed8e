"""Who may do what on a resource (PROTOCOL §9).

Per-user resources only need an authenticated user (isolation comes from the
storage partition). Shareable resources evaluate, for one ``(object, perm)``:

1. the ``<resource>_<perm>_principals`` setting, if non-empty, instead of the backend;
2. else the permission backend (``check_permission``), with the optional
   bound-permissions hook of the resource (``get_bound_permissions``);
3. list operations fall back to the records the principals may access.

Denied is 401/104 for anonymous requests and 403/121 otherwise.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from cliquet_wsgi.errors import CliquetError, forbidden, unauthorized
from cliquet_wsgi.middlewares.resources.definition import CompiledResource

EVERYONE = "system.Everyone"
AUTHENTICATED = "system.Authenticated"
DEFAULT_CHALLENGES = ('Basic realm="Realm"',)


def denied(principals: Iterable[str], challenges: Iterable[str] | None) -> CliquetError:
    if AUTHENTICATED in set(principals):
        return forbidden()
    return unauthorized(list(challenges) if challenges else DEFAULT_CHALLENGES)


class Authorizer:
    """Permission decisions of one shareable resource (built once at startup)."""

    def __init__(self, resource: CompiledResource, settings: Mapping[str, Any], backend: Callable[[], Any]) -> None:
        self.resource = resource
        self._backend = backend
        self._bound = getattr(resource.definition, "get_bound_permissions", None)
        self._override: dict[str, frozenset[str]] = {}
        for perm in ("read", "write", "create"):
            value = settings.get(f"{resource.name}_{perm}_principals") or ()
            if isinstance(value, str):
                value = value.split()
            if value:
                self._override[perm] = frozenset(value)

    def _permission_name(self, perm: str) -> str:
        return self.resource.create_permission() if perm == "create" else perm

    def allowed(self, object_id: str, perm: str, principals: Iterable[str]) -> bool:
        principals = set(principals)
        if perm in self._override:
            return bool(self._override[perm] & principals)
        return bool(
            self._backend().check_permission(
                object_id, self._permission_name(perm), principals, get_bound_permissions=self._bound
            )
        )

    def accessible_ids(self, collection_object_id: str, perm: str, principals: Iterable[str]) -> set[str]:
        """Record ids (not object ids) of the collection on which ``principals`` hold ``perm``."""
        prefix = collection_object_id + "/"
        found = self._backend().principals_accessible_objects(
            set(principals), perm, object_id_match=prefix + "*", get_bound_permissions=self._bound
        )
        return {oid[len(prefix):] for oid in found if oid.startswith(prefix) and "/" not in oid[len(prefix):]}
