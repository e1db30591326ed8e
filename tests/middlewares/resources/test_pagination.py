"""Pagination through Next-Page (PROTOCOL §10.5, §15 #17 #18, RELIABILITY I9, L2)."""
from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl, urlsplit

import pytest

from cliquet_wsgi.middlewares.resources import Resource
from tests.middlewares.resources.conftest import as_user

ALICE = as_user("alice")


@pytest.fixture
def app(make_app):
    return make_app([Resource("item")])


def fill(app, count, headers=ALICE):
    return [app.post_json("/items", {"data": {"n": i, "parity": i % 2}}, headers=headers).json["data"]
            for i in range(count)]


def walk(app, url, headers=ALICE, during=None):
    """Follow Next-Page; return the pages."""
    pages = []
    while url:
        response = app.get(url, headers=headers)
        pages.append(response.json["data"])
        if during is not None:
            during()
        next_page = response.headers.get("Next-Page")
        if next_page:
            parts = urlsplit(next_page)
            assert (parts.scheme, parts.netloc) == ("http", "api.test")
            url = parts.path + "?" + parts.query
        else:
            url = None
    return pages


def test_walk_returns_every_record_once(app):
    records = fill(app, 7)
    pages = walk(app, "/items?_limit=3")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r["id"] for page in pages for r in page] == [r["id"] for r in reversed(records)]


def test_next_page_url_keeps_params_and_token_format(app):
    fill(app, 3)
    response = app.get("/items?parity=0&_sort=n&_limit=1", headers=ALICE)
    assert response.headers["Total-Records"] == "2"
    parts = urlsplit(response.headers["Next-Page"])
    assert parts.path == "/items"
    params = parse_qsl(parts.query)
    assert [k for k, _ in params] == ["parity", "_sort", "_limit", "_token"]
    token = json.loads(base64.urlsafe_b64decode(dict(params)["_token"]))
    assert token["offset"] == 1
    assert token["last_record"]["n"] == 0


def test_no_next_page_when_page_is_exactly_the_rest(app):
    fill(app, 4)
    response = app.get("/items?_limit=4", headers=ALICE)
    assert "Next-Page" not in response.headers
    assert len(response.json["data"]) == 4


def test_paginate_by_and_max_fetch_size(make_app):
    app = make_app([Resource("item")], paginate_by=2, storage_max_fetch_size=3)
    fill(app, 5)
    assert [len(p) for p in walk(app, "/items")] == [2, 2, 1]
    # _limit above the maximum is capped, and Next-Page still appears (§15 #17).
    pages = walk(app, "/items?_limit=50")
    assert [len(p) for p in pages] == [2, 2, 1]


def test_max_fetch_size_cap_still_pages(make_app):
    app = make_app([Resource("item")], storage_max_fetch_size=2)
    fill(app, 5)
    pages = walk(app, "/items")
    assert [len(p) for p in pages] == [2, 2, 1]
    assert len({r["id"] for page in pages for r in page}) == 5


def test_walk_while_inserting_misses_nothing(app):
    initial = fill(app, 10)
    start_etag = app.get("/items", headers=ALICE).headers["ETag"].strip('"')
    inserted = []

    def insert():
        inserted.append(app.post_json("/items", {"data": {"n": 100 + len(inserted)}}, headers=ALICE).json["data"])

    pages = walk(app, "/items?_limit=3", during=insert)
    seen = [r["id"] for page in pages for r in page]
    assert len(seen) == len(set(seen))
    assert set(seen) == {r["id"] for r in initial}
    # A final _since pass picks up what was written meanwhile, once.
    since = walk(app, f"/items?_since={start_etag}&_limit=4")
    later = [r["id"] for page in since for r in page]
    assert sorted(later) == sorted(r["id"] for r in inserted)
    assert set(seen) | set(later) == {r["id"] for r in initial + inserted}


def test_walk_with_sort_on_field_and_ties(app):
    fill(app, 9)
    pages = walk(app, "/items?_sort=parity,n&_limit=2")
    values = [(r["parity"], r["n"]) for page in pages for r in page]
    assert values == sorted(values)
    assert len(values) == 9


