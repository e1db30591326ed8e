"""The resources middleware inside the default stack (``wrap()``): prefix, auth, CORS, batch."""
from __future__ import annotations

import base64

import pytest
import webtest

from cliquet_wsgi.middlewares.resources import Resource
from cliquet_wsgi.stack import wrap


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


@pytest.fixture
def stack(backend, make_registry):
    registry = make_registry(userid_hmac_secret="s" * 32, multiauth_policies="basicauth",
                             page_create_principals="system.Authenticated")
    app = wrap(hello_app, [Resource("article"), Resource("page", model="shareable")], registry=registry,
               **{k: v for k, v in registry.settings.items() if k in ("storage_url", "permission_url",
                                                                       "userid_hmac_secret", "multiauth_policies",
                                                                       "page_create_principals")})
    return webtest.TestApp(app)


def test_versioned_crud_and_isolation(stack):
    alice, bob = basic("alice:1"), basic("bob:2")
    created = stack.post_json("/v1/articles", {"data": {"t": 1}}, headers=alice, status=201).json["data"]
    stack.get(f"/v1/articles/{created['id']}", headers=alice, status=200)
    stack.get(f"/v1/articles/{created['id']}", headers=bob, status=404)
    stack.get("/v1/articles", status=401)
    # Everything else reaches the application untouched.
    assert stack.get("/v1/other", status=200).body == b"app"


