"""The permission contract: access control entries and user groups.

An ACE is ``(object_id, permission, principal)``: ``object_id`` is the path of
the object without the version prefix (``/articles/abc``), ``permission`` a
word (``read``, ``write``, ``article:create``), ``principal`` a string
(``system.Everyone``, ``system.Authenticated``, a user id, a group).
User principals map a user id to extra principals (groups).

``get_bound_permissions``, where accepted, maps ``(object_id, permission)`` to
the list of ``(object_id, permission)`` pairs that also grant it (inheritance,
e.g. write implies read); by default a permission is bound only to itself.
Duplicates are tolerated: adding an existing entry is a no-op.
"""
from __future__ import annotations

import abc
from typing import Callable, Iterable, Sequence

from cliquet_wsgi.backend import Backend, BackendError

__all__ = ["Permission", "BackendError", "BoundPermissions"]

BoundPermissions = Callable[[str, str], Sequence[tuple[str, str]]]


class Permission(Backend):
    """Abstract permission backend."""

    kind = "permission"

    @abc.abstractmethod
    def add_user_principal(self, user_id: str, principal: str) -> None:
        """Give ``user_id`` the extra principal ``principal`` (a group)."""

    @abc.abstractmethod
    def remove_user_principal(self, user_id: str, principal: str) -> None:
        """Remove it; no error if absent."""

    @abc.abstractmethod
    def remove_principal(self, principal: str) -> None:
        """Remove ``principal`` from every user (a group is deleted)."""

    @abc.abstractmethod
    def user_principals(self, user_id: str) -> set[str]:
        """Extra principals of ``user_id`` (empty set if none)."""

    @abc.abstractmethod
    def add_principal_to_ace(self, object_id: str, permission: str, principal: str) -> None:
        """Grant ``permission`` on ``object_id`` to ``principal``."""

    @abc.abstractmethod
    def remove_principal_from_ace(self, object_id: str, permission: str, principal: str) -> None:
        """Revoke it; no error if absent."""

    @abc.abstractmethod
    def object_permission_principals(self, object_id: str, permission: str) -> set[str]:
        """Principals holding exactly ``permission`` on ``object_id``."""

    @abc.abstractmethod
    def object_permission_authorized_principals(
        self, object_id: str, permission: str, get_bound_permissions: BoundPermissions | None = None
    ) -> set[str]:
        """Union of the principals of every pair bound to ``(object_id, permission)``."""

    def check_permission(
        self,
        object_id: str,
        permission: str,
        principals: Iterable[str],
        get_bound_permissions: BoundPermissions | None = None,
    ) -> bool:
        """``True`` if ``principals`` intersect the authorized principals.

        Implementations may override it with a single query.
        """
        authorized = self.object_permission_authorized_principals(object_id, permission, get_bound_permissions)
        return not authorized.isdisjoint(principals)

    @abc.abstractmethod
    def principals_accessible_objects(
        self,
        principals: Iterable[str],
        permission: str,
        object_id_match: str | None = None,
        get_bound_permissions: BoundPermissions | None = None,
    ) -> set[str]:
        """Object ids on which any of ``principals`` holds ``permission``.

        ``object_id_match`` is a glob where ``*`` matches any characters
        except ``/`` (``/articles/*`` lists records of ``/articles``).
        With ``get_bound_permissions``, the pairs it returns for
        ``(object_id_match, permission)`` are searched (their ids as globs).
        """

    @abc.abstractmethod
    def object_permissions(
        self, object_id: str, permissions: Sequence[str] | None = None
    ) -> dict[str, set[str]]:
        """``{permission: principals}`` of the object (only ``permissions`` if given); empty ACEs omitted."""

    @abc.abstractmethod
    def replace_object_permissions(self, object_id: str, permissions: dict[str, Iterable[str]]) -> None:
        """For each permission given, replace its principals; an empty list deletes the ACE.

        Permissions not named in ``permissions`` are left unchanged.
        """

    @abc.abstractmethod
    def delete_object_permissions(self, *object_ids: str) -> None:
        """Remove every ACE of these objects."""
