"""The resources middleware inside the default stack (``wrap()``): prefix, auth, CORS, batch.

RELIABILITY rows checked through the whole stack here: I6, I8, L3, S4 (through
/batch), S6, S8, S11.
"""
from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qsl, urlsplit

import pytest
import webtest

from cliquet_wsgi.errors import BackendError
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


# -- a stack per test, with its own settings ---------------------------------------------------

SECRET = "s" * 32
ALICE = basic("alice:1")
ID = "8d9f3b4e-2f1a-4c7e-9a55-0f2b1c3d4e5f"
NOT_FOUND = {"code": 404, "errno": 110, "error": "Not Found"}
UNDEFINED = {"code": 500, "errno": 999, "error": "Internal Server Error",
             "message": "A programmatic error occured, developers have been informed."}
UNAVAILABLE = {"code": 503, "errno": 201, "error": "Service Unavailable",
               "message": "Service temporary unavailable due to overloading or maintenance, please retry later."}


class Exploding(Resource):
    """A resource whose hook fails as a bug would, with details that must never reach a client."""

    name = "bomb"

    def process_record(self, new, old):
        raise RuntimeError("secret detail from /srv/app/models.py: SELECT data FROM records")


@pytest.fixture
def make_stack(backend, make_registry):
    """``make_stack(resources, **settings)``: the default stack (Basic Auth on) around ``hello_app``."""

    def make(resources, **settings):
        settings = {"userid_hmac_secret": SECRET, "multiauth_policies": "basicauth", **settings}
        registry = make_registry(**settings)
        urls = {kind: registry.settings[kind] for kind in ("storage_url", "permission_url")}
        client = webtest.TestApp(wrap(hello_app, resources, registry=registry, **urls, **settings))
        client.registry = registry
        return client

    return make


def batch(client, *requests, headers=ALICE, status=200):
    return client.post_json("/v1/batch", {"requests": list(requests)}, headers=headers, status=status)


# -- I6: hostile path slots through the whole stack and through /batch --------------------------

from tests.middlewares.resources.test_endpoints import HOSTILE_SLOTS, invalid_path  # noqa: E402


@pytest.mark.parametrize("raw", HOSTILE_SLOTS)
def test_hostile_ids_are_400_directly_and_in_a_batch(make_stack, raw):
    """RELIABILITY I6: 400 (never 5xx), and nothing of the id reaches a response header."""
    client = make_stack([Resource("task", parent="/lists/{list_id}", id_generator=lambda: "generated")])
    for path, write, description in ((f"/lists/l1/tasks/{raw}", "PUT", "Invalid record id"),
                                     (f"/lists/{raw}/tasks", "POST", "Invalid list_id")):
        response = client.get("/v1" + path, headers={**ALICE, "Origin": "https://app.example"}, status=400)
        # The errors layer refuses a path that is not UTF-8 before any resource sees it.
        assert response.json == invalid_path("Invalid UTF-8 sequence" if raw == "%ff" else description)
        for name, value in response.headerlist:
            assert "Set-Cookie" not in name and "\r" not in value and "\n" not in value
        (sub,) = batch(client, {"method": write, "path": path, "body": {"data": {}}}).json["responses"]
        assert (sub["status"], sub["body"]) == (400, invalid_path(description))
        assert all("Set-Cookie" not in name and "\n" not in value for name, value in sub["headers"].items())


# -- I8: unknown and odd methods -------------------------------------------------------------------

ALLOW = {
    "/v1/articles": "GET,HEAD,POST,DELETE,OPTIONS",
    f"/v1/articles/{ID}": "GET,HEAD,PUT,PATCH,DELETE,OPTIONS",
    "/v1/batch": "POST",
    "/v1/": "GET,HEAD",
    "/v1/__heartbeat__": "GET,HEAD",
    "/v1/__lbheartbeat__": "GET,HEAD",
}
METHOD_NOT_ALLOWED = {"code": 405, "errno": 115, "error": "Method Not Allowed",
                      "message": "Method not allowed on this endpoint."}


@pytest.mark.filterwarnings("ignore::wsgiref.validate.WSGIWarning", "ignore::webtest.lint.WSGIWarning")
@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO"])
@pytest.mark.parametrize("path", list(ALLOW))
def test_odd_methods_are_405_with_allow(make_stack, method, path):
    """RELIABILITY I8, on every endpoint of the stack: 405/115 with the endpoint's methods in ``Allow``."""
    client = make_stack([Resource("article")])
    response = client.request(path, method=method, headers=ALICE, expect_errors=True)
    assert (response.status_int, response.headers["Allow"], response.json) == (405, ALLOW[path], METHOD_NOT_ALLOWED)


