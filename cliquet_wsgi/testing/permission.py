"""Contract suite of :class:`cliquet_wsgi.permission.Permission`, run unchanged against every backend.

Use it from a test module next to a ``permission`` fixture (a fresh, flushed backend)::

    from cliquet_wsgi.testing.permission import *  # noqa: F401,F403
"""
from __future__ import annotations

import pytest


def test_ping_is_true(permission):
    assert permission.ping() is True


def test_initialize_schema_is_idempotent(permission):
    permission.add_principal_to_ace("/articles", "read", "alice")
    lines = permission.initialize_schema()
    assert isinstance(lines, list) and all(isinstance(line, str) for line in lines)
    assert permission.object_permission_principals("/articles", "read") == {"alice"}


# -- user principals ----------------------------------------------------------------


def test_user_principals(permission):
    assert permission.user_principals("alice") == set()
    permission.add_user_principal("alice", "group:a")
    permission.add_user_principal("alice", "group:b")
    permission.add_user_principal("alice", "group:a")  # duplicates tolerated
    permission.add_user_principal("bob", "group:a")
    assert permission.user_principals("alice") == {"group:a", "group:b"}
    assert permission.user_principals("bob") == {"group:a"}


def test_remove_user_principal(permission):
    permission.add_user_principal("alice", "group:a")
    permission.add_user_principal("alice", "group:b")
    permission.remove_user_principal("alice", "group:a")
    permission.remove_user_principal("alice", "group:absent")
    permission.remove_user_principal("nobody", "group:a")
    assert permission.user_principals("alice") == {"group:b"}


def test_remove_principal_from_every_user(permission):
    permission.add_user_principal("alice", "group:a")
    permission.add_user_principal("bob", "group:a")
    permission.add_user_principal("bob", "group:b")
    permission.remove_principal("group:a")
    assert permission.user_principals("alice") == set()
    assert permission.user_principals("bob") == {"group:b"}


# -- ACEs ---------------------------------------------------------------------------


def test_add_and_read_ace(permission):
    assert permission.object_permission_principals("/articles/a", "read") == set()
    permission.add_principal_to_ace("/articles/a", "read", "alice")
    permission.add_principal_to_ace("/articles/a", "read", "bob")
    permission.add_principal_to_ace("/articles/a", "read", "alice")
    permission.add_principal_to_ace("/articles/a", "write", "carol")
    permission.add_principal_to_ace("/articles/b", "read", "dave")
    assert permission.object_permission_principals("/articles/a", "read") == {"alice", "bob"}
    assert permission.object_permission_principals("/articles/a", "write") == {"carol"}
    assert permission.object_permission_principals("/articles/b", "read") == {"dave"}


def test_remove_principal_from_ace(permission):
    permission.add_principal_to_ace("/articles/a", "read", "alice")
    permission.add_principal_to_ace("/articles/a", "read", "bob")
    permission.remove_principal_from_ace("/articles/a", "read", "alice")
    permission.remove_principal_from_ace("/articles/a", "read", "absent")
    permission.remove_principal_from_ace("/articles/zzz", "write", "alice")
    assert permission.object_permission_principals("/articles/a", "read") == {"bob"}


def test_object_ids_and_permissions_compared_exactly(permission):
    permission.add_principal_to_ace("/articles/a", "read", "alice")
    permission.add_principal_to_ace("/articles/A", "read", "bob")
    permission.add_principal_to_ace("/articles/a%", "read", "carol")
    assert permission.object_permission_principals("/articles/a", "read") == {"alice"}
    assert permission.object_permission_principals("/articles/_", "read") == set()
    assert permission.object_permission_principals("/articles/a", "READ") == set()


def _write_implies_read(object_id, permission):
    if permission == "read":
        return [(object_id, "read"), (object_id, "write")]
    return [(object_id, permission)]


def _record_inherits_collection(object_id, permission):
    parent = object_id.rsplit("/", 1)[0]
    return [(object_id, permission), (parent, permission)]


def test_object_permission_authorized_principals(permission):
    permission.add_principal_to_ace("/articles/a", "read", "alice")
    permission.add_principal_to_ace("/articles/a", "write", "bob")
    permission.add_principal_to_ace("/articles", "read", "carol")
    assert permission.object_permission_authorized_principals("/articles/a", "read") == {"alice"}
    assert permission.object_permission_authorized_principals(
        "/articles/a", "read", get_bound_permissions=_write_implies_read
    ) == {"alice", "bob"}
    assert permission.object_permission_authorized_principals(
        "/articles/a", "read", get_bound_permissions=_record_inherits_collection
    ) == {"alice", "carol"}


CHECK_CASES = [
    pytest.param("read", ["alice"], None, True, id="direct"),
    pytest.param("read", ["bob", "system.Everyone"], None, False, id="no-intersection"),
    pytest.param("read", [], None, False, id="no-principals"),
    pytest.param("write", ["alice"], None, False, id="read-does-not-imply-write"),
    pytest.param("read", ["bob"], None, False, id="write-does-not-imply-read"),
    pytest.param("read", ["bob"], _write_implies_read, True, id="bound-write-implies-read"),
    pytest.param("read", ["group:x"], None, True, id="group"),
]


@pytest.mark.parametrize(("perm", "principals", "bound", "expected"), CHECK_CASES)
def test_check_permission(permission, perm, principals, bound, expected):
    permission.add_principal_to_ace("/articles/a", "read", "alice")
    permission.add_principal_to_ace("/articles/a", "read", "group:x")
    permission.add_principal_to_ace("/articles/a", "write", "bob")
    assert permission.check_permission("/articles/a", perm, principals, get_bound_permissions=bound) is expected