@pytest.mark.parametrize("token", [
    pytest.param("abc", id="garbage"),
    pytest.param(base64.urlsafe_b64encode(b"[]").decode(), id="not-object"),
    pytest.param(base64.urlsafe_b64encode(b'{"last_record": {}, "offset": 1}').decode(), id="no-scope"),
    pytest.param(base64.urlsafe_b64encode(b'{"offset": 1}').decode(), id="missing-key"),
])
def test_bad_tokens_are_400(app, token):
    response = app.get(f"/items?_token={token}", headers=ALICE, status=400)
    assert response.json["details"] == [{"location": "querystring", "name": None,
                                         "description": "_token has invalid content"}]


def test_token_replayed_elsewhere_is_400(make_app):
    app = make_app([Resource("item"), Resource("note")])
    fill(app, 3)
    next_page = app.get("/items?_limit=1", headers=ALICE).headers["Next-Page"]
    query = urlsplit(next_page).query
    app.get(f"/notes?{query}", headers=ALICE, status=400)
    # Another user's partition, or other filters: refused too.
    app.get(f"/items?{query}", headers=as_user("bob"), status=400)
    app.get(f"/items?{query}&parity=1", headers=ALICE, status=400)


def test_next_page_uses_configured_host(make_app):
    # RELIABILITY S8 for Next-Page (whole stack and /batch: test_stack.py).
    app = make_app([Resource("item")], http_host="public.example", http_scheme="https")
    fill(app, 2)
    response = app.get("/items?_limit=1", headers={**ALICE, "Host": "evil.example"})
    assert response.headers["Next-Page"].startswith("https://public.example/items?_limit=1&_token=")


@pytest.mark.parametrize(
    "host, origin",
    [
        pytest.param("api.example:8443", "http://api.example:8443", id="well-formed-host-kept"),
        pytest.param("evil.example/x?", "http://localhost", id="path-in-host"),
        pytest.param("user@evil.example", "http://localhost", id="userinfo-in-host"),
        pytest.param("evil example", "http://localhost", id="space-in-host"),
    ],
)
def test_next_page_without_http_host_never_carries_a_forged_host(make_app, host, origin):
    # The same rule as the version layer's redirects (cliquet_wsgi.urls).
    app = make_app([Resource("item")])
    fill(app, 2)
    response = app.get("/items?_limit=1", headers={**ALICE, "Host": host})
    assert response.headers["Next-Page"].startswith(f"{origin}/items?_limit=1&_token=")


def test_shareable_listing_paginates_over_readable_records(make_app):
    app = make_app([Resource("page", model="shareable")], page_create_principals="system.Authenticated")
    owner = as_user("owner")
    readable = []
    for i in range(5):
        perms = {"read": ["system.Everyone"]} if i % 2 == 0 else {}
        record = app.post_json("/pages", {"data": {"i": i}, "permissions": perms}, headers=owner).json["data"]
        if i % 2 == 0:
            readable.append(record["id"])
    pages = walk(app, "/pages?_limit=2", headers={})
    assert sorted(r["id"] for page in pages for r in page) == sorted(readable)


def test_pages_concatenate_to_the_full_listing(app):
    """Property (RELIABILITY L2/I9): for any sort and limit, pages = the unpaginated list, no duplicates."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = [None, 0, 1, 1, 2, "a", "b", True, False, 2.5]
    for i in range(14):
        data = {"s": "abc"[i % 3]}
        if i % 4:
            data["n"] = values[i % len(values)]
        app.post_json("/items", {"data": data}, headers=ALICE)
    app.delete(f"/items/{app.get('/items?_limit=1', headers=ALICE).json['data'][0]['id']}", headers=ALICE)

    sorts = st.lists(st.sampled_from(["n", "-n", "s", "-s", "last_modified", "-last_modified", "id"]),
                     min_size=0, max_size=3, unique=True)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(sort=sorts, limit=st.integers(min_value=1, max_value=5), since=st.booleans())
    def check(sort, limit, since):
        query = "&".join(filter(None, [f"_sort={','.join(sort)}" if sort else "", "_since=0" if since else ""]))
        full = app.get(f"/items?{query}", headers=ALICE).json["data"]
        pages = walk(app, f"/items?{query}&_limit={limit}")
        flat = [r["id"] for page in pages for r in page]
        assert flat == [r["id"] for r in full]
        assert all(len(page) <= limit for page in pages)

    check()
