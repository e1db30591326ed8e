"""Tests of the authentication middleware and its policies (PROTOCOL §8, RELIABILITY S1, S2, S9)."""
from __future__ import annotations

import base64
import json
import logging
import pathlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares import auth as auth_module
from cliquet_wsgi.middlewares.auth import AuthMiddleware, AuthenticationPolicy, InvalidCredentials, basicauth_user_id
from cliquet_wsgi.registry import Registry

SECRET = "my-hmac-secret"


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


def whoami(environ, start_response):
    """Echo what the auth layer left in the environ."""
    body = json.dumps(
        {
            "user_id": environ.get("cliquet.user_id"),
            "authn_type": environ.get("cliquet.authn_type"),
            "principals": environ.get("cliquet.principals"),
            "remote_user": environ.get("REMOTE_USER"),
            "remote_user_orig": environ.get("cliquet.remote_user_orig"),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def make_app(registry=None, **kwargs):
    kwargs.setdefault("multiauth_policies", ["basicauth"])
    kwargs.setdefault("userid_hmac_secret", SECRET)
    kwargs.setdefault("settings", {})
    registry = registry or Registry()
    middleware = AuthMiddleware(validator(whoami), registry=registry, **kwargs)
    return webtest.TestApp(validator(middleware)), middleware, registry


ANONYMOUS = {
    "user_id": None,
    "authn_type": None,
    "principals": ["system.Everyone"],
    "remote_user": None,
    "remote_user_orig": None,
}


# -- Basic Auth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret, username, password, expected",
    [
        pytest.param("", "mat", "1", "9f2d363f98418b13253d6d7193fc88690302ab0ae21295521f6029dffe9dc3b0", id="mat"),
        pytest.param(
            "", "alice", "wonderland", "6b9ff11c8adb8e6d21f6a9be8d889e07ad83ed80fa4c3592396d9109890d7356", id="alice"
        ),
        pytest.param(
            "my-hmac-secret",
            "alice",
            "wonderland",
            "916896ebe0c71b0a6b1040e279a7ebcc23845746d8c912397f8e7de364a1684e",
            id="alice-secret",
        ),
        pytest.param("", "public", "", "04e1497431afdd6883ab8186f277c930742e9dac18676998ec00335546d87a57", id="public"),
    ],
)
def test_basicauth_vectors(secret, username, password, expected):
    assert basicauth_user_id(secret, username, password) == expected


def test_basicauth_request_gets_vector_user_id_and_principals():
    app, _, _ = make_app()
    response = app.get("/", headers={"Authorization": "Basic YWxpY2U6d29uZGVybGFuZA=="})
    user_id = "basicauth:916896ebe0c71b0a6b1040e279a7ebcc23845746d8c912397f8e7de364a1684e"
    assert response.json == {
        "user_id": user_id,
        "authn_type": "basicauth",
        "principals": ["system.Everyone", "system.Authenticated", user_id],
        "remote_user": user_id,
        "remote_user_orig": None,
    }


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("BASIC " + base64.b64encode(b"alice:wonderland").decode(), id="upper-scheme"),
        pytest.param("basic " + base64.b64encode(b"alice:wonderland").decode(), id="lower-scheme"),
        pytest.param("  Basic   " + base64.b64encode(b"alice:wonderland").decode() + " ", id="spaces"),
    ],
)
def test_basicauth_scheme_is_case_insensitive(header):
    app, _, _ = make_app()
    assert app.get("/", headers={"Authorization": header}).json["user_id"] == (
        "basicauth:916896ebe0c71b0a6b1040e279a7ebcc23845746d8c912397f8e7de364a1684e"
    )


def test_basicauth_splits_at_first_colon():
    app, _, _ = make_app()
    response = app.get("/", headers={"Authorization": basic("bob:pa:ss")})
    assert response.json["user_id"] == "basicauth:" + basicauth_user_id(SECRET, "bob", "pa:ss")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(basic(":password"), id="empty-username"),
        pytest.param(basic("nocolon"), id="no-colon"),
        pytest.param("Basic !!!notbase64", id="not-base64"),
        pytest.param("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), id="not-utf8"),
        pytest.param("Basic", id="no-credentials"),
        pytest.param("Digest abc", id="other-scheme"),
        pytest.param("", id="empty-header"),
    ],
)
def test_malformed_basic_is_anonymous(header):
    app, _, _ = make_app()
    response = app.get("/", headers={"Authorization": header})
    assert response.status_int == 200
    assert response.json == ANONYMOUS


