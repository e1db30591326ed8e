"""PATCH flavours (merge, merge-patch, JSON-Patch), read-only and unique fields, schema options."""
from __future__ import annotations

import re

import pytest

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.resources import Resource
from cliquet_wsgi.middlewares.resources.patch import json_patch, merge_patch
from tests.middlewares.resources.conftest import as_user, user_id

ALICE = as_user("alice")
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "url": {"type": "string"},
        "device": {"type": "string"},
        "meta": {"type": "object"},
        "tags": {"type": "array"},
    },
}


@pytest.fixture
def app(make_app):
    return make_app([Resource("article", schema=SCHEMA, unique_fields=("url",), readonly_fields=("device",))])


def create(app, **data):
    return app.post_json("/articles", {"data": data}, headers=ALICE, status=201).json["data"]


def patch(app, record_id, body, content_type, status=200):
    import json

    return app.patch(f"/articles/{record_id}", json.dumps(body).encode(),
                     headers={**ALICE, "Content-Type": content_type}, status=status)


# -- merge-patch (RFC 7396) -----------------------------------------------------------------


def test_merge_patch_recursive_and_null_removes(app):
    record = create(app, title="a", meta={"x": 1, "y": {"z": 2}}, url="u")
    response = patch(app, record["id"], {"data": {"meta": {"y": {"z": None, "w": 3}}, "url": None}},
                     "application/merge-patch+json")
    data = response.json["data"]
    assert data["meta"] == {"x": 1, "y": {"w": 3}}
    assert "url" not in data and data["title"] == "a"


def test_plain_json_patch_is_shallow(app):
    record = create(app, meta={"x": 1, "y": 2})
    data = patch(app, record["id"], {"data": {"meta": {"y": 3}}}, "application/json").json["data"]
    assert data["meta"] == {"y": 3}


@pytest.mark.parametrize("target,patch_value,expected", [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
], ids=range(7))
def test_merge_patch_rfc7396_examples(target, patch_value, expected):
    assert merge_patch(target, patch_value) == expected


# -- JSON-Patch (RFC 6902) ---------------------------------------------------------------------


DOC = {"data": {"title": "a", "tags": ["x", "y"], "meta": {"k": 1}}, "permissions": {"read": ["p"]}}


@pytest.mark.parametrize("ops,expected", [
    pytest.param([{"op": "add", "path": "/data/url", "value": "u"}], {"url": "u"}, id="add"),
    pytest.param([{"op": "add", "path": "/data/tags/-", "value": "z"}], {"tags": ["x", "y", "z"]}, id="append"),
    pytest.param([{"op": "add", "path": "/data/tags/0", "value": "w"}], {"tags": ["w", "x", "y"]}, id="insert"),
    pytest.param([{"op": "remove", "path": "/data/title"}], {"title": None}, id="remove"),
    pytest.param([{"op": "replace", "path": "/data/title", "value": "b"}], {"title": "b"}, id="replace"),
    pytest.param([{"op": "move", "from": "/data/title", "path": "/data/url"}], {"title": None, "url": "a"},
                 id="move"),
    pytest.param([{"op": "copy", "from": "/data/meta", "path": "/data/meta2"}], {"meta2": {"k": 1}}, id="copy"),
    pytest.param([{"op": "test", "path": "/data/meta/k", "value": 1.0},
                  {"op": "replace", "path": "/data/meta/k", "value": 2}], {"meta": {"k": 2}}, id="test-ok"),
    pytest.param([{"op": "add", "path": "/data/a~1b~0c", "value": 1}], {"a/b~c": 1}, id="escaped"),
])
def test_json_patch_operations(ops, expected):
    result = json_patch(DOC, ops)
    for key, value in expected.items():
        if value is None:
            assert key not in result["data"]
        else:
            assert result["data"][key] == value
    assert DOC["data"]["tags"] == ["x", "y"]  # the input is never modified


