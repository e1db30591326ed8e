"""The eight endpoints of PROTOCOL §10 on a per-user resource, on every backend."""
from __future__ import annotations

import hashlib
import re

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from cliquet_wsgi.middlewares.resources import Resource
from tests.middlewares.resources.conftest import as_user, user_id

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "url": {"type": "string"},
        "status": {"type": "integer", "default": 0},
        "tags": {"type": "array"},
    },
    "additionalProperties": False,
}

ALICE = as_user("alice")
BOB = as_user("bob")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ETAG = re.compile(r'"\d+"')
RFC1123 = re.compile(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")
NOT_FOUND = {"code": 404, "errno": 110, "error": "Not Found"}


def article(**kwargs):
    return Resource("article", schema=SCHEMA, **kwargs)


@pytest.fixture
def app(make_app):
    return make_app([article()])


def create(app, data, headers=ALICE):
    return app.post_json("/articles", {"data": data}, headers=headers, status=201).json["data"]


# -- routing --------------------------------------------------------------------------


def test_other_paths_go_to_the_app(app):
    for path in ("/", "/articles/", "/articles/a/b", "/article", "/articlesx"):
        response = app.get(path, headers=ALICE, status=404)
        assert response.json["errno"] == 111, path


def test_route_name_and_pattern_in_environ(make_app):
    seen = {}

    def around(inner):
        def spy(environ, start_response):
            result = inner(environ, start_response)
            seen.update({k: environ.get(k) for k in ("cliquet.route_name", "cliquet.route_pattern",
                                                     "cliquet.expose_headers")})
            return result
        return spy

    app = make_app([article()], around=around)
    app.get("/articles", headers=ALICE)
    assert seen["cliquet.route_name"] == "article-collection"
    assert seen["cliquet.route_pattern"] == "/articles"
    assert "Total-Records" in seen["cliquet.expose_headers"] and "Next-Page" in seen["cliquet.expose_headers"]
    app.get("/articles/abc", headers=ALICE, status=400)
    assert seen["cliquet.route_name"] == "article-record"
    assert seen["cliquet.route_pattern"] == "/articles/{id}"
    assert "Total-Records" not in seen["cliquet.expose_headers"]


def test_endpoint_methods_registered_for_cors(app):
    registry = app.registry
    assert registry.endpoint_methods("/articles") == ["GET", "HEAD", "POST", "DELETE", "OPTIONS"]
    assert registry.endpoint_methods("/articles/x") == ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]
    assert registry.endpoint_methods("/other") is None


# -- POST / GET -------------------------------------------------------------------------


def test_post_creates_with_uuid_and_defaults(app):
    response = app.post_json("/articles", {"data": {"title": "MoFo"}}, headers=ALICE, status=201)
    record = response.json["data"]
    assert set(record) == {"id", "last_modified", "title", "status"}
    assert UUID.fullmatch(record["id"])
    assert record["status"] == 0 and record["title"] == "MoFo"
    assert response.json == {"data": record}
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert response.headers["Vary"] == "Authorization, Accept"
    # §10.3: POST carries neither ETag nor Last-Modified.
    assert "ETag" not in response.headers and "Last-Modified" not in response.headers


def test_get_record_headers_and_body(app):
    record = create(app, {"title": "a"})
    response = app.get(f"/articles/{record['id']}", headers=ALICE, status=200)
    assert response.json == {"data": record}
    assert response.headers["ETag"] == f'"{record["last_modified"]}"'
    assert RFC1123.fullmatch(response.headers["Last-Modified"])
    assert response.headers["Cache-Control"] == "no-cache"
    assert "Expires" not in response.headers


