"""The whole default stack (``cliquet_wsgi.wrap()``) in front of REAL Flask, Bottle and Django apps.

The apps are those of :mod:`tests.apps`; nothing below them is mocked. The
stack is the default one (request_log, cors, backoff, errors, version,
heartbeat, batch, auth with ``basicauth``) on memory backends.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http
import json
import logging
from wsgiref.validate import validator

import pytest
import webtest

import cliquet_wsgi
from cliquet_wsgi.errors import MESSAGES
from cliquet_wsgi.registry import Registry

SECRET = "test"
ORIGIN = "https://app.example.org"
EXPOSED = "Backoff, Retry-After, Alert, Content-Length, Vary, Content-Type"
JSON = "application/json; charset=UTF-8"
FRAMEWORKS = ["flask", "bottle", "django"]


def error_body(code: int, errno: int, message: str) -> bytes:
    error = {"code": code, "errno": errno, "error": http.HTTPStatus(code).phrase, "message": message}
    return json.dumps(error, separators=(",", ":")).encode()


NOT_FOUND = error_body(404, 111, MESSAGES["unknown_url"])
NOT_ALLOWED = error_body(405, 115, MESSAGES["method_not_allowed"])
CRASHED = error_body(500, 999, MESSAGES["undefined"])


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def expected_user_id(username: str, password: str) -> str:
    # Computed here from PROTOCOL §8 (HMAC-SHA256 of "user:password"), not with the middleware's helper.
    digest = hmac.new(SECRET.encode(), f"{username}:{password}".encode(), hashlib.sha256).hexdigest()
    return f"basicauth:{digest}"


class Framework:
    """A framework app wrapped in the default stack, with its registry."""

    def __init__(self, name: str) -> None:
        self.name = name
        module = __import__(f"tests.apps.{name}_app", fromlist=["application"])
        self.registry = Registry()
        stack = cliquet_wsgi.wrap(
            validator(module.application),
            registry=self.registry,
            storage_url="memory://",
            cache_url="memory://",
            permission_url="memory://",
            userid_hmac_secret=SECRET,
            backoff=10,
        )
        self.client = webtest.TestApp(validator(stack))


@pytest.fixture(params=FRAMEWORKS)
def framework(request, caplog):
    # The apps' own loggers (Django's "Not Found: …") must not reach the terminal.
    caplog.set_level(logging.CRITICAL + 1)
    if request.param != "django":
        yield Framework(request.param)
        return
    from django.test.utils import override_settings

    import tests.apps.django_app  # noqa: F401  (configures Django unless done already)

    # Another Django test app may have configured Django first: pin this app's URLs.
    with override_settings(ROOT_URLCONF="tests.apps.django_app", MIDDLEWARE=[]):
        yield Framework("django")


def test_urls_generated_under_the_version_prefix(framework):
    response = framework.client.get("/v1/whoami")
    assert response.status_int == 200
    assert response.json == {"url": "/v1/whoami"}
    assert framework.client.get("/v1/hello").json == {"hello": framework.name}


@pytest.mark.parametrize(
    "method, path, status, payload",
    [
        pytest.param("GET", "/v1/nope", 404, NOT_FOUND, id="404"),
        pytest.param("POST", "/v1/only-get", 405, NOT_ALLOWED, id="405"),
        pytest.param("GET", "/v1/boom", 500, CRASHED, id="500"),
    ],
)
def test_framework_error_pages_become_protocol_json(framework, method, path, status, payload):
    response = framework.client.request(path, method=method, expect_errors=True)
    assert response.status_int == status
    assert response.content_type + "; charset=" + response.charset == JSON
    assert response.headers["Content-Length"] == str(len(payload))
    assert response.body == payload
    assert "secret" not in response.text and "exploded" not in response.text
    if status == 405:
        # The framework's own Allow header survives the rewrite.
        assert "GET" in [m.strip() for m in response.headers["Allow"].split(",")]


@pytest.mark.parametrize(
    "path, status",
    [
        pytest.param("/v1/hello", 200, id="view"),
        pytest.param("/v1/nope", 404, id="framework-404"),
        pytest.param("/v1/boom", 500, id="framework-500"),
        pytest.param("/hello", 307, id="redirect"),
        pytest.param("/v1/", 200, id="hello-page"),
    ],
)
def test_cors_and_backoff_headers_on_every_response(framework, path, status):
    response = framework.client.get(path, headers={"Origin": ORIGIN}, expect_errors=True)
    assert response.status_int == status
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Expose-Headers"] == EXPOSED
    assert response.headers["Backoff"] == "10"
    assert response.headers.getall("Backoff") == ["10"]


def test_no_cors_headers_without_origin(framework):
    response = framework.client.get("/v1/hello")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.headers["Backoff"] == "10"


@pytest.mark.parametrize(
    "path, location",
    [
        pytest.param("/hello", "http://localhost:80/v1/hello", id="plain"),
        pytest.param("/hello?a=1&b=%C3%A9", "http://localhost:80/v1/hello?a=1&b=%C3%A9", id="querystring-kept"),
        pytest.param("/", "http://localhost:80/v1/", id="root"),
    ],
)
def test_unprefixed_paths_redirect(framework, path, location):
    response = framework.client.get(path)
    assert response.status_int == 307
    assert response.headers["Location"] == location
    assert response.body == b""
    # Following it reaches the framework (or hello for the root).
    assert framework.client.get(location).status_int == 200


def test_trailing_slash_redirect_after_framework_404(framework):
    response = framework.client.get("/v1/hello/")
    assert response.status_int == 307
    assert response.headers["Location"] == "http://localhost:80/v1/hello"


def hello_expected(framework, user=None) -> dict:
    body = {
        "project_name": "",
        "project_version": "1.0.0",
        "http_api_version": "1.0",
        "project_docs": "",
        "cliquet_protocol_version": "2",
        "url": "http://localhost:80/v1/",
        "settings": framework.registry.public_settings,
        "capabilities": framework.registry.capabilities,
    }
    if user is not None:
        body["user"] = user
    return body


def test_hello_anonymous(framework):
    response = framework.client.get("/v1/")
    assert response.status_int == 200
    assert response.headers["Content-Type"] == JSON
    assert response.json == hello_expected(framework)
    # The auth layer below announced itself to hello through the registry.
    assert "basicauth" in response.json["capabilities"]
    assert response.json["settings"]["readonly"] is False


def test_hello_authenticated(framework):
    user_id = expected_user_id("alice", "s3cret")
    response = framework.client.get("/v1/", headers={"Authorization": basic("alice", "s3cret")})
    assert response.json == hello_expected(
        framework, {"id": user_id, "principals": ["system.Everyone", "system.Authenticated", user_id]}
    )
    # A second request: the (cached) hello still reflects the caller, not the previous one.
    assert framework.client.get("/v1/").json == hello_expected(framework)


def test_utility_endpoints_do_not_reach_the_framework(framework):
    assert framework.client.get("/__lbheartbeat__").json == {}
    assert framework.client.get("/v1/__lbheartbeat__").json == {}
    heartbeat = framework.client.get("/v1/__heartbeat__")
    assert heartbeat.status_int == 200
    assert heartbeat.json == {"storage": True, "cache": True, "permission": True}


@pytest.mark.parametrize(
    "extra_environ, headers, seen",
    [
        pytest.param({}, {"Authorization": basic("alice", "s3cret")}, expected_user_id("alice", "s3cret"),
                     id="basic-auth"),
        pytest.param({"REMOTE_USER": "admin"}, {"Authorization": basic("alice", "s3cret")},
                     expected_user_id("alice", "s3cret"), id="spoofed-remote-user-overwritten"),
        pytest.param({"REMOTE_USER": "admin"}, {}, None, id="spoofed-remote-user-removed-when-anonymous"),
        pytest.param({}, {"Remote-User": "admin"}, None, id="remote-user-header-ignored"),
        pytest.param({}, {"Authorization": basic("bob", "")}, expected_user_id("bob", ""), id="empty-password"),
        pytest.param({}, {"Authorization": "Basic !!!"}, None, id="malformed-credentials-anonymous"),
    ],
)
def test_remote_user_seen_by_the_framework(framework, extra_environ, headers, seen):
    response = framework.client.get("/v1/remote-user", headers=headers, extra_environ=extra_environ)
    assert response.status_int == 200
    assert response.json == {"remote_user": seen}
