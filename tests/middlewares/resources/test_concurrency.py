"""Concurrent writes (RELIABILITY C1, C3, C4) with real threads, on every backend."""
from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from webob import Request

from cliquet_wsgi.middlewares.resources import Resource
from tests.middlewares.resources.conftest import as_user

ALICE = as_user("alice")
THREADS = 20
ROUNDS = 5

pytestmark = pytest.mark.concurrency


def call(wsgi_app, method, path, body=None, headers=None):
    request = Request.blank(path, method=method, headers={**ALICE, **(headers or {})})
    request.environ["HTTP_HOST"] = "api.test"
    if body is not None:
        request.body = json.dumps(body).encode()
        request.content_type = "application/json"
    response = request.get_response(wsgi_app)
    return response.status_int, response.json_body if response.body else None


@pytest.fixture
def app(make_app):
    return make_app([Resource("article")], storage_pool_size=THREADS + 2)


def run_together(count, action):
    barrier = threading.Barrier(count)

    def worker(index):
        barrier.wait(timeout=30)
        return action(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(worker, range(count)))


def test_c1_same_if_match_only_one_wins(app):
    wsgi = app.app
    status, body = call(wsgi, "POST", "/articles", {"data": {"title": "start"}})
    record = body["data"]
    url = f"/articles/{record['id']}"
    for round_number in range(ROUNDS):
        current = call(wsgi, "GET", url)[1]["data"]
        etag = f'"{current["last_modified"]}"'

        def patch(index):
            return call(wsgi, "PATCH", url, {"data": {"title": f"r{round_number}-t{index}"}}, {"If-Match": etag})

        results = run_together(THREADS, patch)
        statuses = sorted(status for status, _ in results)
        assert statuses == [200] + [412] * (THREADS - 1), statuses
        winner = next(body for status, body in results if status == 200)["data"]
        stored = call(wsgi, "GET", url)[1]["data"]
        assert stored == winner
        assert stored["last_modified"] > current["last_modified"]
        for status, body in results:
            if status == 412:
                assert body["errno"] == 114


def test_c3_put_if_none_match_star_creates_once(app):
    wsgi = app.app
    for round_number in range(ROUNDS):
        record_id = f"{round_number:08d}-1111-4111-8111-111111111111"

        def put(index):
            return call(wsgi, "PUT", f"/articles/{record_id}", {"data": {"who": index}}, {"If-None-Match": "*"})

        results = run_together(THREADS, put)
        statuses = sorted(status for status, _ in results)
        assert statuses == [201] + [412] * (THREADS - 1), statuses
        winner = next(body for status, body in results if status == 201)["data"]
        assert call(wsgi, "GET", f"/articles/{record_id}")[1]["data"] == winner


def test_concurrent_posts_have_distinct_timestamps(app):
    wsgi = app.app
    results = run_together(THREADS, lambda i: call(wsgi, "POST", "/articles", {"data": {"i": i}}))
    assert all(status == 201 for status, _ in results)
    stamps = [body["data"]["last_modified"] for _, body in results]
    assert len(set(stamps)) == THREADS
    listed = call(wsgi, "GET", "/articles")[1]["data"]
    assert len(listed) == THREADS


def test_c4_concurrent_delete_and_patch(app):
    # RELIABILITY C4 (first half): one record ends as its tombstone only, newer than every
    # successful PATCH, and _since returns it.
    wsgi = app.app
    for _ in range(3):
        record = call(wsgi, "POST", "/articles", {"data": {"v": 0}})[1]["data"]
        url = f"/articles/{record['id']}"

        def act(index):
            if index % 2:
                return "DELETE", *call(wsgi, "DELETE", url)
            return "PATCH", *call(wsgi, "PATCH", url, {"data": {"v": index}})

        results = run_together(10, act)
        deletes = [body for method, status, body in results if method == "DELETE" and status == 200]
        patches = [body for method, status, body in results if method == "PATCH" and status == 200]
        assert len(deletes) == 1
        assert all(status in (200, 404) for _, status, _ in results)
        tombstone = deletes[0]["data"]
        assert all(p["data"]["last_modified"] < tombstone["last_modified"] for p in patches)
        assert call(wsgi, "GET", url)[0] == 404
        since = call(wsgi, "GET", f"/articles?_since={record['last_modified']}")[1]["data"]
        assert [r for r in since if r["id"] == record["id"]] == [tombstone]


def test_c4_collection_deleted_while_its_records_are_written(app):
    """RELIABILITY C4 (second half): DELETE of the collection races PATCHes of its records and new POSTs.

    Whichever order the backend picks, every id ends as one live record or one
    tombstone, never both; a tombstone is newer than every successful write of
    its record; a record deleted never comes back; ``_since`` shows each end state.
    """
    wsgi = app.app
    writers = 4
    for _ in range(3):
        call(wsgi, "DELETE", "/articles")  # the survivors of the previous round are not part of this one
        existing = [call(wsgi, "POST", "/articles", {"data": {"v": 0}})[1]["data"] for _ in range(writers)]

        def act(index):
            if index == 0:
                return "DELETE", *call(wsgi, "DELETE", "/articles")
            if index <= writers:
                record = existing[index - 1]
                return "PATCH", *call(wsgi, "PATCH", f"/articles/{record['id']}", {"data": {"v": index}})
            return "POST", *call(wsgi, "POST", "/articles", {"data": {"v": index}})

        results = run_together(1 + 2 * writers, act)
        outcomes = Counter((method, status) for method, status, _ in results)
        assert outcomes[("DELETE", 200)] == 1
        assert outcomes[("PATCH", 200)] + outcomes[("PATCH", 404)] == writers
        assert outcomes[("POST", 201)] == writers
        (deleted,) = [body["data"] for method, _, body in results if method == "DELETE"]
        tombstones = {tombstone["id"]: tombstone for tombstone in deleted}
        writes = {record["id"]: [record["last_modified"]] for record in existing}
        posted = {}
        for method, status, body in results:
            if status in (200, 201) and method != "DELETE":
                writes.setdefault(body["data"]["id"], []).append(body["data"]["last_modified"])
                if method == "POST":
                    posted[body["data"]["id"]] = body["data"]

        since = existing[0]["last_modified"] - 1
        listed = call(wsgi, "GET", f"/articles?_since={since}")[1]["data"]
        assert Counter(entry["id"] for entry in listed) == Counter(set(writes))  # each id exactly once
        for entry in listed:
            record_id = entry["id"]
            if entry.get("deleted"):
                assert entry == tombstones[record_id]
                assert entry["last_modified"] > max(writes[record_id])
                assert call(wsgi, "GET", f"/articles/{record_id}") == (404, {"code": 404, "errno": 110,
                                                                              "error": "Not Found"})
            else:
                # Only a record created after the DELETE is alive, exactly as its POST answered.
                assert record_id not in tombstones
                assert entry == posted[record_id]
                assert call(wsgi, "GET", f"/articles/{record_id}") == (200, {"data": entry})
        assert all(tombstones.get(record["id"]) is not None for record in existing)