def test_last_modified_header_is_floor_of_seconds():
    from cliquet_wsgi.middlewares.resources.views import http_date

    assert http_date(1430222877724) == "Tue, 28 Apr 2015 12:07:57 GMT"


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=253402300799999))  # up to 9999-12-31T23:59:59.999
def test_last_modified_header_is_what_the_standard_library_formats(timestamp_ms):
    from email.utils import formatdate

    from cliquet_wsgi.middlewares.resources.views import http_date

    assert http_date(timestamp_ms) == formatdate(timestamp_ms // 1000, usegmt=True)


def test_get_collection_lists_newest_first_with_headers(app):
    first = create(app, {"title": "a"})
    second = create(app, {"title": "b"})
    response = app.get("/articles", headers=ALICE, status=200)
    assert response.json == {"data": [second, first]}
    assert response.headers["Total-Records"] == "2"
    assert response.headers["ETag"] == f'"{second["last_modified"]}"'
    assert "Next-Page" not in response.headers
    assert "Total-Objects" not in response.headers


def test_head_collection_counts_without_body(app):
    create(app, {"title": "a"})
    create(app, {"title": "b"})
    response = app.head("/articles", headers=ALICE, status=200)
    assert response.body == b""
    assert response.headers["Total-Records"] == "2"
    assert response.headers["Total-Objects"] == "2"
    assert ETAG.fullmatch(response.headers["ETag"])


def test_head_record(app):
    record = create(app, {"title": "a"})
    response = app.head(f"/articles/{record['id']}", headers=ALICE, status=200)
    assert response.body == b""
    assert response.headers["ETag"] == f'"{record["last_modified"]}"'


def test_empty_collection_timestamp_is_stable(app):
    first = app.get("/articles", headers=ALICE).headers["ETag"]
    second = app.get("/articles", headers=ALICE).headers["ETag"]
    assert first == second
    assert app.get("/articles", headers=ALICE).json == {"data": []}


def test_post_existing_id_returns_it_unchanged(app):
    record = create(app, {"title": "a"})
    response = app.post_json("/articles", {"data": {"id": record["id"], "title": "b"}}, headers=ALICE, status=200)
    assert response.json == {"data": record}


def test_post_with_tombstoned_id_recreates(app):
    record = create(app, {"title": "a"})
    app.delete(f"/articles/{record['id']}", headers=ALICE)
    again = create(app, {"id": record["id"], "title": "b"})
    assert again["id"] == record["id"] and again["title"] == "b"
    assert again["last_modified"] > record["last_modified"]


def test_post_without_data_when_schema_accepts_empty(app):
    response = app.post("/articles", b"", headers={**ALICE, "Content-Type": "application/json"}, status=201)
    assert response.json["data"]["status"] == 0


def test_strict_schema_drops_unknown_fields(app):
    record = create(app, {"title": "a", "unknown": 1})
    assert "unknown" not in record


def test_schemaless_keeps_unknown_fields(make_app):
    app = make_app([Resource("note")])
    record = app.post_json("/notes", {"data": {"anything": {"x": [1]}}}, headers=ALICE, status=201).json["data"]
    assert record["anything"] == {"x": [1]}


# -- PUT -------------------------------------------------------------------------------


def test_put_creates_then_replaces(app):
    created = app.put_json("/articles/" + "1" * 8 + "-1111-4111-8111-" + "1" * 12,
                           {"data": {"title": "a", "url": "u"}}, headers=ALICE, status=201)
    record = created.json["data"]
    assert created.headers["ETag"] == f'"{record["last_modified"]}"'
    replaced = app.put_json(f"/articles/{record['id']}", {"data": {"title": "b"}}, headers=ALICE, status=200)
    assert replaced.json["data"] == {"id": record["id"], "last_modified": replaced.json["data"]["last_modified"],
                                     "title": "b", "status": 0}
    assert replaced.json["data"]["last_modified"] > record["last_modified"]
    assert replaced.headers["ETag"] == f'"{replaced.json["data"]["last_modified"]}"'


def test_put_id_mismatch_is_400(app):
    record = create(app, {"title": "a"})
    other = "2" * 8 + "-1111-4111-8111-" + "1" * 12
    response = app.put_json(f"/articles/{record['id']}", {"data": {"id": other}}, headers=ALICE, status=400)
    assert response.json["message"] == "Record id does not match existing record"


def test_put_on_tombstone_creates(app):
    record = create(app, {"title": "a"})
    app.delete(f"/articles/{record['id']}", headers=ALICE)
    app.put_json(f"/articles/{record['id']}", {"data": {"title": "b"}}, headers=ALICE, status=201)


# -- PATCH -------------------------------------------------------------------------------


def test_patch_merges_shallowly(app):
    record = create(app, {"title": "a", "url": "u"})
    response = app.patch_json(f"/articles/{record['id']}", {"data": {"title": "b"}}, headers=ALICE, status=200)
    data = response.json["data"]
    assert data["title"] == "b" and data["url"] == "u"
    assert data["last_modified"] > record["last_modified"]
    assert response.headers["ETag"] == f'"{data["last_modified"]}"'


def test_patch_without_change_does_not_write(app):
    record = create(app, {"title": "a"})
    before = app.get("/articles", headers=ALICE).headers["ETag"]
    response = app.patch_json(f"/articles/{record['id']}", {"data": {"title": "a"}}, headers=ALICE)
    assert response.json["data"] == record
    assert app.get("/articles", headers=ALICE).headers["ETag"] == before


@pytest.mark.parametrize("behavior,expected", [
    pytest.param("full", None, id="full"),
    pytest.param("LIGHT", {"title": "b"}, id="light"),
    pytest.param("diff", {}, id="diff"),
    pytest.param("unknown", None, id="unknown-is-full"),
])
def test_patch_response_behavior(app, behavior, expected):
    record = create(app, {"title": "a", "url": "u"})
    response = app.patch_json(f"/articles/{record['id']}", {"data": {"title": "b"}},
                              headers={**ALICE, "Response-Behavior": behavior})
    if expected is None:
        assert response.json["data"]["url"] == "u" and response.json["data"]["title"] == "b"
    else:
        assert response.json == {"data": expected}


def test_patch_empty_body_is_400(app):
    record = create(app, {"title": "a"})
    response = app.patch_json(f"/articles/{record['id']}", {}, headers=ALICE, status=400)
    assert response.json["message"] == "body: Provide at least one of data or permissions"


def test_patch_missing_record_is_404(app):
    response = app.patch_json("/articles/" + "3" * 8 + "-1111-4111-8111-" + "1" * 12, {"data": {"title": "b"}},
                              headers=ALICE, status=404)
    assert response.json == NOT_FOUND


# -- DELETE ---------------------------------------------------------------------------------


def test_delete_record_returns_tombstone_then_404(app):
    record = create(app, {"title": "a"})
    response = app.delete(f"/articles/{record['id']}", headers=ALICE, status=200)
    tombstone = response.json["data"]
    assert tombstone == {"id": record["id"], "last_modified": tombstone["last_modified"], "deleted": True}
    assert tombstone["last_modified"] > record["last_modified"]
    assert app.get(f"/articles/{record['id']}", headers=ALICE, status=404).json == NOT_FOUND
    assert app.delete(f"/articles/{record['id']}", headers=ALICE, status=404).json == NOT_FOUND
    since = app.get(f"/articles?_since={record['last_modified']}", headers=ALICE).json["data"]
    assert since == [tombstone]


def test_delete_record_forced_timestamp(app):
    record = create(app, {"title": "a"})
    forced = record["last_modified"] + 100000
    response = app.delete(f'/articles/{record["id"]}?last_modified="{forced}"', headers=ALICE)
    assert response.json["data"]["last_modified"] == forced
    other = create(app, {"title": "b"})
    response = app.delete(f"/articles/{other['id']}?last_modified=abc", headers=ALICE, status=400)
    assert response.json["details"][0]["location"] == "querystring"


def test_delete_collection_filtered(app):
    keep = create(app, {"title": "keep"})
    gone = create(app, {"title": "gone"})
    response = app.delete("/articles?title=gone", headers=ALICE, status=200)
    assert [t["id"] for t in response.json["data"]] == [gone["id"]]
    assert response.json["data"][0]["deleted"] is True
    assert app.get("/articles", headers=ALICE).json["data"] == [keep]


def test_delete_collection_all_with_own_timestamps(app):
    for title in "abc":
        create(app, {"title": title})
    tombstones = app.delete("/articles", headers=ALICE).json["data"]
    assert len(tombstones) == 3
    assert len({t["last_modified"] for t in tombstones}) == 3
    assert app.get("/articles", headers=ALICE).json["data"] == []


# -- forced timestamps ------------------------------------------------------------------------


def test_forced_last_modified_on_create_honoured_when_field_kept(make_app):
    app = make_app([Resource("note")])
    record = app.post_json("/notes", {"data": {"last_modified": 1234, "x": 1}}, headers=ALICE).json["data"]
    assert record["last_modified"] == 1234
    bumped = app.patch_json(f"/notes/{record['id']}", {"data": {"last_modified": 1000, "x": 2}},
                            headers=ALICE).json["data"]
    assert bumped["last_modified"] > 1234


def test_forced_last_modified_ignored_by_strict_schema(app):
    record = create(app, {"title": "a", "last_modified": 1234})
    assert record["last_modified"] != 1234


# -- ids ------------------------------------------------------------------------------------------


# RELIABILITY I6: the record id slot (UUID ids); every path slot of a generic resource below.
@pytest.mark.parametrize("raw_id", [
    pytest.param("abc", id="not-uuid"),
    pytest.param("1" * 300, id="long"),
    pytest.param("..", id="dotdot"),
    pytest.param("%00", id="nul"),
    pytest.param("%0d%0aSet-Cookie:x", id="crlf"),
    pytest.param("-abc", id="leading-dash"),
    pytest.param("%C3%A9t%C3%A9", id="unicode"),
    pytest.param("%ff", id="invalid-utf8"),
    pytest.param("11111111-1111-4111-8111-11111111111%0A", id="trailing-newline"),
    pytest.param("11111111-1111-4111-8111-11111111111A", id="uppercase"),
])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_invalid_record_id_is_400(app, raw_id, method):
    response = app.request(f"/articles/{raw_id}", method=method, headers={**ALICE, "Content-Type": "application/json"},
                           body=b'{"data": {}}', expect_errors=True)
    assert response.status_int == 400
    assert response.json == {
        "code": 400, "errno": 107, "error": "Invalid parameters", "message": "path: Invalid record id",
        "details": [{"location": "path", "name": None, "description": "Invalid record id"}],
    }
    for name, value in response.headerlist:
        assert "Set-Cookie" not in name and "\n" not in value


@pytest.mark.parametrize("bad_id", [3.14, 42, None, "abc", "11111111-1111-4111-8111-111111111111\n"])
def test_post_invalid_data_id_is_400(app, bad_id):
    response = app.post_json("/articles", {"data": {"id": bad_id}}, headers=ALICE, status=400)
    assert response.json["details"] == [{"location": "path", "name": None, "description": "Invalid record id"}]


def test_generic_id_generator(make_app):
    app = make_app([Resource("note", id_generator=lambda: "generated-id")])
    assert app.post_json("/notes", {"data": {}}, headers=ALICE).json["data"]["id"] == "generated-id"
    app.put_json("/notes/My_id-1", {"data": {}}, headers=ALICE, status=201)
    app.get("/notes/_underscore_first", headers=ALICE, status=400)


# Hostile values of a path slot as they appear in the URL (RELIABILITY I6).
HOSTILE_SLOTS = [
    pytest.param("a" * 256, id="over-255-chars"),
    # Incompressible: PostgreSQL refuses to index such a key (a 503 if it reached the backend).
    pytest.param("".join(hashlib.sha256(b"%d" % i).hexdigest() for i in range(50))[:3000], id="3000-chars"),
    pytest.param("..", id="dotdot"),
    pytest.param("%00", id="nul"),
    pytest.param("%0d%0aSet-Cookie:x", id="crlf"),
    pytest.param("-abc", id="leading-dash"),
    pytest.param("%EF%BC%91abc", id="fullwidth-digit-confusable"),
    pytest.param("b%D0%B0d", id="cyrillic-a-confusable"),
    pytest.param("%ff", id="invalid-utf8"),
    pytest.param("a%20b", id="space"),
]


def invalid_path(description):
    return {"code": 400, "errno": 107, "error": "Invalid parameters", "message": f"path: {description}",
            "details": [{"location": "path", "name": None, "description": description}]}


def assert_no_injected_header(response):
    for name, value in response.headerlist:
        assert "Set-Cookie" not in name and "\r" not in value and "\n" not in value


@pytest.fixture
def nested(make_app):
    """A per-user resource with a parent slot and generic ids: both slots take any [a-zA-Z0-9_-] id."""
    return make_app([Resource("task", parent="/lists/{list_id}", id_generator=lambda: "generated")])


@pytest.mark.parametrize("raw", HOSTILE_SLOTS)
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_hostile_record_id_slot_is_400(nested, raw, method):
    response = nested.request(f"/lists/l1/tasks/{raw}", method=method, body=b'{"data": {}}',
                              headers={**ALICE, "Content-Type": "application/json"}, expect_errors=True)
    assert (response.status_int, response.json) == (400, invalid_path("Invalid record id"))
    assert_no_injected_header(response)


@pytest.mark.parametrize("raw", HOSTILE_SLOTS)
@pytest.mark.parametrize("method,suffix", [
    ("GET", ""), ("POST", ""), ("DELETE", ""), ("GET", "/t1"), ("PUT", "/t1"), ("PATCH", "/t1"), ("DELETE", "/t1"),
])
def test_hostile_parent_slot_is_400(nested, raw, method, suffix):
    response = nested.request(f"/lists/{raw}/tasks{suffix}", method=method, body=b'{"data": {}}',
                              headers={**ALICE, "Content-Type": "application/json"}, expect_errors=True)
    assert (response.status_int, response.json) == (400, invalid_path("Invalid list_id"))
    assert_no_injected_header(response)


@pytest.mark.parametrize("path", [
    pytest.param("/lists//tasks", id="empty-parent"),
    pytest.param("/lists/l1/tasks/", id="empty-id"),
    pytest.param("/lists/a%2Fb/tasks", id="encoded-slash-in-parent"),
    pytest.param("/lists/l1/tasks/a%2Fb", id="encoded-slash-in-id"),
])
def test_slots_that_cannot_match_are_not_resource_paths(nested, path):
    # An empty slot or an (encoded) slash is no id: the app below answers, 404/111 here.
    # (In the full stack, a trailing slash is then redirected by the version layer, PROTOCOL §1.2.)
    response = nested.get(path, headers=ALICE, status=404)
    assert response.json == {"code": 404, "errno": 111, "error": "Not Found",
                             "message": "The resource you are looking for could not be found."}


def test_ids_of_255_characters_are_the_longest_accepted(nested):
    parent, record_id = "p" * 255, "r" * 255
    created = nested.put_json(f"/lists/{parent}/tasks/{record_id}", {"data": {}}, headers=ALICE, status=201)
    assert created.json["data"]["id"] == record_id
    assert nested.get(f"/lists/{parent}/tasks/{record_id}", headers=ALICE).json == created.json
    response = nested.post_json(f"/lists/{parent}/tasks", {"data": {"id": record_id + "r"}}, headers=ALICE,
                                status=400)
    assert response.json == invalid_path("Invalid record id")


# -- users are isolated --------------------------------------------------------------------------


def test_users_do_not_see_each_other(app):
    # RELIABILITY S3 for per-user resources: lists, _since, tombstones, 404s.
    mine = create(app, {"title": "alice's"}, headers=ALICE)
    theirs = create(app, {"title": "bob's"}, headers=BOB)
    assert app.get("/articles", headers=ALICE).json["data"] == [mine]
    assert app.get("/articles", headers=BOB).json["data"] == [theirs]
    for method in ("GET", "PATCH", "DELETE"):
        response = app.request(f"/articles/{theirs['id']}", method=method, headers={**ALICE, "Content-Type":
                               "application/json"}, body=b'{"data": {"title": "x"}}', expect_errors=True)
        assert (response.status_int, response.json) == (404, NOT_FOUND), method
    # PUT creates in *my* space.
    app.put_json(f"/articles/{theirs['id']}", {"data": {"title": "mine now"}}, headers=ALICE, status=201)
    assert app.get(f"/articles/{theirs['id']}", headers=BOB).json["data"] == theirs
    # _since on my collection never shows bob's tombstones.
    app.delete(f"/articles/{theirs['id']}", headers=BOB)
    ids = {r["id"] for r in app.get("/articles?_since=0", headers=ALICE).json["data"]}
    assert ids == {mine["id"], theirs["id"]}
    assert all(not r.get("deleted") for r in app.get("/articles?_since=0", headers=ALICE).json["data"])
    assert user_id("bob") not in app.get("/articles?_since=0", headers=ALICE).text


@pytest.mark.parametrize("method,path", [
    ("GET", "/articles"), ("HEAD", "/articles"), ("POST", "/articles"), ("DELETE", "/articles"),
    ("GET", "/articles/x"), ("PUT", "/articles/x"), ("PATCH", "/articles/x"), ("DELETE", "/articles/x"),
])
def test_anonymous_is_401(app, method, path):
    response = app.request(path, method=method, headers={"Content-Type": "application/json"},
                           body=b"{}" if method in ("POST", "PUT", "PATCH") else b"", expect_errors=True)
    assert response.status_int == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Realm"'
    if method != "HEAD":
        assert response.json == {"code": 401, "errno": 104, "error": "Unauthorized",
                                 "message": "Please authenticate yourself to use this endpoint."}


def test_permissions_in_body_of_user_resource_is_400(app):
    response = app.post_json("/articles", {"data": {}, "permissions": {"read": ["system.Everyone"]}},
                             headers=ALICE, status=400)
    assert response.json["details"] == [{"location": "body", "name": "permissions",
                                         "description": "permissions is not allowed"}]
    assert response.json["message"] == "permissions is not allowed"


# -- methods -----------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")  # the linters dislike FOO, on purpose
@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/articles", "GET,HEAD,POST,DELETE,OPTIONS"),
    ("PATCH", "/articles", "GET,HEAD,POST,DELETE,OPTIONS"),
    ("POST", "/articles/x", "GET,HEAD,PUT,PATCH,DELETE,OPTIONS"),
    ("TRACE", "/articles", "GET,HEAD,POST,DELETE,OPTIONS"),
    ("FOO", "/articles/x", "GET,HEAD,PUT,PATCH,DELETE,OPTIONS"),
])
def test_unknown_method_is_405(app, method, path, allow):
    # RELIABILITY I8 (every endpoint of the stack and /batch: test_stack.py).
    response = app.request(path, method=method, headers=ALICE, expect_errors=True)
    assert response.status_int == 405
    assert response.headers["Allow"] == allow
    assert response.json == {"code": 405, "errno": 115, "error": "Method Not Allowed",
                             "message": "Method not allowed on this endpoint."}


