"""If-Match / If-None-Match (PROTOCOL §10.4 table, §15 #6 #7), on every backend."""
from __future__ import annotations

import pytest

from cliquet_wsgi.middlewares.resources import Resource
from cliquet_wsgi.middlewares.resources.preconditions import parse
from tests.middlewares.resources.conftest import as_user

ALICE = as_user("alice")
NEW_ID = "1" * 8 + "-1111-4111-8111-" + "1" * 12


@pytest.fixture
def app(make_app):
    return make_app([Resource("article")])


def create(app, **data):
    return app.post_json("/articles", {"data": data}, headers=ALICE, status=201).json["data"]


def etag(value):
    return f'"{value}"'


def assert_412(response, current, existing):
    assert response.status_int == 412
    assert response.json == {"code": 412, "errno": 114, "error": "Precondition Failed",
                             "message": "Resource was modified meanwhile", "details": {"existing": existing}
                             if existing is not None else {}}
    assert response.headers["ETag"] == etag(current)
    assert response.headers["Last-Modified"]


# -- header syntax ------------------------------------------------------------------------


@pytest.mark.parametrize("header,value", [
    ("If-Match", "123"), ("If-Match", ""), ("If-Match", '"abc"'), ("If-Match", '"*"'), ("If-Match", 'W/"1"'),
    ("If-Match", "*"), ("If-None-Match", "12"), ("If-None-Match", '"1.5"'), ("If-None-Match", 'W/"1"'),
])
def test_malformed_headers_are_400(app, header, value):
    response = app.get("/articles", headers={**ALICE, header: value}, status=400)
    description = ("Invalid value for If-Match. The value should be integer between double quotes."
                   if header == "If-Match" else "Invalid value for If-None-Match")
    assert response.json["details"] == [{"location": "headers", "name": None, "description": description}]
    assert response.json["message"] == f"headers: {description}"


def test_strict_mode_accepts_if_match_star():
    assert parse("*", None, strict=True).if_match == "*"
    assert parse('"5"', "*", strict=False).if_none_match == "*"


# -- GET ------------------------------------------------------------------------------------


def test_collection_304_and_200(app):
    record = create(app, title="a")
    ts = record["last_modified"]
    response = app.get("/articles", headers={**ALICE, "If-None-Match": etag(ts)}, status=304)
    assert response.body == b""
    assert response.headers["ETag"] == etag(ts)
    assert "Content-Type" not in response.headers
    app.get("/articles", headers={**ALICE, "If-None-Match": etag(ts + 1)}, status=304)
    app.get("/articles", headers={**ALICE, "If-None-Match": etag(ts - 1)}, status=200)
    # INM * is ignored on collections.
    app.get("/articles", headers={**ALICE, "If-None-Match": "*"}, status=200)


def test_collection_if_match(app):
    record = create(app, title="a")
    ts = record["last_modified"]
    app.get("/articles", headers={**ALICE, "If-Match": etag(ts)}, status=200)
    response = app.get("/articles", headers={**ALICE, "If-Match": etag(ts - 1)}, expect_errors=True)
    assert_412(response, ts, None)


def test_record_get(app):
    record = create(app, title="a")
    ts = record["last_modified"]
    url = f"/articles/{record['id']}"
    app.get(url, headers={**ALICE, "If-None-Match": etag(ts)}, status=304)
    app.get(url, headers={**ALICE, "If-None-Match": etag(ts - 1)}, status=200)
    assert_412(app.get(url, headers={**ALICE, "If-Match": etag(ts - 1)}, expect_errors=True), ts, record)
    app.get(url, headers={**ALICE, "If-Match": etag(ts)}, status=200)
    assert_412(app.get(url, headers={**ALICE, "If-None-Match": "*"}, expect_errors=True), ts, record)


def test_404_before_preconditions(app):
    for method in ("GET", "PATCH", "DELETE"):
        response = app.request(f"/articles/{NEW_ID}", method=method, body=b'{"data": {}}',
                               headers={**ALICE, "If-None-Match": "*", "If-Match": '"1"',
                                        "Content-Type": "application/json"}, expect_errors=True)
        assert response.status_int == 404, method


# -- writes -----------------------------------------------------------------------------------


def test_post(app):
    record = create(app, title="a")
    ts = record["last_modified"]
    # vs the existing record when data.id is live
    response = app.post_json("/articles", {"data": {"id": record["id"]}},
                             headers={**ALICE, "If-Match": etag(ts - 1)}, expect_errors=True)
    assert_412(response, ts, record)
    response = app.post_json("/articles", {"data": {"id": record["id"]}},
                             headers={**ALICE, "If-None-Match": "*"}, expect_errors=True)
    assert_412(response, ts, record)
    # vs the collection otherwise
    response = app.post_json("/articles", {"data": {}}, headers={**ALICE, "If-Match": etag(ts - 1)},
                             expect_errors=True)
    assert_412(response, ts, None)
    app.post_json("/articles", {"data": {}}, headers={**ALICE, "If-Match": etag(ts)}, status=201)
    app.post_json("/articles", {"data": {}}, headers={**ALICE, "If-None-Match": "*"}, status=201)


