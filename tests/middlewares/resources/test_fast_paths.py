"""The shortcuts taken for speed give the same results as the general code they bypass."""
from __future__ import annotations

import io
import uuid

import pytest

from cliquet_wsgi.errors import CliquetError
from cliquet_wsgi.middlewares.resources import Resource, codecs, schema
from cliquet_wsgi.middlewares.resources import definition
from cliquet_wsgi.middlewares.resources.definition import CompiledResource
from cliquet_wsgi.middlewares.resources.middleware import query_params
from cliquet_wsgi.middlewares.resources.routing import Router
from tests.middlewares.resources.conftest import as_user


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"a": 1, "b": "x", "c": None, "d": 1.5, "e": True}, id="flat-clean"),
        pytest.param({"a": [{"b": ["ok", {"c": "x\u0000"}]}]}, id="deep-value"),
        pytest.param({"a": {"k\u0000": 1}}, id="nested-key"),
        pytest.param({"\u0000": 1}, id="top-key"),
        pytest.param({"a": ["\u0000"], "b": "\u0000"}, id="several"),
        pytest.param({"a": [[], {}, [1, [2, ["y"]]]]}, id="nested-clean"),
    ],
)
def test_has_nul_agrees_with_nul_path(value):
    assert schema._has_nul(value) is (schema.nul_path(value) is not None)


def test_clean_record_copies_nested_values():
    resource = CompiledResource(Resource("note"), default_id_generator="uuid4")
    data = {"id": "x", "last_modified": 1, "tags": ["a", {"b": [1]}], "title": "t"}
    record = schema.clean_record(resource, data, apply_defaults=True)
    data["tags"][1]["b"].append(2)
    data["tags"].append("c")
    assert record == {"tags": ["a", {"b": [1]}], "title": "t"}


def test_router_returns_a_fresh_slots_dict_for_a_remembered_path():
    resource = CompiledResource(Resource("note"), default_id_generator="uuid4")
    router = Router([resource])
    first = router.match("/notes/abc")
    first.slots["id"] = "changed"
    second = router.match("/notes/abc")
    assert (second.endpoint, second.slots, second.pattern) == ("record", {"id": "abc"}, "/notes/{id}")
    assert second.resource is resource
    collection = router.match("/notes")
    assert (collection.endpoint, collection.slots, collection.pattern) == ("collection", {}, "/notes")
    assert router.match("/nope") is None and router.match("/nope") is None


@pytest.mark.parametrize(
    ("content_type", "patch"),
    [
        pytest.param("text/plain", False, id="unsupported"),
        pytest.param("application/json; charset=latin-1", False, id="charset"),
        pytest.param("application/merge-patch+json", False, id="patch-type-on-post"),
    ],
)
def test_cached_body_kind_raises_every_time(content_type, patch):
    for _ in range(2):
        with pytest.raises(CliquetError) as info:
            codecs.body_kind(content_type, patch=patch)
        assert info.value.status == 415


def test_cached_negotiation_raises_every_time_and_answers_consistently():
    for _ in range(2):
        with pytest.raises(CliquetError) as info:
            codecs.negotiate_response_type("text/html")
        assert info.value.status == 406
        assert codecs.negotiate_response_type("application/msgpack, */*") == codecs.MSGPACK
        assert codecs.body_kind("application/json; charset=UTF-8") == codecs.JSON


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("a=1&b=%C3%A9&a=2&c", [("a", "1"), ("b", "é"), ("a", "2"), ("c", "")], id="webob-decoding"),
        pytest.param("x=a+b", [("x", "a b")], id="plus-is-space"),
    ],
)
def test_query_params(query, expected):
    environ = {"QUERY_STRING": query, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(b"")}
    assert query_params(environ) == expected
    if not query:
        del environ["QUERY_STRING"]
        assert query_params(environ) == []


def test_refused_listing_keeps_the_timestamp_it_showed(make_app):
    # The listing's reads share one read transaction; a 412 (or 400) raised in
    # it must not roll back the timestamp a first read persisted.
    app = make_app([Resource("note")])
    alice = as_user("alice")
    refused = app.get("/notes", headers={**alice, "If-Match": '"1"'}, status=412)
    app.get("/notes?_limit=nope", headers=alice, status=400)
    listed = app.get("/notes", headers=alice)
    assert listed.headers["ETag"] == refused.headers["ETag"]
    assert listed.json == {"data": []}


@pytest.mark.parametrize("raw", [bytes(16), b"\xff" * 16, bytes(range(16)), bytes(range(240, 256))])
def test_uuid4_generator_formats_like_the_uuid_module(raw, monkeypatch):
    monkeypatch.setattr(definition.os, "urandom", lambda n: raw[:n])
    assert definition.uuid4_generator() == str(uuid.UUID(bytes=raw, version=4))


def test_uuid4_generator_makes_distinct_version_4_ids():
    ids = {definition.uuid4_generator() for _ in range(1000)}
    assert len(ids) == 1000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


def test_batch_sub_request_body_and_response_value_are_handed_over(tmp_path):
    """Inside a batch, the resources layer takes the parsed body and leaves its response value."""
    import io

    from cliquet_wsgi import environ as keys
    from cliquet_wsgi.middlewares.resources import Resource, ResourcesMiddleware
    from cliquet_wsgi.registry import Registry
    from cliquet_wsgi.settings import load_settings

    registry = Registry(load_settings({"storage_url": "memory://"}, environ={}))
    app = ResourcesMiddleware(lambda e, s: [], registry=registry, resources=[Resource("note")])
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/notes", "SCRIPT_NAME": "/v1", "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json; charset=utf-8", "CONTENT_LENGTH": "9",
        "wsgi.input": io.BytesIO(b"not json!"), "SERVER_NAME": "localhost", "SERVER_PORT": "80",
        "wsgi.url_scheme": "http", keys.USER_ID: "basicauth:alice",
        keys.PRINCIPALS: ["system.Everyone", "system.Authenticated", "basicauth:alice"],
        keys.BATCH: {"size": 1}, keys.PARSED_BODY: {"data": {"title": "handed over"}},
    }
    statuses = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["201 Created"]
    created = environ[keys.RESPONSE_DATA]
    assert created["data"]["title"] == "handed over"
    import json

    assert json.loads(body) == created
