"""Declaring resources: objects, dotted paths, paste.ini settings, nested paths, wrap()."""
from __future__ import annotations

import json

import pytest
import webtest

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.resources import Resource, ResourcesMiddleware, filter_factory
from tests.middlewares.resources.conftest import HeaderUser, as_user, fallback_app, user_id

ALICE = as_user("alice")


class Article(Resource):
    """Used by dotted path below."""

    name = "article"
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "additionalProperties": False}


def test_paste_filter_factory_with_declarative_settings(tmp_path):
    schema_path = tmp_path / "device.json"
    schema_path.write_text(json.dumps({"type": "object", "properties": {
        "url": {"type": "string"}, "device": {"type": "string"}}, "additionalProperties": False}))
    factory = filter_factory(
        {"__file__": str(tmp_path / "app.ini")},
        registry_name=f"resources-test-{tmp_path.name}",
        storage_url="memory://",
        permission_url="memory://",
        resources=f"{__name__}.Article device",
        **{
            "resource.device.schema": str(schema_path),
            "resource.device.unique_fields": "url",
            "resource.device.readonly_fields": "device",
            "resource.device.model": "shareable",
            "device_create_principals": "system.Authenticated",
            "readonly": "false",
        },
    )
    middleware = factory(fallback_app)
    assert isinstance(middleware, ResourcesMiddleware)
    app = webtest.TestApp(HeaderUser(middleware))
    created = app.post_json("/devices", {"data": {"url": "u", "device": "d", "extra": 1}}, headers=ALICE,
                            status=201).json
    assert created["data"]["url"] == "u" and "extra" not in created["data"]
    assert created["permissions"] == {"write": [user_id("alice")]}
    app.post_json("/devices", {"data": {"url": "u"}}, headers=ALICE, status=409)
    app.patch_json(f"/devices/{created['data']['id']}", {"data": {"device": "x"}}, headers=ALICE, status=400)
    assert app.post_json("/articles", {"data": {"title": "t"}}, headers=ALICE, status=201)
    app.post_json("/articles", {"data": {"title": 1}}, headers=ALICE, status=400)


@pytest.mark.parametrize("settings,message", [
    pytest.param({"resources": "no.such.module.Thing"}, "cannot import", id="bad-dotted-path"),
    pytest.param({"resources": "cliquet_wsgi.errors.ERRORS"}, "is not a Resource", id="not-a-resource"),
    pytest.param({"resources": "article", "resource.article.schema": "/nonexistent.json"}, "cannot load",
                 id="missing-schema-file"),
    pytest.param({"resources": "article", "resource.article.colour": "red"}, "Unknown setting", id="unknown-option"),
    pytest.param({"resources": ""}, "no resource", id="none"),
])
def test_bad_settings_fail_at_startup(tmp_path, settings, message):
    factory = filter_factory({}, registry_name=f"bad-{tmp_path.name}", storage_url="memory://", **settings)
    with pytest.raises(ConfigurationError, match=message):
        factory(fallback_app)


def test_two_resources_with_one_name_refused(make_registry):
    with pytest.raises(ConfigurationError, match="defined twice"):
        ResourcesMiddleware(fallback_app, registry=make_registry(), resources=[Resource("a"), Resource("a")])


# -- nested resources ----------------------------------------------------------------------


@pytest.fixture
def nested(make_app):
    return make_app(
        [Resource("record", parent="/buckets/{bucket_id}/collections/{collection_id}", model="shareable")],
        record_create_principals="system.Authenticated",
    )


def test_nested_paths_partition_by_parent(nested):
    readable = {"read": [user_id("alice")]}
    one = nested.post_json("/buckets/b1/collections/c1/records", {"data": {"x": 1}, "permissions": readable},
                           headers=ALICE, status=201).json["data"]
    nested.post_json("/buckets/b1/collections/c2/records", {"data": {"x": 2}}, headers=ALICE, status=201)
    listed = nested.get("/buckets/b1/collections/c1/records", headers=ALICE).json["data"]
    assert [r["id"] for r in listed] == [one["id"]]
    nested.get(f"/buckets/b1/collections/c2/records/{one['id']}", headers=ALICE, status=403)
    # The ACL object ids are the nested paths; the partition is the parent path.
    assert nested.registry.permission.object_permissions(f"/buckets/b1/collections/c1/records/{one['id']}") == {
        "read": {user_id("alice")}, "write": {user_id("alice")}}
    stored, _ = nested.registry.storage.get_all("record", "/buckets/b1/collections/c1")
    assert [r["id"] for r in stored] == [one["id"]]