def test_put(app):
    # Never-existing id: If-Match not evaluated in order mode (201).
    created = app.put_json(f"/articles/{NEW_ID}", {"data": {"a": 1}}, headers={**ALICE, "If-Match": '"1"'},
                           status=201).json["data"]
    ts = created["last_modified"]
    url = f"/articles/{NEW_ID}"
    assert_412(app.put_json(url, {"data": {}}, headers={**ALICE, "If-Match": etag(ts - 1)}, expect_errors=True),
               ts, created)
    assert_412(app.put_json(url, {"data": {}}, headers={**ALICE, "If-None-Match": "*"}, expect_errors=True),
               ts, created)
    app.put_json(url, {"data": {"a": 2}}, headers={**ALICE, "If-Match": etag(ts)}, status=200)
    # Tombstone: compared with the tombstone's timestamp.
    tombstone = app.delete(url, headers=ALICE).json["data"]
    response = app.put_json(url, {"data": {}}, headers={**ALICE, "If-Match": etag(tombstone["last_modified"] - 1)},
                            expect_errors=True)
    assert response.status_int == 412
    app.put_json(url, {"data": {}}, headers={**ALICE, "If-None-Match": "*"}, status=201)


def test_patch_and_delete(app):
    record = create(app, title="a")
    ts = record["last_modified"]
    url = f"/articles/{record['id']}"
    for method in ("PATCH", "DELETE"):
        for header, value in (("If-Match", etag(ts - 1)), ("If-None-Match", "*")):
            response = app.request(url, method=method, body=b'{"data": {"title": "b"}}',
                                   headers={**ALICE, header: value, "Content-Type": "application/json"},
                                   expect_errors=True)
            assert_412(response, ts, record)
    patched = app.patch_json(url, {"data": {"title": "b"}}, headers={**ALICE, "If-Match": etag(ts)}).json["data"]
    # If-None-Match with a value is ignored on writes.
    app.delete(url, headers={**ALICE, "If-Match": etag(patched["last_modified"]), "If-None-Match": '"1"'},
               status=200)


def test_delete_collection(app):
    record = create(app, title="a")
    ts = record["last_modified"]
    assert_412(app.delete("/articles", headers={**ALICE, "If-Match": etag(ts - 1)}, expect_errors=True), ts, None)
    assert len(app.delete("/articles", headers={**ALICE, "If-Match": etag(ts)}).json["data"]) == 1


def test_412_before_querystring_errors(app):
    record = create(app, title="a")
    response = app.get("/articles?_limit=abc", headers={**ALICE, "If-Match": etag(record["last_modified"] - 1)},
                       expect_errors=True)
    assert response.status_int == 412


# -- strict mode (§15 #7) -----------------------------------------------------------------------


def test_strict_preconditions(make_app):
    app = make_app([Resource("article")], strict_preconditions=True)
    record = create(app, title="a")
    ts = record["last_modified"]
    url = f"/articles/{record['id']}"
    # Equality: a *newer* ETag is also a mismatch.
    assert app.get(url, headers={**ALICE, "If-Match": etag(ts + 1)}, expect_errors=True).status_int == 412
    app.get(url, headers={**ALICE, "If-None-Match": etag(ts + 1)}, status=200)
    app.get(url, headers={**ALICE, "If-None-Match": etag(ts)}, status=304)
    app.get(url, headers={**ALICE, "If-Match": "*"}, status=200)
    # If-Match on a never-existing id fails.
    response = app.put_json(f"/articles/{NEW_ID}", {"data": {}}, headers={**ALICE, "If-Match": '"1"'},
                            expect_errors=True)
    assert response.status_int == 412
    assert response.json["details"] == {}


def test_strict_if_none_match_value_on_writes(make_app):
    app = make_app([Resource("article")], strict_preconditions=True)
    record = create(app, title="a")
    ts = record["last_modified"]
    url = f"/articles/{record['id']}"
    response = app.patch_json(url, {"data": {"title": "b"}}, headers={**ALICE, "If-None-Match": etag(ts)},
                              expect_errors=True)
    assert_412(response, ts, record)
    app.patch_json(url, {"data": {"title": "b"}}, headers={**ALICE, "If-None-Match": etag(ts - 1)}, status=200)
    response = app.put_json(f"/articles/{NEW_ID}", {"data": {}}, headers={**ALICE, "If-Match": '"1"'},
                            expect_errors=True)
    assert "ETag" not in response.headers