def test_readonly_allows_only_reads(make_app):
    app = make_app([article()], readonly=True)
    app.get("/articles", headers=ALICE, status=200)
    response = app.post_json("/articles", {"data": {}}, headers=ALICE, status=405)
    assert response.headers["Allow"] == "GET,HEAD,OPTIONS"
    app.delete("/articles", headers=ALICE, status=405)
    app.put_json("/articles/x", {"data": {}}, headers=ALICE, status=405)
    assert app.registry.endpoint_methods("/articles") == ["GET", "HEAD", "OPTIONS"]


def test_disabled_method_switch(make_app):
    app = make_app([article()], collection_article_delete_enabled=False, record_article_patch_enabled="false")
    create(app, {"title": "a"})
    response = app.delete("/articles", headers=ALICE, status=405)
    assert response.headers["Allow"] == "GET,HEAD,POST,OPTIONS"
    app.patch_json("/articles/x", {"data": {}}, headers=ALICE, status=405)
    app.delete("/articles/" + "1" * 8 + "-1111-4111-8111-" + "1" * 12, headers=ALICE, status=404)


def test_restricted_methods_on_definition(make_app):
    app = make_app([article(methods=("GET", "HEAD", "POST"))])
    create(app, {"title": "a"})
    app.delete("/articles", headers=ALICE, status=405)
    app.put_json("/articles/x", {"data": {}}, headers=ALICE, status=405)