def test_password_change_changes_identity():
    app, _, _ = make_app()
    first = app.get("/", headers={"Authorization": basic("alice:a")}).json["user_id"]
    second = app.get("/", headers={"Authorization": basic("alice:b")}).json["user_id"]
    assert first != second


def test_basicauth_refuses_to_start_without_secret():
    with pytest.raises(ConfigurationError, match="userid_hmac_secret"):
        make_app(userid_hmac_secret="")


# -- REMOTE_USER and principals --------------------------------------------------------------


def test_incoming_remote_user_removed_when_anonymous():
    app, _, _ = make_app()
    response = app.get("/", extra_environ={"REMOTE_USER": "admin"})
    assert response.json == {**ANONYMOUS, "remote_user_orig": "admin"}


def test_incoming_remote_user_overwritten_when_authenticated():
    app, _, _ = make_app()
    response = app.get("/", headers={"Authorization": basic("mat:1")}, extra_environ={"REMOTE_USER": "admin"})
    assert response.json["remote_user"] == "basicauth:" + basicauth_user_id(SECRET, "mat", "1")
    assert response.json["remote_user_orig"] == "admin"


class GroupsPermission:
    """The part of the permission contract the auth layer uses, counting lookups."""

    def __init__(self, groups):
        self.groups = groups
        self.calls = []

    def user_principals(self, user_id):
        self.calls.append(user_id)
        return set(self.groups.get(user_id, ()))

    def ping(self):
        return True


def test_principals_include_groups_from_permission_backend():
    registry = Registry()
    user_id = "basicauth:" + basicauth_user_id(SECRET, "mat", "1")
    permission = GroupsPermission({user_id: {"/groups/b", "/groups/a"}})
    registry.set_backend("permission", permission)
    app, _, _ = make_app(registry)
    response = app.get("/", headers={"Authorization": basic("mat:1")})
    assert response.json["principals"] == [
        "system.Everyone",
        "system.Authenticated",
        user_id,
        "/groups/a",
        "/groups/b",
    ]
    assert permission.calls == [user_id]


def test_principals_memoised_in_shared_memo():
    registry = Registry()
    permission = GroupsPermission({})
    registry.set_backend("permission", permission)
    _, middleware, _ = make_app(registry)
    memo: dict = {}
    calls = []

    def start_response(status, headers, exc_info=None):
        calls.append(status)

    for _ in range(3):
        environ = webtest.TestRequest.blank("/", headers={"Authorization": basic("mat:1")}).environ
        environ["cliquet.memo"] = memo
        result = middleware(environ, start_response)
        b"".join(result)
        result.close()
    assert calls == ["200 OK"] * 3
    assert len(permission.calls) == 1


def test_authenticator_installed_for_hello():
    _, middleware, registry = make_app()
    environ = webtest.TestRequest.blank("/", headers={"Authorization": basic("mat:1")}).environ
    user_id = "basicauth:" + basicauth_user_id(SECRET, "mat", "1")
    assert registry.authenticator(environ) == (user_id, ["system.Everyone", "system.Authenticated", user_id])
    assert registry.authenticator(webtest.TestRequest.blank("/").environ) is None
    assert "REMOTE_USER" not in environ


def test_capabilities_registered():
    _, _, registry = make_app()
    assert registry.capabilities == {
        "basicauth": {
            "description": "Basic Auth: any user/password pair is an identity.",
            "url": "https://tools.ietf.org/html/rfc7617",
        }
    }


# -- configuration errors -----------------------------------------------------------------