def test_odd_methods_inside_a_batch(make_stack):
    """RELIABILITY I8 in /batch: TRACE is a batch method (PROTOCOL §7.1) and gets the endpoint's 405;
    CONNECT and FOO are not, and the batch is refused (400) before any sub-request runs."""
    client = make_stack([Resource("article")])
    trace_list, trace_record = batch(client, {"method": "TRACE", "path": "/articles"},
                                     {"method": "TRACE", "path": f"/articles/{ID}"}).json["responses"]
    for sub, path in ((trace_list, "/v1/articles"), (trace_record, f"/v1/articles/{ID}")):
        assert (sub["status"], sub["headers"]["Allow"], sub["body"]) == (405, ALLOW[path], METHOD_NOT_ALLOWED)
    for method in ("CONNECT", "FOO"):
        response = batch(client, {"method": "POST", "path": "/articles", "body": {"data": {}}},
                         {"method": method, "path": "/articles"}, status=400)
        description = f'"{method}" is not one of GET, HEAD, DELETE, TRACE, POST, PUT, PATCH'
        assert response.json == {"code": 400, "errno": 107, "error": "Invalid parameters",
                                 "message": f"requests.1.method in body: {description}",
                                 "details": [{"location": "body", "name": "requests.1.method",
                                              "description": description}]}
    assert client.get("/v1/articles", headers=ALICE).json == {"data": []}


# -- L3: Backoff on every response -----------------------------------------------------------------


def test_backoff_on_every_response_errors_and_batch_included(make_stack, monkeypatch):
    """RELIABILITY L3 through the whole stack: successes, 304, 3xx, 4xx, 5xx and /batch.

    (A CORS preflight is answered above the backoff layer and has none: browsers
    consume it, clients never see it.)
    """
    client = make_stack([Resource("article"), Exploding()], backoff=10)
    created = client.post_json("/v1/articles", {"data": {}}, headers=ALICE, status=201)
    etag = client.get("/v1/articles", headers=ALICE).headers["ETag"]
    responses = [
        created,
        client.get("/v1/articles", headers={**ALICE, "If-None-Match": etag}, status=304),
        client.get("/articles", status=307),
        client.get("/v1/articles", status=401),
        client.get(f"/v1/articles/{ID}", headers=ALICE, status=404),
        client.get("/v1/articles/not-an-id", headers=ALICE, status=400),
        client.delete("/v1/articles", headers={**ALICE, "If-Match": '"1"'}, status=412),
        client.put_json("/v1/", {}, status=405),
        client.get("/v2/articles", status=404),
        client.post_json("/v1/bombs", {"data": {}}, headers=ALICE, status=500),
        batch(client, {"path": "/articles"}, {"path": f"/articles/{ID}"}),
        batch(client, {"path": "/batch"}, status=400),
        batch(client, {"method": "POST", "path": "/bombs", "body": {"data": {}}}, status=500),
    ]
    monkeypatch.setattr(client.registry.storage, "get_all", _backend_down)
    responses.append(client.get("/v1/articles", headers=ALICE, status=503))
    responses.append(batch(client, {"path": "/articles"}, status=503))
    assert [r.headers.get("Backoff") for r in responses] == ["10"] * len(responses)


def _backend_down(*args, **kwargs):
    raise BackendError(ConnectionError("could not connect: SELECT data FROM records WHERE parent_id = 'x'"))


# -- S6: no traceback, path, SQL or class name in any response -------------------------------------

LEAKS = ("Traceback", "/srv/app", "models.py", "SELECT", "RuntimeError", "ZeroDivisionError", "BackendError",
         "ConnectionError", "File ")


def assert_generic(response, expected):
    assert response.json == expected
    assert not [leak for leak in LEAKS if leak in response.text]