def test_next_page_is_absolute_with_prefix_and_cors_exposes_it(stack):
    alice = {**basic("alice:1"), "Origin": "https://app.example"}
    for i in range(3):
        stack.post_json("/v1/articles", {"data": {"i": i}}, headers=alice)
    response = stack.get("/v1/articles?_limit=2", headers=alice)
    assert response.headers["Next-Page"].startswith("http://localhost:80/v1/articles?_limit=2&_token=")
    exposed = [h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")]
    assert {"Next-Page", "Total-Records", "ETag", "Last-Modified"} <= set(exposed)


def test_batch_sub_requests_are_authorized_each(stack):
    alice = basic("alice:1")
    body = {"requests": [
        {"method": "POST", "path": "/pages", "body": {"data": {"x": 1}}},
        {"method": "GET", "path": "/articles"},
        {"method": "GET", "path": "/pages", "headers": {"Authorization": ""}},
    ]}
    responses = stack.post_json("/v1/batch", body, headers=alice).json["responses"]
    assert [r["status"] for r in responses] == [201, 200, 401]


# -- S4: the shareable ACL matrix again, through /batch ---------------------------------------

from tests.middlewares.resources.test_permissions import MATRIX  # noqa: E402

CREDENTIALS = {"owner": "owner:1", "reader": "reader:1", "writer": "writer:1", "eve": "eve:1", None: None}
BATCH_CASES = [
    pytest.param(method, kind, who, status, id=f"{method}-{kind}-{who or 'anonymous'}")
    for (method, kind), row in MATRIX.items()
    for who, status in row.items()
]


@pytest.mark.parametrize("method,kind,who,status", BATCH_CASES)
def test_acl_matrix_through_batch(backend, make_registry, method, kind, who, status):
    registry = make_registry(userid_hmac_secret="s" * 32, multiauth_policies="basicauth")
    app = webtest.TestApp(wrap(hello_app, [Resource("page", model="shareable")], registry=registry,
                               **{k: registry.settings[k] for k in ("storage_url", "permission_url",
                                                                      "userid_hmac_secret", "multiauth_policies")}))
    ids = {name: app.get("/v1/", headers=basic(cred)).json["user"]["id"]
           for name, cred in CREDENTIALS.items() if cred}
    registry.permission.add_principal_to_ace("/pages", "page:create", ids["owner"])
    record = app.post_json("/v1/pages", {"data": {"t": 1}, "permissions": {"read": [ids["reader"]],
                                                                            "write": [ids["writer"]]}},
                           headers=basic("owner:1"), status=201).json["data"]
    path = "/pages" if kind == "collection" else f"/pages/{record['id']}"
    request = {"method": method, "path": path}
    if method in ("POST", "PUT", "PATCH"):
        request["body"] = {"data": {"t": 2}}
    headers = basic(CREDENTIALS[who]) if who else {}
    responses = app.post_json("/v1/batch", {"requests": [request]}, headers=headers).json["responses"]
    assert responses[0]["status"] == status


# -- S11: a batch shares out the maximum page size ---------------------------------------------


def articles_stack(registry) -> webtest.TestApp:
    """The default stack with one per-user resource, configured by ``registry``'s settings."""
    return webtest.TestApp(wrap(hello_app, [Resource("article")], registry=registry,
                                **{k: registry.settings[k] for k in ("storage_url", "userid_hmac_secret",
                                                                     "multiauth_policies", "storage_max_fetch_size")}))


def create_articles(app: webtest.TestApp, headers: dict[str, str], count: int, text: str = "") -> None:
    for start in range(0, count, 25):
        requests = [{"method": "POST", "path": "/articles", "body": {"data": {"n": n, "text": text}}}
                    for n in range(start, min(count, start + 25))]
        responses = app.post_json("/v1/batch", {"requests": requests}, headers=headers).json["responses"]
        assert {r["status"] for r in responses} == {201}


def test_batch_listings_share_the_maximum_page_size(make_registry):
    app = articles_stack(make_registry(userid_hmac_secret="s" * 32, multiauth_policies="basicauth",
                                       storage_max_fetch_size=10))
    alice = basic("alice:1")
    create_articles(app, alice, 12)
    # Alone, a page holds up to storage_max_fetch_size records.
    alone = app.get("/v1/articles?_limit=100&_sort=n", headers=alice)
    assert [r["n"] for r in alone.json["data"]] == list(range(10))
    assert "_limit=10&" in alone.headers["Next-Page"]
    # In a batch of 4, each page holds at most 10 // 4 = 2, and says where the rest is.
    body = {"requests": [{"path": "/articles?_limit=100&_sort=n"}, {"path": "/articles?_sort=-n"},
                         {"path": "/articles?_limit=1&_sort=n"}, {"path": "/articles?_sort=n&n=11"}]}
    responses = app.post_json("/v1/batch", body, headers=alice).json["responses"]
    assert [r["status"] for r in responses] == [200] * 4
    assert [[r["n"] for r in response["body"]["data"]] for response in responses] == [[0, 1], [11, 10], [0], [11]]
    assert [response["headers"]["Total-Records"] for response in responses] == ["12", "12", "12", "1"]
    assert ["_limit=2&" in response["headers"].get("Next-Page", "") for response in responses] == [
        True, True, False, False]
    assert "_limit=1&" in responses[2]["headers"]["Next-Page"]
    # Following a batch page's Next-Page outside the batch goes on where it stopped.
    following = app.get(responses[0]["headers"]["Next-Page"].replace("http://localhost:80", ""), headers=alice)
    assert [r["n"] for r in following.json["data"]] == [2, 3]


def test_batch_of_maximum_listings_holds_one_maximum_page_in_all(tmp_path):
    """RELIABILITY S11: 25 × _limit=max hold one maximum page's worth of records, not 25 (memory: bench/hostile_input.py)."""
    from cliquet_wsgi.registry import Registry
    from cliquet_wsgi.settings import load_settings

    app = articles_stack(Registry(load_settings({"storage_url": "memory://", "userid_hmac_secret": "s" * 32,
                                                 "multiauth_policies": "basicauth"}, environ={})))
    alice = basic("alice:1")
    create_articles(app, alice, 2000)
    body = {"requests": [{"path": "/articles?_limit=10000"}] * 25}
    pages = app.post_json("/v1/batch", body, headers=alice).json["responses"]
    assert [(page["status"], len(page["body"]["data"])) for page in pages] == [(200, 10000 // 25)] * 25
    assert all("_limit=400&" in page["headers"]["Next-Page"] for page in pages)