def test_check_permission_accepts_any_iterable(permission):
    permission.add_principal_to_ace("/articles/a", "read", "alice")
    assert permission.check_permission("/articles/a", "read", iter(["x", "alice"])) is True
    assert permission.check_permission("/articles/a", "read", {"alice"}) is True


# -- listing ------------------------------------------------------------------------


@pytest.fixture
def acl(permission):
    permission.add_principal_to_ace("/articles", "read", "alice")
    permission.add_principal_to_ace("/articles/a1", "read", "alice")
    permission.add_principal_to_ace("/articles/a2", "read", "bob")
    permission.add_principal_to_ace("/articles/a3", "write", "alice")
    permission.add_principal_to_ace("/articles/a4", "read", "system.Everyone")
    permission.add_principal_to_ace("/articles/a1/comments/c1", "read", "alice")
    permission.add_principal_to_ace("/articlesX/x1", "read", "alice")
    permission.add_principal_to_ace("/notes/n1", "read", "alice")
    return permission


ACCESSIBLE_CASES = [
    pytest.param(["alice"], "read", "/articles/*", None, {"/articles/a1"}, id="glob-one-segment"),
    pytest.param(["alice", "system.Everyone"], "read", "/articles/*", None, {"/articles/a1", "/articles/a4"},
                 id="several-principals"),
    pytest.param(["alice"], "write", "/articles/*", None, {"/articles/a3"}, id="other-permission"),
    pytest.param(["alice"], "read", "/articles/*", _write_implies_read, {"/articles/a1", "/articles/a3"},
                 id="bound"),
    pytest.param(["alice"], "read", "/articles/*/comments/*", None, {"/articles/a1/comments/c1"},
                 id="nested-glob"),
    pytest.param(["alice"], "read", "/articles", None, {"/articles"}, id="exact"),
    pytest.param(["alice"], "read", None, None,
                 {"/articles", "/articles/a1", "/articles/a1/comments/c1", "/articlesX/x1", "/notes/n1"},
                 id="no-match-means-all"),
    pytest.param(["carol"], "read", "/articles/*", None, set(), id="nothing"),
    pytest.param([], "read", "/articles/*", None, set(), id="no-principals"),
    pytest.param(["alice"], "read", "/art%/*", None, set(), id="percent-is-literal"),
    pytest.param(["alice"], "read", "/articles/a_", None, set(), id="underscore-is-literal"),
]


@pytest.mark.parametrize(("principals", "perm", "pattern", "bound", "expected"), ACCESSIBLE_CASES)
def test_principals_accessible_objects(acl, principals, perm, pattern, bound, expected):
    found = acl.principals_accessible_objects(principals, perm, object_id_match=pattern,
                                              get_bound_permissions=bound)
    assert found == expected


def test_object_permissions(acl):
    acl.add_principal_to_ace("/articles/a1", "write", "bob")
    acl.add_principal_to_ace("/articles/a1", "article:create", "carol")
    assert acl.object_permissions("/articles/a1") == {
        "read": {"alice"}, "write": {"bob"}, "article:create": {"carol"},
    }
    assert acl.object_permissions("/articles/a1", ["write", "delete"]) == {"write": {"bob"}}
    assert acl.object_permissions("/unknown") == {}


def test_object_permissions_omit_emptied_aces(permission):
    permission.add_principal_to_ace("/o", "read", "alice")
    permission.add_principal_to_ace("/o", "write", "bob")
    permission.remove_principal_from_ace("/o", "read", "alice")
    assert permission.object_permissions("/o") == {"write": {"bob"}}


def test_replace_object_permissions(permission):
    permission.add_principal_to_ace("/o", "read", "alice")
    permission.add_principal_to_ace("/o", "write", "bob")
    permission.add_principal_to_ace("/o", "article:create", "carol")
    permission.replace_object_permissions("/o", {"read": ["dave", "erin", "dave"], "write": []})
    assert permission.object_permissions("/o") == {"read": {"dave", "erin"}, "article:create": {"carol"}}
    permission.replace_object_permissions("/new", {"read": {"x"}, "write": ("y",)})
    assert permission.object_permissions("/new") == {"read": {"x"}, "write": {"y"}}
    permission.replace_object_permissions("/new", {})
    assert permission.object_permissions("/new") == {"read": {"x"}, "write": {"y"}}


def test_delete_object_permissions(acl):
    acl.delete_object_permissions("/articles/a1", "/articles/a2", "/never")
    assert acl.object_permissions("/articles/a1") == {}
    assert acl.object_permissions("/articles/a2") == {}
    assert acl.object_permissions("/articles/a1/comments/c1") == {"read": {"alice"}}
    assert acl.principals_accessible_objects(["alice", "bob"], "read", "/articles/*") == set()
    acl.delete_object_permissions()


def test_flush_removes_aces_and_user_principals(permission):
    permission.add_principal_to_ace("/o", "read", "alice")
    permission.add_user_principal("alice", "group:a")
    permission.flush()
    assert permission.object_permissions("/o") == {}
    assert permission.user_principals("alice") == set()


def test_many_objects_and_principals(permission):
    for i in range(200):
        permission.add_principal_to_ace(f"/articles/r{i}", "read", f"user{i % 7}")
    found = permission.principals_accessible_objects(["user3", "user5"], "read", "/articles/*")
    assert found == {f"/articles/r{i}" for i in range(200) if i % 7 in (3, 5)}


__all__ = [name for name in dir() if name.startswith("test_")] + ["acl"]