class HeaderPolicy(AuthenticationPolicy):
    """Test policy: ``X-Token: good-<id>`` -> id; ``X-Token: bad`` refused."""

    options = frozenset({"prefix"})

    def __init__(self, name, options, *, registry, userid_hmac_secret):
        super().__init__(name, options, registry=registry, userid_hmac_secret=userid_hmac_secret)
        self.prefix = options.get("prefix", "good-")

    def authenticate(self, environ):
        value = environ.get("HTTP_X_TOKEN")
        if value is None:
            return None
        if value.startswith(self.prefix):
            return value[len(self.prefix):]
        raise InvalidCredentials("bad header token")

    def challenge(self):
        return 'XToken realm="Realm"'


HEADER_POLICY = f"{__name__}.HeaderPolicy"


@pytest.mark.parametrize(
    "policies, settings, message",
    [
        pytest.param(["nosuch"], {}, "multiauth.policy.nosuch.use", id="unknown-builtin"),
        pytest.param(["x"], {"multiauth.policy.x.use": "nosuch.module.Class"}, "cannot import", id="bad-use"),
        pytest.param(["x"], {"multiauth.policy.x.use": "json.dumps"}, "AuthenticationPolicy subclass", id="not-policy"),
        pytest.param(
            ["basicauth"], {"multiauth.policy.basicauth.realm": "x"}, "multiauth.policy.basicauth.realm", id="bad-opt"
        ),
        pytest.param(["basicauth"], {"multiauth.policy.other.use": "bearer"}, "not listed", id="unlisted-options"),
        pytest.param(["basicauth", "BasicAuth"], {}, "listed twice", id="twice"),
        pytest.param(["Bad-Name"], {}, "invalid policy name", id="bad-name"),
        pytest.param(["bearer"], {}, "exactly one of", id="bearer-no-verifier"),
        pytest.param(
            ["bearer"],
            {"multiauth.policy.bearer.verifier": "json.dumps", "multiauth.policy.bearer.introspection_url": "http://x"},
            "exactly one of",
            id="bearer-both",
        ),
        pytest.param(
            ["bearer"], {"multiauth.policy.bearer.introspection_url": "file:///etc/passwd"}, "http", id="bearer-file"
        ),
        pytest.param(
            ["bearer"],
            {"multiauth.policy.bearer.verifier": "json.dumps", "multiauth.policy.bearer.timeout_seconds": "x"},
            "number",
            id="bearer-bad-timeout",
        ),
        pytest.param(["remoteuser"], {}, "trusted_proxies", id="remoteuser-no-proxies"),
        pytest.param(
            ["remoteuser"], {"multiauth.policy.remoteuser.trusted_proxies": "proxy.local"}, "trusted_proxies", id="bad-ip"
        ),
        pytest.param(
            ["remoteuser"],
            {"multiauth.policy.remoteuser.trusted_proxies": "10.0.0.1", "multiauth.policy.remoteuser.header": "X_U"},
            "header",
            id="underscore-header",
        ),
    ],
)
def test_configuration_errors(policies, settings, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        make_app(multiauth_policies=policies, settings=settings)


# -- custom policies and the 401 rule ---------------------------------------------------------


def test_custom_policy_via_use_and_options():
    app, _, _ = make_app(
        multiauth_policies=["basicauth", "hdr"],
        settings={"multiauth.policy.hdr.use": HEADER_POLICY, "multiauth.policy.hdr.prefix": "ok:"},
    )
    response = app.get("/", headers={"X-Token": "ok:zoe"})
    assert response.json["user_id"] == "hdr:zoe"
    assert response.json["authn_type"] == "hdr"


def test_refused_credentials_give_401_with_every_challenge():
    app, _, _ = make_app(multiauth_policies=["basicauth", "hdr"], settings={"multiauth.policy.hdr.use": HEADER_POLICY})
    response = app.get("/", headers={"X-Token": "bad"}, status=401, extra_environ={"REMOTE_USER": "x"})
    assert response.json == {
        "code": 401,
        "errno": 104,
        "error": "Unauthorized",
        "message": "Please authenticate yourself to use this endpoint.",
    }
    assert response.headers.getall("WWW-Authenticate") == ['Basic realm="Realm"', 'XToken realm="Realm"']


def test_first_policy_wins_and_refusal_ignored_when_another_accepts():
    app, _, _ = make_app(multiauth_policies=["hdr", "basicauth"], settings={"multiauth.policy.hdr.use": HEADER_POLICY})
    response = app.get("/", headers={"X-Token": "bad", "Authorization": basic("mat:1")})
    assert response.json["user_id"] == "basicauth:" + basicauth_user_id(SECRET, "mat", "1")
    response = app.get("/", headers={"X-Token": "good-a", "Authorization": basic("mat:1")})
    assert response.json["user_id"] == "hdr:a"


# -- bearer with a verifier callable ----------------------------------------------------------


def verify_token(token):
    return {"tok-alice": "alice"}.get(token)


def test_bearer_verifier_accepts_and_refuses():
    app, _, registry = make_app(
        multiauth_policies=["basicauth", "bearer"],
        settings={"multiauth.policy.bearer.verifier": f"{__name__}.verify_token"},
    )
    response = app.get("/", headers={"Authorization": "Bearer tok-alice"})
    assert response.json["user_id"] == "bearer:alice"
    assert response.json["principals"] == ["system.Everyone", "system.Authenticated", "bearer:alice"]
    response = app.get("/", headers={"Authorization": "Bearer tok-bob"}, status=401)
    assert response.json["errno"] == 104
    assert response.headers.getall("WWW-Authenticate") == ['Basic realm="Realm"', 'Bearer realm="Realm"']
    assert registry.capabilities["bearer"]["url"] == "https://tools.ietf.org/html/rfc6750"


@pytest.mark.parametrize(
    "header",
    [pytest.param("Bearer a b", id="space"), pytest.param("Bearer " + "a" * 5000, id="too-long"),
     pytest.param("Bearer \u00e9t\u00e9", id="non-ascii")],
)
def test_malformed_bearer_is_refused(header):
    app, _, _ = make_app(multiauth_policies=["bearer"], settings={"multiauth.policy.bearer.verifier": verify_token})
    environ = {"HTTP_AUTHORIZATION": header}
    app.get("/", extra_environ=environ, status=401)


def test_named_bearer_policy_prefixes_with_its_name():
    app, _, _ = make_app(
        multiauth_policies=["fxa"],
        settings={"multiauth.policy.fxa.use": "bearer", "multiauth.policy.fxa.verifier": verify_token},
    )
    assert app.get("/", headers={"Authorization": "Bearer tok-alice"}).json["user_id"] == "fxa:alice"


def broken_verifier(token):
    raise RuntimeError("verifier down")


def test_bearer_verifier_failure_is_anonymous_and_logged(caplog):
    app, _, _ = make_app(multiauth_policies=["bearer"], settings={"multiauth.policy.bearer.verifier": broken_verifier})
    with caplog.at_level(logging.WARNING):
        response = app.get("/", headers={"Authorization": "Bearer secret-token-value"})
    assert response.json == ANONYMOUS
    assert "introspection failed" in caplog.text
    assert "secret-token-value" not in caplog.text


# -- bearer with an RFC 7662 introspection server on loopback -------------------------------


class TTLCache:
    """In-process cache with the contract's get/set(ttl) semantics, counting calls."""

    def __init__(self, fail=False):
        self.data = {}
        self.fail = fail

    def get(self, key):
        if self.fail:
            raise OSError("cache down")
        value, expires = self.data.get(key, (None, None))
        if expires is not None and expires <= time.monotonic():
            return None
        return value

    def set(self, key, value, ttl=None):
        if self.fail:
            raise OSError("cache down")
        self.data[key] = (value, None if ttl is None else time.monotonic() + ttl)

    def ping(self):
        return not self.fail


class Introspection:
    """A real HTTP introspection endpoint in a thread; ``tokens`` maps token -> answer."""

    def __init__(self):
        self.tokens = {}
        self.hits = 0
        # When set, answers wait until ``release`` is set (at most 30 s) and
        # ``answered`` records the ones sent: a client that gave up first is seen
        # by ordering, not by a clock.
        self.hold = False
        self.release = threading.Event()
        self.answered = 0
        self.requests = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                owner.hits += 1
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                owner.requests.append((self.headers.get("Authorization"), form))
                if owner.hold:
                    owner.release.wait(30)
                token = form.get("token", [""])[0]
                answer = owner.tokens.get(token, {"active": False})
                status = answer.pop("__status__", 200) if isinstance(answer, dict) else 200
                body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    owner.answered += 1
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/introspect"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def introspection():
    with Introspection() as server:
        yield server


def introspection_app(server, cache=None, **options):
    registry = Registry()
    if cache is not None:
        registry.set_backend("cache", cache)
    settings = {
        "multiauth.policy.bearer.introspection_url": server.url,
        "multiauth.policy.bearer.client_id": "cliquet",
        "multiauth.policy.bearer.client_secret": "s3cret&",
        **{f"multiauth.policy.bearer.{k}": v for k, v in options.items()},
    }
    app, _, _ = make_app(registry, multiauth_policies=["bearer"], settings=settings)
    return app


def test_introspection_active_token(introspection):
    introspection.tokens["tok1"] = {"active": True, "sub": "alice", "exp": time.time() + 3600}
    app = introspection_app(introspection)
    response = app.get("/", headers={"Authorization": "Bearer tok1"})
    assert response.json["user_id"] == "bearer:alice"
    client_auth, form = introspection.requests[0]
    assert client_auth == "Basic " + base64.b64encode(b"cliquet:s3cret%26").decode()
    assert form == {"token": ["tok1"], "token_type_hint": ["access_token"]}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"active": False}, id="inactive"),
        pytest.param({"active": "true", "sub": "alice"}, id="active-not-boolean"),
        pytest.param({"active": True, "sub": "alice", "exp": time.time() - 10}, id="expired"),
    ],
)
def test_introspection_refused_token_is_401(introspection, answer):
    introspection.tokens["tok1"] = answer
    app = introspection_app(introspection)
    response = app.get("/", headers={"Authorization": "Bearer tok1"}, status=401)
    assert response.headers.getall("WWW-Authenticate") == ['Bearer realm="Realm"']


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"__status__": 500, "error": "boom"}, id="http-500"),
        pytest.param(b"not json", id="not-json"),
        pytest.param({"active": True}, id="no-sub"),
        pytest.param([1], id="not-object"),
    ],
)
def test_introspection_failure_is_anonymous(introspection, answer, caplog):
    introspection.tokens["tok-secret-1"] = answer
    app = introspection_app(introspection)
    with caplog.at_level(logging.WARNING):
        response = app.get("/", headers={"Authorization": "Bearer tok-secret-1"})
    assert response.json == ANONYMOUS
    assert "introspection failed" in caplog.text
    assert "tok-secret-1" not in caplog.text and "s3cret" not in caplog.text