def test_options_answers_allow(app):
    response = app.options("/articles/x", status=200)
    assert response.headers["Allow"] == "GET,HEAD,PUT,PATCH,DELETE,OPTIONS"


# -- content negotiation --------------------------------------------------------------------------


def test_accept_excluding_json_is_406_before_auth(app):
    response = app.get("/articles", headers={"Accept": "text/html"}, status=406)
    assert response.json["errno"] == 107
    assert response.json["error"] == "Invalid parameters"
    assert response.json["details"][0]["location"] == "header"


@pytest.mark.parametrize("content_type", ["text/plain", "", "application/json; charset=latin-1",
                                          "application/merge-patch+json"])
def test_wrong_content_type_is_415_before_auth(app, content_type):
    response = app.post("/articles", b'{"data": {}}', headers={"Content-Type": content_type}, status=415)
    assert response.json["errno"] == 107
    assert response.json["message"].startswith("Content-Type header should be one of")


def test_msgpack_in_and_out(app):
    body = msgpack.packb({"data": {"title": "packed"}})
    response = app.post("/articles", body, headers={**ALICE, "Content-Type": "application/msgpack",
                                                    "Accept": "application/msgpack"}, status=201)
    assert response.headers["Content-Type"] == "application/msgpack"
    assert msgpack.unpackb(response.body)["data"]["title"] == "packed"
    assert "Accept" in response.headers["Vary"]
    listed = app.get("/articles", headers={**ALICE, "Accept": "application/vnd.msgpack"})
    assert msgpack.unpackb(listed.body)["data"][0]["title"] == "packed"