def test_nested_route_name_and_invalid_parent(nested):
    response = nested.get("/buckets/b%20x/collections/c1/records", headers=ALICE, status=400)
    assert response.json["details"] == [{"location": "path", "name": None, "description": "Invalid bucket_id"}]
    assert nested.registry.endpoint_methods("/buckets/b/collections/c/records") == [
        "GET", "HEAD", "POST", "DELETE", "OPTIONS"]
    nested.get("/buckets/b/records", headers=ALICE, status=404)


def test_nested_user_resource_is_per_user_and_per_parent(make_app):
    app = make_app([Resource("task", parent="/lists/{list_id}")])
    mine = app.post_json("/lists/l1/tasks", {"data": {}}, headers=ALICE).json["data"]
    assert app.get("/lists/l1/tasks", headers=as_user("bob")).json["data"] == []
    assert app.get("/lists/l2/tasks", headers=ALICE).json["data"] == []
    assert app.get(f"/lists/l1/tasks/{mine['id']}", headers=ALICE).json["data"] == mine


def test_custom_paths(make_app):
    app = make_app([Resource("entry", collection_path="/journal", record_path="/journal/{id}")])
    created = app.post_json("/journal", {"data": {}}, headers=ALICE, status=201).json["data"]
    app.get(f"/journal/{created['id']}", headers=ALICE, status=200)
    app.get("/entrys", headers=ALICE, status=404)


# -- the whole stack -------------------------------------------------------------------------------


def test_log_context_is_filled(make_app):
    captured = {}

    def around(inner):
        def app(environ, start_response):
            environ["cliquet.log_context"] = captured
            return inner(environ, start_response)
        return app

    app = make_app([Resource("item")], around=around)
    app.post_json("/items", {"data": {}}, headers=ALICE)
    app.get("/items?_limit=5", headers=ALICE)
    assert captured["collection_id"] == "item"
    assert captured["nb_records"] == 1 and captured["limit"] == 5
    assert isinstance(captured["collection_timestamp"], int)


def test_backend_error_is_503_with_retry_after(make_app, monkeypatch):
    from cliquet_wsgi.errors import BackendError

    app = make_app([Resource("item")], retry_after_seconds=7)

    def down(*args, **kwargs):
        raise BackendError(message="down")

    monkeypatch.setattr(app.registry.storage, "get_all", down)
    response = app.get("/items", headers=ALICE, status=503)
    assert response.headers["Retry-After"] == "7"
    assert response.json["errno"] == 201


def test_shareable_on_one_sqlite_file_writes_records_and_aces_together(tmp_path):
    """Storage and permission on one SQLite file share the thread's connection and transaction."""
    import webtest

    from cliquet_wsgi import environ as keys
    from cliquet_wsgi.registry import Registry
    from cliquet_wsgi.settings import load_settings

    url = f"sqlite:///{tmp_path}/one.sqlite"
    registry = Registry(load_settings({"storage_url": url, "permission_url": url,
                                       "page_create_principals": "system.Authenticated"}, environ={}))
    inner = ResourcesMiddleware(fallback_app, registry=registry, resources=[Resource("page", model="shareable")])

    def authenticated(environ, start_response):
        environ[keys.USER_ID] = "basicauth:alice"
        environ[keys.PRINCIPALS] = ["system.Everyone", "system.Authenticated", "basicauth:alice"]
        return inner(environ, start_response)

    app = webtest.TestApp(authenticated)
    created = app.post_json("/pages", {"data": {"title": "one file"}}, status=201).json
    assert created["permissions"] == {"write": ["basicauth:alice"]}
    assert registry.permission.object_permissions(f"/pages/{created['data']['id']}") == {
        "write": {"basicauth:alice"}}


def counter_id() -> str:
    counter_id.count = getattr(counter_id, "count", 0) + 1
    return f"n{counter_id.count}"


class Numbered(Resource):
    name = "numbered"
    id_generator = counter_id


def test_id_generators_from_setting_and_subclass(make_app):
    app = make_app([Resource("item"), Numbered], id_generator=f"{__name__}.counter_id")
    first = app.post_json("/items", {"data": {}}, headers=ALICE, status=201).json["data"]["id"]
    second = app.post_json("/numbereds", {"data": {}}, headers=ALICE, status=201).json["data"]["id"]
    assert first.startswith("n") and second.startswith("n") and first != second
    # Generic generators accept generic ids.
    app.put_json("/items/any_Id-1", {"data": {}}, headers=ALICE, status=201)


def test_bad_id_generator_setting(make_registry):
    with pytest.raises(ConfigurationError, match="id_generator"):
        ResourcesMiddleware(fallback_app, registry=make_registry(), resources=[Resource("a")],
                            id_generator="no.such.generator")