def test_introspection_timeout_is_anonymous(introspection, caplog):
    introspection.tokens["tok1"] = {"active": True, "sub": "alice"}
    introspection.hold = True
    app = introspection_app(introspection, timeout_seconds="0.2")
    with caplog.at_level(logging.WARNING):
        response = app.get("/", headers={"Authorization": "Bearer tok1"})
    # The endpoint has not answered yet: the client gave up on its own.
    assert introspection.answered == 0
    assert response.json == ANONYMOUS
    assert "introspection failed" in caplog.text


def test_introspection_unreachable_is_anonymous():
    server = Introspection()  # bound but never serving: closed port after close
    url = server.url
    server.server.server_close()
    registry = Registry()
    settings = {"multiauth.policy.bearer.introspection_url": url, "multiauth.policy.bearer.timeout_seconds": 1}
    app, _, _ = make_app(registry, multiauth_policies=["bearer"], settings=settings)
    assert app.get("/", headers={"Authorization": "Bearer tok1"}).json == ANONYMOUS


def test_introspection_results_cached_positive_and_negative(introspection):
    introspection.tokens["tok1"] = {"active": True, "sub": "alice"}
    cache = TTLCache()
    app = introspection_app(introspection, cache=cache)
    for _ in range(3):
        assert app.get("/", headers={"Authorization": "Bearer tok1"}).json["user_id"] == "bearer:alice"
    for _ in range(3):
        app.get("/", headers={"Authorization": "Bearer tok2"}, status=401)
    assert introspection.hits == 2
    # S2: the key binds the token (an HMAC of it), and the token is not stored.
    assert len(cache.data) == 2
    assert all(re.fullmatch(r"auth:bearer:[0-9a-f]{64}", key) for key in cache.data)
    assert "tok1" not in repr(cache.data)


