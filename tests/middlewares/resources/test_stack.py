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