def test_exceptions_in_a_resource_a_filter_and_a_sub_request_stay_in_the_log(make_stack, monkeypatch, caplog):
    """RELIABILITY S6: the client gets the generic 500 (or 503) body; the log gets the traceback."""
    client = make_stack([Resource("article"), Exploding()])
    client.post_json("/v1/articles", {"data": {"title": "a"}}, headers=ALICE, status=201)
    with caplog.at_level(logging.ERROR):
        # In a resource: the definition's hook raises.
        assert_generic(client.post_json("/v1/bombs", {"data": {}}, headers=ALICE, status=500), UNDEFINED)
        # In a batch sub-request: the whole batch is that error (PROTOCOL §7.4).
        response = batch(client, {"path": "/articles"}, {"method": "POST", "path": "/bombs", "body": {"data": {}}},
                         status=500)
        assert_generic(response, UNDEFINED)
        # In a filter: the storage fails while filtering, as a bug would.
        monkeypatch.setattr(client.registry.storage, "get_all", _filter_bug)
        assert_generic(client.get("/v1/articles?title=a", headers=ALICE, status=500), UNDEFINED)
        assert_generic(batch(client, {"path": "/articles?title=a"}, status=500), UNDEFINED)
        # A driver error that names the SQL: a 503, and the SQL only in the log.
        monkeypatch.setattr(client.registry.storage, "get_all", _backend_down)
        assert_generic(client.get("/v1/articles?title=a", headers=ALICE, status=503), UNAVAILABLE)
    # Once each, by the layer that turned it into the response: errors, batch, resources (503).
    owners = ("cliquet_wsgi.errors", "cliquet_wsgi.middlewares.batch", "cliquet_wsgi.middlewares.resources.middleware")
    tracebacks = [record.name for record in caplog.records if record.exc_info is not None and record.name in owners]
    assert sorted(tracebacks) == sorted([owners[0], owners[1], owners[0], owners[1], owners[2]])
    logged = caplog.text
    assert "Traceback" in logged and "secret detail from /srv/app/models.py" in logged
    assert "ZeroDivisionError: filter on title" in logged and "SELECT data FROM records WHERE parent_id" in logged


def _filter_bug(*args, **kwargs):
    raise ZeroDivisionError("filter on title: SELECT data FROM records WHERE data->>'title' = $1")


# -- S8: generated URLs use http_host and http_scheme, never Host or proxy headers ---------------

FORGED = {"Host": "evil.example", "X-Forwarded-Host": "forwarded.evil.example", "X-Forwarded-Proto": "http",
          "Forwarded": "host=forwarded.evil.example;proto=http", "X-Forwarded-For": "10.0.0.1"}


def test_generated_urls_use_the_configured_origin(make_stack):
    """RELIABILITY S8: Location, Next-Page and hello's url, directly and in /batch."""
    client = make_stack([Resource("article")], http_host="api.example.com", http_scheme="https")
    for _ in range(2):
        client.post_json("/v1/articles", {"data": {}}, headers=ALICE, status=201)
    headers = {**ALICE, **FORGED}
    prefix = client.get("/articles?_limit=1", headers=headers, status=307)
    hello = client.get("/v1/", headers=headers)
    listing = client.get("/v1/articles?_limit=1", headers=headers)
    (sub,) = batch(client, {"path": "/articles?_limit=1", "headers": {"Host": "sub.evil.example"}},
                   headers=headers).json["responses"]
    assert prefix.headers["Location"] == "https://api.example.com/v1/articles?_limit=1"
    assert hello.json["url"] == "https://api.example.com/v1/"
    for next_page in (listing.headers["Next-Page"], sub["headers"]["Next-Page"]):
        parts = urlsplit(next_page)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "api.example.com", "/v1/articles")
        assert [name for name, _ in parse_qsl(parts.query)] == ["_limit", "_token"]
    for response in (prefix, hello, listing):
        assert "evil" not in str(response.headerlist) and "evil" not in response.text
    assert "evil" not in json.dumps(sub)


def test_proxy_headers_are_never_trusted(make_stack):
    """RELIABILITY S8 without http_host: the request's own Host, never X-Forwarded-* nor Forwarded."""
    client = make_stack([Resource("article")])
    for _ in range(2):
        client.post_json("/v1/articles", {"data": {}}, headers=ALICE, status=201)
    headers = {**ALICE, **FORGED, "Host": "api.internal:8080"}
    location = client.get("/articles", headers=headers, status=307).headers["Location"]
    next_page = client.get("/v1/articles?_limit=1", headers=headers).headers["Next-Page"]
    assert location == "http://api.internal:8080/v1/articles"
    assert next_page.startswith("http://api.internal:8080/v1/articles?_limit=1&_token=")
    assert client.get("/v1/", headers=headers).json["url"] == "http://api.internal:8080/v1/"