def test_wrong_token_never_accepted_from_cache(introspection):
    introspection.tokens["tok1"] = {"active": True, "sub": "alice"}
    app = introspection_app(introspection, cache=TTLCache())
    app.get("/", headers={"Authorization": "Bearer tok1"})
    app.get("/", headers={"Authorization": "Bearer tok1x"}, status=401)
    app.get("/", headers={"Authorization": "Bearer tok"}, status=401)


def test_revoked_token_refused_after_cache_expiry(introspection):
    introspection.tokens["tok1"] = {"active": True, "sub": "alice"}
    app = introspection_app(introspection, cache=TTLCache(), cache_ttl_seconds=1)
    assert app.get("/", headers={"Authorization": "Bearer tok1"}).json["user_id"] == "bearer:alice"
    introspection.tokens["tok1"] = {"active": False}
    # Within the TTL the cached answer is used (documented trade-off) ...
    assert app.get("/", headers={"Authorization": "Bearer tok1"}).json["user_id"] == "bearer:alice"
    assert introspection.hits == 1
    time.sleep(1.1)
    # ... after it, the revocation is seen.
    app.get("/", headers={"Authorization": "Bearer tok1"}, status=401)
    assert introspection.hits == 2


def test_positive_cache_bounded_by_token_expiry(introspection):
    introspection.tokens["tok1"] = {"active": True, "sub": "alice", "exp": time.time() + 0.5}
    cache = TTLCache()
    app = introspection_app(introspection, cache=cache, cache_ttl_seconds=300)
    app.get("/", headers={"Authorization": "Bearer tok1"})
    (_, expires), = cache.data.values()
    assert expires - time.monotonic() <= 0.5