# -- bad bodies (RELIABILITY I1) -------------------------------------------------------------------

BAD_BODIES = [
    b'{"data": {"title": "x"}',
    b'{"data": {}} trailing',
    b'{"data": {"status": NaN}}',
    b'{"data": {"title": "\\ud800"}}',
    b"\xef\xbb\xbf{}",
    b"[]",
    b'"x"',
    b"1",
    b'{"data": []}',
    b'{"data": "x"}',
    b"\xff\xfe",
    b"[" * 100000,
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
@pytest.mark.parametrize("method,path", [("POST", "/articles"), ("PUT", "/articles/" + "1" * 8 + "-1111-4111-8111-"
                                                                 + "1" * 12), ("PATCH", "/articles/x")])
def test_malformed_bodies_are_400(app, body, method, path):
    response = app.request(path, method=method, body=body, headers={**ALICE, "Content-Type": "application/json"},
                           expect_errors=True)
    assert response.status_int == 400, response.text
    assert response.json["errno"] == 107
    assert response.json["details"][0]["location"] == "body"


def test_malformed_body_of_anonymous_is_401(app):
    app.post("/articles", b"{", headers={"Content-Type": "application/json"}, status=401)


def test_validation_error_details(app):
    # RELIABILITY S10: schema validation errors are 400 JSON with details.
    response = app.post_json("/articles", {"data": {"title": 42, "status": "x"}}, headers=ALICE, status=400)
    assert response.json == {
        "code": 400, "errno": 107, "error": "Invalid parameters",
        "message": "data.status in body: \"x\" is not an integer",
        "details": [
            {"location": "body", "name": "data.status", "description": "\"x\" is not an integer"},
            {"location": "body", "name": "data.title", "description": "42 is not a string"},
        ],
    }


def test_unknown_top_level_key_and_missing_data(make_app):
    app = make_app([Resource("item", schema={"type": "object", "properties": {"n": {"type": "integer"}},
                                              "required": ["n"]})])
    response = app.post_json("/items", {"other": 1}, headers=ALICE, status=400)
    assert response.json["details"] == [
        {"location": "body", "name": "data", "description": "data is missing"},
        {"location": "body", "name": "other", "description": "other is not allowed"},
    ]
    response = app.post_json("/items", {"data": {}}, headers=ALICE, status=400)
    assert response.json["details"] == [{"location": "body", "name": "data.n", "description": "data.n is missing"}]


# -- cache headers -------------------------------------------------------------------------------------


def test_cache_expires_for_anonymous_only(make_app):
    app = make_app([Resource("page", model="shareable")], page_cache_expires_seconds=60,
                   page_read_principals="system.Everyone", page_create_principals="system.Authenticated")
    record = app.post_json("/pages", {"data": {}}, headers=ALICE).json["data"]
    anonymous = app.get(f"/pages/{record['id']}", status=200)
    assert anonymous.headers["Cache-Control"] == "max-age=60"
    assert RFC1123.fullmatch(anonymous.headers["Expires"])
    listing = app.get("/pages", status=200)
    assert listing.headers["Cache-Control"] == "max-age=60"
    authenticated = app.get(f"/pages/{record['id']}", headers=ALICE)
    assert authenticated.headers["Cache-Control"] == "no-cache"
    assert "Expires" not in authenticated.headers


# -- querystring ----------------------------------------------------------------------------------------


def test_filters_sort_fields(app):
    a = create(app, {"title": "a", "status": 2, "url": "x"})
    b = create(app, {"title": "b", "status": 1, "url": "y"})
    assert app.get("/articles?status=1", headers=ALICE).json["data"] == [b]
    assert app.get("/articles?min_status=2", headers=ALICE).json["data"] == [a]
    assert [r["id"] for r in app.get("/articles?_sort=status", headers=ALICE).json["data"]] == [b["id"], a["id"]]
    partial = app.get("/articles?_fields=title&_sort=title", headers=ALICE).json["data"]
    assert partial == [{"id": a["id"], "last_modified": a["last_modified"], "title": "a"},
                       {"id": b["id"], "last_modified": b["last_modified"], "title": "b"}]
    record = app.get(f"/articles/{a['id']}?_fields=url", headers=ALICE).json["data"]
    assert record == {"id": a["id"], "last_modified": a["last_modified"], "url": "x"}
    response = app.get("/articles?unknown=1", headers=ALICE, status=400)
    assert response.json["details"][0]["location"] == "querystring"
    app.get(f"/articles/{a['id']}?_fields=nope", headers=ALICE, status=400)


def test_total_records_counts_filtered_live_records(app):
    for i in range(5):
        create(app, {"title": str(i), "status": i % 2})
    response = app.get("/articles?status=1&_limit=1", headers=ALICE)
    assert response.headers["Total-Records"] == "2"
    assert len(response.json["data"]) == 1


def test_to_param_alert(app):
    response = app.get("/articles?_to=99999999999999", headers=ALICE)
    assert '"code":"soft-eol"' in response.headers["Alert"]


@pytest.mark.parametrize("query", ["title=%ff", "%ff=1", "_sort=%ff", "_fields=%ff"])
def test_invalid_utf8_querystring_is_400_not_500(app, query):
    response = app.get(f"/articles?{query}", headers=ALICE, status=400)
    assert response.json["details"] == [{"location": "querystring", "name": None,
                                         "description": "Invalid UTF-8 in querystring"}]


@pytest.mark.parametrize("data,name", [
    pytest.param({"title": "a\u0000b"}, "data.title", id="value"),
    pytest.param({"tags": ["ok", "\u0000"]}, "data.tags.1", id="in-list"),
])
def test_nul_characters_are_400_on_every_backend(app, data, name):
    response = app.post_json("/articles", {"data": data}, headers=ALICE, status=400)
    assert response.json["details"] == [{"location": "body", "name": name,
                                         "description": f"{name} contains a NUL character"}]


def test_nul_in_key_of_schemaless_record_is_400(make_app):
    app = make_app([Resource("note")])
    response = app.post_json("/notes", {"data": {"a\u0000": 1}}, headers=ALICE, status=400)
    assert response.json["details"][0]["name"] == "data.a\\u0000"