@pytest.mark.parametrize("ops", [
    pytest.param({"op": "add"}, id="not-a-list"),
    pytest.param(["x"], id="not-an-object"),
    pytest.param([{"op": "frobnicate", "path": "/data/a"}], id="unknown-op"),
    pytest.param([{"op": "add", "path": "data/a", "value": 1}], id="relative-pointer"),
    pytest.param([{"op": "add", "path": "/data/a"}], id="missing-value"),
    pytest.param([{"op": "remove", "path": "/data/nope"}], id="remove-missing"),
    pytest.param([{"op": "replace", "path": "/data/nope", "value": 1}], id="replace-missing"),
    pytest.param([{"op": "add", "path": "/data/tags/9", "value": 1}], id="index-out-of-range"),
    pytest.param([{"op": "add", "path": "/data/tags/01", "value": 1}], id="leading-zero"),
    pytest.param([{"op": "test", "path": "/data/title", "value": "zzz"}], id="test-fails"),
    pytest.param([{"op": "test", "path": "/data/meta/k", "value": True}], id="test-bool-vs-int"),
    pytest.param([{"op": "move", "from": "/data/meta", "path": "/data/meta/inner"}], id="move-into-child"),
    pytest.param([{"op": "add", "path": "/data/x~2", "value": 1}], id="bad-escape"),
    pytest.param([{"op": "add", "path": "/data/title/deeper", "value": 1}], id="through-scalar"),
])
def test_json_patch_errors_are_400(ops):
    from cliquet_wsgi.errors import CliquetError

    with pytest.raises(CliquetError) as info:
        json_patch(DOC, ops)
    assert info.value.status == 400 and info.value.errno == 107


def test_json_patch_endpoint(app):
    record = create(app, title="a", tags=["x"])
    ops = [{"op": "add", "path": "/data/tags/-", "value": "y"}, {"op": "remove", "path": "/data/title"}]
    data = patch(app, record["id"], ops, "application/json-patch+json").json["data"]
    assert data["tags"] == ["x", "y"] and "title" not in data
    response = patch(app, record["id"], [{"op": "test", "path": "/data/tags/0", "value": "nope"}],
                     "application/json-patch+json", status=400)
    assert response.json["errno"] == 107
    patch(app, record["id"], [{"op": "add", "path": "/other", "value": 1}], "application/json-patch+json",
          status=400)
    patch(app, record["id"], {"data": {}}, "application/json-patch+json", status=400)


def test_json_patch_permissions_on_shareable(make_app):
    app = make_app([Resource("page", model="shareable")], page_create_principals="system.Authenticated")
    record = app.post_json("/pages", {"data": {"t": 1}}, headers=ALICE).json
    ops = [{"op": "add", "path": "/permissions/read", "value": ["system.Everyone"]},
           {"op": "replace", "path": "/data/t", "value": 2}]
    import json

    response = app.patch(f"/pages/{record['data']['id']}", json.dumps(ops).encode(),
                         headers={**ALICE, "Content-Type": "application/json-patch+json"})
    assert response.json["permissions"] == {"read": ["system.Everyone"], "write": [user_id("alice")]}
    assert response.json["data"]["t"] == 2
    app.get(f"/pages/{record['data']['id']}", status=200)


# -- read-only fields (§10.9, §15 #32) ----------------------------------------------------------


def test_readonly_field_on_patch(app):
    record = create(app, device="phone")
    response = app.patch_json(f"/articles/{record['id']}", {"data": {"device": "laptop"}}, headers=ALICE,
                              status=400)
    assert response.json["details"] == [{"location": "body", "name": "data.device",
                                         "description": "Cannot modify device"}]
    assert response.json["message"] == "data.device in body: Cannot modify device"
    app.patch_json(f"/articles/{record['id']}", {"data": {"device": "phone", "title": "t"}}, headers=ALICE,
                   status=200)
    patch(app, record["id"], {"data": {"device": None}}, "application/merge-patch+json", status=400)


def test_readonly_field_on_put(app):
    record = create(app, device="phone")
    app.put_json(f"/articles/{record['id']}", {"data": {"device": "laptop"}}, headers=ALICE, status=400)
    kept = app.put_json(f"/articles/{record['id']}", {"data": {"title": "x"}}, headers=ALICE).json["data"]
    assert kept["device"] == "phone"


# -- unique fields (§10.10, §15 #3) -------------------------------------------------------------


