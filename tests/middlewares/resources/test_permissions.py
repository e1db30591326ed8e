"""Shareable resources (PROTOCOL §9): ACL matrix, listing restriction, permissions attribute.

RELIABILITY S3 (nothing of another user's records in what a user sees):
listings and ``_since`` (``test_listing_restricted_to_readable_and_no_foreign_tombstones``,
and test_endpoints.py ``test_users_do_not_see_each_other`` for per-user resources),
409 errors (``test_unique_conflict_shows_existing_only_to_readers``), and one
401/403-vs-404 rule without existence oracle (the last section). The project has
no ``/permissions`` endpoint nor default bucket (Kinto features).
"""
from __future__ import annotations

import json

import pytest

from cliquet_wsgi.middlewares.resources import Resource
from tests.middlewares.resources.conftest import as_user, user_id

OWNER, READER, WRITER, EVE = "owner", "reader", "writer", "eve"
UNAUTHORIZED = {"code": 401, "errno": 104, "error": "Unauthorized",
                "message": "Please authenticate yourself to use this endpoint."}
FORBIDDEN = {"code": 403, "errno": 121, "error": "Forbidden", "message": "This user cannot access this resource."}
OTHER_ID = "2" * 8 + "-1111-4111-8111-" + "1" * 12


@pytest.fixture
def app(make_app):
    app = make_app([Resource("page", model="shareable")])
    app.registry.permission.add_principal_to_ace("/pages", "page:create", user_id(OWNER))
    return app


@pytest.fixture
def record(app):
    body = {"data": {"title": "shared"},
            "permissions": {"read": [user_id(READER)], "write": [user_id(WRITER)]}}
    return app.post_json("/pages", body, headers=as_user(OWNER), status=201).json


# (method, path kind) -> {principal: status}
MATRIX = {
    ("GET", "collection"): {None: 401, EVE: 403, READER: 200, WRITER: 403, OWNER: 403},
    ("HEAD", "collection"): {None: 401, EVE: 403, READER: 200, WRITER: 403, OWNER: 403},
    ("POST", "collection"): {None: 401, EVE: 403, READER: 403, WRITER: 403, OWNER: 201},
    ("DELETE", "collection"): {None: 401, EVE: 403, READER: 403, WRITER: 200, OWNER: 200},
    ("GET", "record"): {None: 401, EVE: 403, READER: 200, WRITER: 403, OWNER: 403},
    ("HEAD", "record"): {None: 401, EVE: 403, READER: 200, WRITER: 403, OWNER: 403},
    ("PUT", "record"): {None: 401, EVE: 403, READER: 403, WRITER: 200, OWNER: 200},
    ("PATCH", "record"): {None: 401, EVE: 403, READER: 403, WRITER: 200, OWNER: 200},
    ("DELETE", "record"): {None: 401, EVE: 403, READER: 403, WRITER: 200, OWNER: 200},
}

CASES = [
    pytest.param(method, kind, who, status, id=f"{method}-{kind}-{who or 'anonymous'}")
    for (method, kind), row in MATRIX.items()
    for who, status in row.items()
]


@pytest.mark.parametrize("method,kind,who,status", CASES)
def test_acl_matrix(app, record, method, kind, who, status):
    path = "/pages" if kind == "collection" else f"/pages/{record['data']['id']}"
    body = b'{"data": {"title": "changed"}}' if method in ("POST", "PUT", "PATCH") else b""
    response = app.request(path, method=method, body=body,
                           headers={**as_user(who), "Content-Type": "application/json"}, expect_errors=True)
    assert response.status_int == status, response.text
    if status == 401 and method != "HEAD":
        assert response.json == UNAUTHORIZED
        assert response.headers["WWW-Authenticate"] == 'Basic realm="Realm"'
    elif status == 403 and method != "HEAD":
        assert response.json == FORBIDDEN
    elif method == "GET" and kind == "collection":
        assert [r["id"] for r in response.json["data"]] == [record["data"]["id"]]


def test_post_returns_permissions_with_writer(app, record):
    assert record["permissions"] == {"read": [user_id(READER)], "write": sorted([user_id(WRITER), user_id(OWNER)])}
    assert record["data"]["title"] == "shared"


