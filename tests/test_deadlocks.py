"""RELIABILITY C5: batches writing two collections in opposite orders never surface a deadlock.

PostgreSQL detects the deadlock and rolls one transaction back; the batch
layer runs that batch again. The database gets a short ``deadlock_timeout``
so that each detection costs milliseconds, not the default second.
"""
import threading

import pytest
import webtest

from cliquet_wsgi import wrap
from cliquet_wsgi.middlewares.resources import Resource
from cliquet_wsgi.registry import Registry
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.testing import postgresql_database
from tests.secrets import basic_header

ALICE = {"Authorization": basic_header("alice", "alice-pa55word-9f2")}
ROUNDS = 25


def not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"nothing here"]


@pytest.fixture
def app():
    url = postgresql_database("cliquet_deadlock_tests", {"deadlock_timeout": "20ms"})
    settings = {"storage_url": url, "permission_url": url, "userid_hmac_secret": "hmac-secret-4c1e7b",
                "storage_pool_size": 4}
    registry = Registry(load_settings(settings, environ={}))
    for kind in ("storage", "permission"):
        registry.backend(kind).initialize_schema()
    registry.storage.flush()
    yield webtest.TestApp(wrap(not_found, resources=[Resource("apple"), Resource("banana")],
                               registry=registry, **settings))
    registry.storage.flush()


def batch(first, second, round_number):
    return {"defaults": {"method": "POST"}, "requests": [
        {"path": f"/{first}s", "body": {"data": {"round": round_number}}},
        {"path": f"/{second}s", "body": {"data": {"round": round_number}}},
    ]}


def test_opposite_order_batches_all_succeed(app):
    outcomes: list[tuple[int, list[int]]] = []
    barrier = threading.Barrier(2)

    def client(first, second):
        for round_number in range(ROUNDS):
            barrier.wait(timeout=30)
            response = app.post_json("/v1/batch", batch(first, second, round_number), headers=ALICE, status="*")
            statuses = [r["status"] for r in response.json.get("responses", [])]
            outcomes.append((response.status_int, statuses))

    threads = [threading.Thread(target=client, args=pair) for pair in (("apple", "banana"), ("banana", "apple"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert outcomes == [(200, [201, 201])] * (2 * ROUNDS)
    for name in ("apples", "bananas"):
        listing = app.get(f"/v1/{name}", headers=ALICE)
        assert listing.headers["Total-Records"] == str(2 * ROUNDS)