def test_unique_field_conflicts_are_409(app):
    first = create(app, url="http://a.org")
    response = app.post_json("/articles", {"data": {"url": "http://a.org"}}, headers=ALICE, status=409)
    assert response.json == {
        "code": 409, "errno": 122, "error": "Conflict",
        "message": f"Conflict of field url on record {first['id']}",
        "details": {"field": "url", "existing": first},
    }
    second = create(app, url="http://b.org")
    app.patch_json(f"/articles/{second['id']}", {"data": {"url": "http://a.org"}}, headers=ALICE, status=409)
    app.put_json(f"/articles/{second['id']}", {"data": {"url": "http://a.org"}}, headers=ALICE, status=409)
    # own value and absent values never conflict
    app.put_json(f"/articles/{second['id']}", {"data": {"url": "http://b.org"}}, headers=ALICE, status=200)
    create(app, title="no url")
    create(app, title="no url either")
    # another user's space is another partition
    app.post_json("/articles", {"data": {"url": "http://a.org"}}, headers=as_user("bob"), status=201)


# -- process_record hook and subclassing ----------------------------------------------------------


class Slugged(Resource):
    name = "post"
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "slug": {"type": "string"}}}

    def process_record(self, new, old):
        new = dict(new)
        new["slug"] = new.get("title", "").lower().replace(" ", "-")
        return new


def test_subclass_process_record(make_app):
    app = make_app([Slugged])
    record = app.post_json("/posts", {"data": {"title": "Hello World"}}, headers=ALICE).json["data"]
    assert record["slug"] == "hello-world"
    diff = app.patch_json(f"/posts/{record['id']}", {"data": {"title": "Bye", "slug": "x"}},
                          headers={**ALICE, "Response-Behavior": "diff"}).json["data"]
    assert diff == {"slug": "bye"}


# -- definitions refused at startup ---------------------------------------------------------------


@pytest.mark.parametrize("kwargs,message", [
    pytest.param({"schema": {"type": "nonsense"}}, "invalid JSON schema", id="bad-schema"),
    # RELIABILITY S10: a schema refers to nothing outside itself, and every reference resolves.
    pytest.param({"schema": {"properties": {"a": {"$ref": "http://evil.example/s.json"}}}}, "local $ref",
                 id="remote-ref"),
    pytest.param({"schema": {"properties": {"a": {"$dynamicRef": "http://evil.example/s.json"}}}}, "local $ref",
                 id="remote-dynamic-ref"),
    pytest.param({"schema": {"properties": {"a": {"$ref": "other.json#/x"}}}}, "local $ref", id="relative-ref"),
    pytest.param({"schema": {"properties": {"a": {"$ref": "#/$defs/missing"}}}}, "cannot resolve '#/$defs/missing'",
                 id="unresolvable-pointer"),
    pytest.param({"schema": {"properties": {"a": {"$dynamicRef": "#meta"}}}}, "cannot resolve '#meta'",
                 id="unresolvable-anchor"),
    pytest.param({"schema": {"$defs": {"b": {"$id": "https://schemas.example/b.json",
                                             "properties": {"c": {"$ref": "#/$defs/c"}}}},
                             "properties": {"a": {"$ref": "#/$defs/b"}}}}, "cannot resolve '#/$defs/c'",
                 id="unresolvable-in-embedded-resource"),
    # A loop that never descends into the record: validation would recurse without end.
    pytest.param({"schema": {"$ref": "#"}}, "refers to itself without descending into the record (through '#')",
                 id="ref-to-root"),
    pytest.param({"schema": {"properties": {"a": {"$ref": "#/properties/a"}}}},
                 "(through '#/properties/a')", id="ref-to-itself"),
    pytest.param({"schema": {"$defs": {"x": {"allOf": [{"$ref": "#/$defs/y"}]}, "y": {"not": {"$ref": "#/$defs/x"}}},
                             "properties": {"a": {"$ref": "#/$defs/x"}}}}, "(through '#/$defs/x')",
                 id="loop-through-allof-and-not"),
    pytest.param({"schema": {"$defs": {"x": {"$id": "https://schemas.example/x.json", "anyOf": [{"$ref": "#"}]}},
                             "properties": {"a": {"$ref": "#/$defs/x"}}}}, "(through '#')",
                 id="loop-in-embedded-resource"),
    pytest.param({"schema": {"properties": {"a": {"pattern": "("}}}}, "invalid JSON schema", id="bad-pattern-regex"),
    pytest.param({"model": "group"}, "model must be one of", id="bad-model"),
    pytest.param({"name": "Bad-Name"}, "Resource name", id="bad-name"),
    pytest.param({"id_pattern": "("}, "invalid id_pattern", id="bad-pattern"),
    pytest.param({"collection_path": "/x/{id}"}, "only record_path", id="id-in-collection"),
])
def test_bad_definitions_fail_at_startup(make_registry, kwargs, message):
    from cliquet_wsgi.middlewares.resources import ResourcesMiddleware

    kwargs = dict(kwargs)
    name = kwargs.pop("name", "article")
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        ResourcesMiddleware(lambda e, s: [], registry=make_registry(), resources=[Resource(name, **kwargs)])