def test_get_record_returns_permissions(app, record):
    response = app.get(f"/pages/{record['data']['id']}", headers=as_user(READER))
    assert response.json == record


def test_put_replace_resets_missing_permissions_unless_absent(app, record):
    url = f"/pages/{record['data']['id']}"
    kept = app.put_json(url, {"data": {"title": "v2"}}, headers=as_user(WRITER)).json
    assert kept["permissions"] == record["permissions"]
    replaced = app.put_json(url, {"data": {"title": "v3"}, "permissions": {"read": ["system.Everyone"]}},
                            headers=as_user(WRITER)).json
    # write was absent from the body: reset, then the writer is added back.
    assert replaced["permissions"] == {"read": ["system.Everyone"], "write": [user_id(WRITER)]}


def test_patch_replaces_only_given_permissions(app, record):
    url = f"/pages/{record['data']['id']}"
    patched = app.patch_json(url, {"permissions": {"read": []}}, headers=as_user(WRITER)).json
    assert patched["permissions"] == {"write": sorted([user_id(WRITER), user_id(OWNER)])}
    # A permissions-only PATCH still writes (§9.3: the writer is added).
    assert patched["data"]["last_modified"] > record["data"]["last_modified"]


def test_invalid_permissions_are_400(app):
    response = app.post_json("/pages", {"data": {}, "permissions": {"admin": ["x"]}}, headers=as_user(OWNER),
                             status=400)
    assert response.json["details"] == [{"location": "body", "name": "permissions",
                                         "description": '"admin" is not one of read, write'}]
    assert response.json["message"] == 'permissions in body: "admin" is not one of read, write'
    response = app.post_json("/pages", {"data": {}, "permissions": {"read": "x"}}, headers=as_user(OWNER),
                             status=400)
    assert response.json["details"][0]["name"] == "permissions.read"


def test_delete_removes_aces(app, record):
    record_id = record["data"]["id"]
    app.delete(f"/pages/{record_id}", headers=as_user(WRITER), status=200)
    assert app.registry.permission.object_permissions(f"/pages/{record_id}") == {}


def test_delete_collection_removes_aces_of_deleted_only(app, record):
    app.registry.permission.add_principal_to_ace("/pages", "write", user_id(OWNER))
    app.delete("/pages", headers=as_user(OWNER), status=200)
    assert app.registry.permission.object_permissions(f"/pages/{record['data']['id']}") == {}


def test_listing_restricted_to_readable_and_no_foreign_tombstones(app, record):
    # RELIABILITY S3 for shareable lists, _since and tombstones.
    owner = as_user(OWNER)
    hidden = app.post_json("/pages", {"data": {"title": "private"}}, headers=owner).json["data"]
    app.registry.permission.add_principal_to_ace("/pages", "write", user_id(OWNER))
    visible = app.get("/pages", headers=as_user(READER)).json["data"]
    assert [r["id"] for r in visible] == [record["data"]["id"]]
    app.delete(f"/pages/{hidden['id']}", headers=owner)
    since = app.get("/pages?_since=0", headers=as_user(READER)).json["data"]
    assert [r["id"] for r in since] == [record["data"]["id"]]
    assert hidden["id"] not in app.get("/pages?_since=0", headers=as_user(READER)).text
    # Total-Records counts only what the reader may see.
    assert app.get("/pages", headers=as_user(READER)).headers["Total-Records"] == "1"


def test_collection_read_permission_lists_everything(app, record):
    app.post_json("/pages", {"data": {"title": "other"}}, headers=as_user(OWNER))
    app.registry.permission.add_principal_to_ace("/pages", "read", "group:staff")
    listed = app.get("/pages", headers={**as_user(EVE), "X-Test-Groups": "group:staff"}).json["data"]
    assert len(listed) == 2


def test_everyone_may_read_public_records(app):
    public = app.post_json("/pages", {"data": {}, "permissions": {"read": ["system.Everyone"]}},
                           headers=as_user(OWNER)).json["data"]
    app.get(f"/pages/{public['id']}", status=200)
    assert [r["id"] for r in app.get("/pages", status=200).json["data"]] == [public["id"]]