def test_cache_failure_degrades_to_introspection(introspection, caplog):
    introspection.tokens["tok1"] = {"active": True, "sub": "alice"}
    app = introspection_app(introspection, cache=TTLCache(fail=True))
    with caplog.at_level(logging.WARNING):
        assert app.get("/", headers={"Authorization": "Bearer tok1"}).json["user_id"] == "bearer:alice"
    assert "cache read failed" in caplog.text
    assert "tok1" not in caplog.text


# -- remote user from a trusted proxy ------------------------------------------------------


REMOTEUSER = {"multiauth.policy.remoteuser.trusted_proxies": "10.0.0.1, ::1"}


@pytest.mark.parametrize(
    "remote_addr, header, expected",
    [
        pytest.param("10.0.0.1", "carol", "remoteuser:carol", id="trusted"),
        pytest.param("::1", "carol", "remoteuser:carol", id="trusted-v6"),
        pytest.param("10.0.0.2", "carol", None, id="untrusted-address"),
        pytest.param("", "carol", None, id="no-address"),
        pytest.param("10.0.0.1", "", None, id="empty-header"),
        pytest.param("10.0.0.1", "a\x01b", None, id="control-character"),
    ],
)
def test_remoteuser(remote_addr, header, expected):
    app, _, _ = make_app(multiauth_policies=["remoteuser"], settings=REMOTEUSER)
    environ = {"REMOTE_ADDR": remote_addr, "HTTP_X_REMOTE_USER": header}
    assert app.get("/", extra_environ=environ).json["user_id"] == expected


def test_remoteuser_custom_header():
    settings = {**REMOTEUSER, "multiauth.policy.remoteuser.header": "X-Auth-User"}
    app, _, _ = make_app(multiauth_policies=["remoteuser"], settings=settings)
    environ = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_REMOTE_USER": "mallory", "HTTP_X_AUTH_USER": "carol"}
    assert app.get("/", extra_environ=environ).json["user_id"] == "remoteuser:carol"


# -- a real Django application below ------------------------------------------------------------