def test_shareable_needs_permission_backend():
    from cliquet_wsgi.middlewares.resources import ResourcesMiddleware
    from cliquet_wsgi.registry import Registry
    from cliquet_wsgi.settings import load_settings

    registry = Registry(load_settings({"storage_url": "memory://"}, environ={}))
    with pytest.raises(ConfigurationError, match="permission backend"):
        ResourcesMiddleware(lambda e, s: [], registry=registry, resources=[Resource("page", model="shareable")])
    with pytest.raises(ConfigurationError, match="storage backend"):
        ResourcesMiddleware(lambda e, s: [], registry=Registry(load_settings({}, environ={})),
                            resources=[Resource("page")])


def test_local_refs_and_defs_work(make_app):
    schema = {"$defs": {"name": {"type": "string", "maxLength": 3}},
              "type": "object", "properties": {"n": {"$ref": "#/$defs/name"}}}
    app = make_app([Resource("item", schema=schema)])
    app.post_json("/items", {"data": {"n": "abc"}}, headers=ALICE, status=201)
    response = app.post_json("/items", {"data": {"n": "abcd"}}, headers=ALICE, status=400)
    assert response.json["details"][0]["name"] == "data.n"


def test_recursive_schemas_that_descend_work(make_app):
    # A tree: each level of the record is one level of the schema; the record's depth bounds it.
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "children": {"type": "array", "items": {"$ref": "#"}}}}
    app = make_app([Resource("node", schema=schema)])
    tree = {"name": "root", "children": [{"name": "a", "children": [{"name": "b", "children": []}]}]}
    assert app.post_json("/nodes", {"data": tree}, headers=ALICE, status=201).json["data"]["children"] == tree["children"]
    response = app.post_json("/nodes", {"data": {"children": [{"name": 3}]}}, headers=ALICE, status=400)
    assert response.json["details"][0]["name"] == "data.children.0.name"


def test_schema_references_never_reach_the_network(monkeypatch):
    """RELIABILITY S10: ``$id``/``$schema`` URLs and references resolve inside the schema, offline.

    Schemas come from the developer (code or a file named in the settings), never
    through the API: the "pathological schema at write time" part of S10 does not
    apply. Validation errors are 400 JSON like any other.
    """
    import socket
    import urllib.request

    import webtest

    from cliquet_wsgi.middlewares.resources import ResourcesMiddleware
    from cliquet_wsgi.registry import Registry
    from cliquet_wsgi.settings import load_settings
    from tests.middlewares.resources.conftest import HeaderUser, fallback_app

    def no_network(*args, **kwargs):
        raise AssertionError("a schema reference was fetched")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://schemas.example/bookmark.json",
        "type": "object",
        "properties": {"url": {"$ref": "#/$defs/url"}, "tags": {"$ref": "#/$defs/tags"}},
        "$defs": {"url": {"type": "string", "maxLength": 20}, "tags": {"type": "array", "items": {"type": "string"}}},
    }
    registry = Registry(load_settings({"storage_url": "memory://"}, environ={}))
    app = webtest.TestApp(HeaderUser(ResourcesMiddleware(fallback_app, registry=registry,
                                                         resources=[Resource("bookmark", schema=schema)])))
    created = app.post_json("/bookmarks", {"data": {"url": "https://a.org", "tags": ["x"]}}, headers=ALICE, status=201)
    assert {k: created.json["data"][k] for k in ("url", "tags")} == {"url": "https://a.org", "tags": ["x"]}
    response = app.post_json("/bookmarks", {"data": {"url": "https://a.org/" + "x" * 20, "tags": [1]}},
                             headers=ALICE, status=400)
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert response.json == {
        "code": 400, "errno": 107, "error": "Invalid parameters",
        "message": "data.tags.0 in body: 1 is not a string",
        "details": [
            {"location": "body", "name": "data.tags.0", "description": "1 is not a string"},
            {"location": "body", "name": "data.url", "description": f"'https://a.org/{'x' * 20}' is too long"},
        ],
    }