def test_missing_record_is_401_or_403_not_404(app):
    # RELIABILITY S3: see also the last section of this module.
    app.get(f"/pages/{OTHER_ID}", status=401)
    app.get(f"/pages/{OTHER_ID}", headers=as_user(EVE), status=403)


def test_put_create_needs_create_permission(app):
    app.put_json(f"/pages/{OTHER_ID}", {"data": {}}, headers=as_user(EVE), status=403)
    created = app.put_json(f"/pages/{OTHER_ID}", {"data": {}}, headers=as_user(OWNER), status=201).json
    assert created["permissions"] == {"write": [user_id(OWNER)]}


def test_post_existing_id_needs_read(app, record):
    body = {"data": {"id": record["data"]["id"]}}
    app.registry.permission.add_principal_to_ace("/pages", "page:create", user_id(EVE))
    response = app.post_json("/pages", body, headers=as_user(EVE), status=403)
    assert response.json == FORBIDDEN
    app.registry.permission.add_principal_to_ace("/pages", "page:create", user_id(READER))
    assert app.post_json("/pages", body, headers=as_user(READER), status=200).json == record


def test_settings_principals_replace_backend(make_app):
    app = make_app([Resource("page", model="shareable")], page_create_principals="system.Authenticated",
                   page_read_principals="system.Everyone")
    created = app.post_json("/pages", {"data": {"title": "x"}}, headers=as_user(EVE), status=201).json
    assert created["permissions"] == {"write": [user_id(EVE)]}
    app.get(f"/pages/{created['data']['id']}", status=200)
    assert len(app.get("/pages", status=200).json["data"]) == 1
    app.post_json("/pages", {"data": {}}, status=401)
    # write comes from the record's ACE (no write setting).
    app.patch_json(f"/pages/{created['data']['id']}", {"data": {"t": 1}}, headers=as_user(EVE), status=200)
    app.patch_json(f"/pages/{created['data']['id']}", {"data": {"t": 1}}, headers=as_user(OWNER), status=403)


def test_anonymous_create_adds_no_writer(make_app):
    app = make_app([Resource("page", model="shareable")], page_create_principals="system.Everyone")
    created = app.post_json("/pages", {"data": {}}, status=201).json
    assert created["permissions"] == {}


def test_permissions_rollback_with_records(app, monkeypatch):
    """One transaction per request: a failing ACE write leaves no record behind."""
    from cliquet_wsgi.errors import BackendError

    permission = app.registry.permission

    def broken(*args, **kwargs):
        raise BackendError(message="permission backend down")

    monkeypatch.setattr(permission, "replace_object_permissions", broken)
    response = app.post_json("/pages", {"data": {"title": "x"}}, headers=as_user(OWNER), status=503)
    assert response.json["errno"] == 201
    assert app.registry.storage.get_all("page", "")[0] == []


class WriteImpliesRead(Resource):
    name = "doc"
    model = "shareable"

    def get_bound_permissions(self, object_id, permission):
        if permission == "read":
            return [(object_id, "read"), (object_id, "write")]
        return [(object_id, permission)]


def test_bound_permissions_hook(make_app):
    app = make_app([WriteImpliesRead()], doc_create_principals="system.Authenticated")
    created = app.post_json("/docs", {"data": {}}, headers=as_user(OWNER)).json["data"]
    # The owner only holds write, which the hook makes imply read.
    app.get(f"/docs/{created['id']}", headers=as_user(OWNER), status=200)
    assert [r["id"] for r in app.get("/docs", headers=as_user(OWNER)).json["data"]] == [created["id"]]
    app.get(f"/docs/{created['id']}", headers=as_user(EVE), status=403)