DJANGO_SCRIPT = """
import json, sys
import webtest
from cliquet_wsgi.middlewares.auth import AuthMiddleware
from cliquet_wsgi.registry import Registry
from tests.apps import django_remote_user

with django_remote_user.django_settings():
    app = webtest.TestApp(AuthMiddleware(django_remote_user.make_application(), registry=Registry(),
                                         userid_hmac_secret=sys.argv[1], settings={}))
    auth = {"Authorization": sys.argv[2]}
    print(json.dumps([
        app.get("/whoami", headers=auth).json,
        app.get("/whoami", headers=auth, extra_environ={"REMOTE_USER": "admin"}).json,
        app.get("/whoami", extra_environ={"REMOTE_USER": "admin"}).json,
    ]))
"""


def test_django_remote_user_sees_authenticated_user():
    """A real Django app with RemoteUserMiddleware + RemoteUserBackend below the auth layer.

    Run in a fresh interpreter: Django settings are process-global and other test
    modules configure them differently.
    """
    pytest.importorskip("django")
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", DJANGO_SCRIPT, SECRET, basic("mat:1")],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    user_id = "basicauth:" + basicauth_user_id(SECRET, "mat", "1")
    assert json.loads(result.stdout) == [
        {"username": user_id, "is_authenticated": True},
        # A spoofed REMOTE_USER is replaced by the authenticated user ...
        {"username": user_id, "is_authenticated": True},
        # ... and removed for an anonymous request.
        {"username": "", "is_authenticated": False},
    ]


# -- paste and static checks --------------------------------------------------------------


def test_filter_factory_reads_policy_settings():
    factory = auth_module.filter_factory(
        {"registry_name": "test-auth-paste"},
        userid_hmac_secret="abc",
        multiauth_policies="basicauth fxa",
        **{"multiauth.policy.fxa.use": "bearer", "multiauth.policy.fxa.verifier": f"{__name__}.verify_token"},
    )
    app = webtest.TestApp(factory(whoami))
    assert app.get("/", headers={"Authorization": "Bearer tok-alice"}).json["user_id"] == "fxa:alice"
    assert app.get("/", headers={"Authorization": basic("a:b")}).json["user_id"] == (
        "basicauth:" + basicauth_user_id("abc", "a", "b")
    )


def test_no_plain_comparison_of_secrets():
    """S1: secrets, tokens and digests are never compared with ``==``/``!=``."""
    package = pathlib.Path(auth_module.__file__).parent
    offending = []
    for path in package.glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"[!=]=", code) and re.search(r"secret|token|digest|password|credential", code, re.I):
                offending.append(f"{path.name}:{number}: {line.strip()}")
    assert offending == []


# -- the real cache backends ---------------------------------------------------------------------


def cache_registry(url):
    from cliquet_wsgi.settings import load_settings

    if url.startswith("memcached"):
        from cliquet_wsgi.testing import MEMCACHED_URL, tcp_reachable
        from cliquet_wsgi.testing import require_service

        if not tcp_reachable("127.0.0.1", 11211):
            require_service("memcached", "127.0.0.1:11211 does not answer")
        url = MEMCACHED_URL
    return Registry(load_settings({"cache_url": url, "cache_prefix": f"t-{time.time_ns()}:"}, environ={}))


@pytest.mark.parametrize("cache_url", [pytest.param("memory://", id="memory"), pytest.param("memcached://", id="memcached")])
def test_introspection_cache_with_real_backend(introspection, cache_url):
    registry = cache_registry(cache_url)
    introspection.tokens["tok-real"] = {"active": True, "sub": "zed"}
    settings = {
        "multiauth.policy.bearer.introspection_url": introspection.url,
        "multiauth.policy.bearer.cache_ttl_seconds": 1,
    }
    app, _, _ = make_app(registry, multiauth_policies=["bearer"], settings=settings)
    for _ in range(3):
        assert app.get("/", headers={"Authorization": "Bearer tok-real"}).json["user_id"] == "bearer:zed"
    app.get("/", headers={"Authorization": "Bearer tok-other"}, status=401)
    app.get("/", headers={"Authorization": "Bearer tok-other"}, status=401)
    assert introspection.hits == 2
    introspection.tokens["tok-real"] = {"active": False}
    time.sleep(1.2)
    app.get("/", headers={"Authorization": "Bearer tok-real"}, status=401)
    assert introspection.hits == 3