def test_unique_conflict_shows_existing_only_to_readers(make_app):
    # RELIABILITY S3: neither the record nor its id reaches someone who cannot read it.
    app = make_app([Resource("link", model="shareable", unique_fields=("url",))],
                   link_create_principals="system.Authenticated")
    hidden = app.post_json("/links", {"data": {"url": "u"}}, headers=as_user(OWNER)).json["data"]
    response = app.post_json("/links", {"data": {"url": "u"}}, headers=as_user(EVE), status=409)
    assert response.json == {"code": 409, "errno": 122, "error": "Conflict", "message": "Conflict of field url",
                             "details": {"field": "url"}}
    assert hidden["id"] not in response.text and user_id(OWNER) not in response.text
    app.registry.permission.add_principal_to_ace(f"/links/{hidden['id']}", "read", user_id(READER))
    response = app.post_json("/links", {"data": {"url": "u"}}, headers=as_user(READER), status=409)
    assert response.json == {"code": 409, "errno": 122, "error": "Conflict",
                             "message": f"Conflict of field url on record {hidden['id']}",
                             "details": {"field": "url", "existing": hidden}}


# -- RELIABILITY S3: one 403-vs-404 rule, no existence oracle ---------------------------------------


def same_answer(app, method, paths, headers):
    """Status, headers and body of ``method`` on each path: they must not tell the paths apart."""
    answers = []
    for path in paths:
        response = app.request(path, method=method, body=b'{"data": {"title": "x"}}',
                               headers={**headers, "Content-Type": "application/json"}, expect_errors=True)
        answers.append((response.status, response.headerlist, response.body))
    assert answers.count(answers[0]) == len(answers), answers
    return answers[0]


@pytest.mark.parametrize("method", ["GET", "HEAD", "PATCH", "DELETE", "PUT"])
@pytest.mark.parametrize("who, status", [pytest.param(None, 401, id="anonymous"), pytest.param(EVE, 403, id="eve")])
def test_unreadable_missing_and_deleted_records_answer_alike(app, record, method, who, status):
    """Shareable rule (PROTOCOL §9.2): without the permission, 401/403 whether the record exists or not."""
    deleted = app.post_json("/pages", {"data": {}}, headers=as_user(OWNER)).json["data"]["id"]
    app.delete(f"/pages/{deleted}", headers=as_user(OWNER))
    paths = [f"/pages/{record['data']['id']}", f"/pages/{OTHER_ID}", f"/pages/{deleted}"]
    status_line, _, body = same_answer(app, method, paths, as_user(who))
    assert int(status_line[:3]) == status
    if method != "HEAD":
        assert json.loads(body) == (UNAUTHORIZED if who is None else FORBIDDEN)


def test_404_only_for_whom_may_read_it(make_app):
    """With the permission (here from the settings), a missing or deleted record is a 404, as on user resources."""
    app = make_app([Resource("page", model="shareable")], page_create_principals="system.Authenticated",
                   page_read_principals="system.Authenticated", page_write_principals="system.Authenticated")
    deleted = app.post_json("/pages", {"data": {}}, headers=as_user(OWNER)).json["data"]["id"]
    app.delete(f"/pages/{deleted}", headers=as_user(OWNER))
    for method in ("GET", "PATCH", "DELETE"):
        status_line, _, body = same_answer(app, method, [f"/pages/{OTHER_ID}", f"/pages/{deleted}"], as_user(EVE))
        assert (status_line, json.loads(body)) == ("404 Not Found", {"code": 404, "errno": 110, "error": "Not Found"})


@pytest.mark.parametrize("method", ["GET", "HEAD", "PATCH", "DELETE"])
def test_another_users_record_answers_as_a_missing_one(make_app, method):
    """User resources (PROTOCOL §9.1): bob's record, a deleted one and a never-created one are the same 404."""
    app = make_app([Resource("article")])
    theirs = app.post_json("/articles", {"data": {}}, headers=as_user("bob")).json["data"]["id"]
    mine = app.post_json("/articles", {"data": {}}, headers=as_user("alice")).json["data"]["id"]
    app.delete(f"/articles/{mine}", headers=as_user("alice"))
    paths = [f"/articles/{theirs}", f"/articles/{mine}", f"/articles/{OTHER_ID}"]
    status_line, _, body = same_answer(app, method, paths, as_user("alice"))
    assert status_line == "404 Not Found"
    assert body == (b"" if method == "HEAD" else b'{"code":404,"errno":110,"error":"Not Found"}')
