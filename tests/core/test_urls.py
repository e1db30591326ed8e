"""The origin of generated URLs (RELIABILITY S8): one rule for every middleware."""
import pytest

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.urls import check_http_host, quote_path, request_origin

BASE = {"wsgi.url_scheme": "http", "SERVER_NAME": "backend.internal", "SERVER_PORT": "8000"}


@pytest.mark.parametrize(
    "environ, settings, expected",
    [
        pytest.param({"HTTP_HOST": "api.example"}, {}, "http://api.example", id="host-header"),
        pytest.param({"HTTP_HOST": "[::1]:8080"}, {}, "http://[::1]:8080", id="ipv6-host"),
        pytest.param({"HTTP_HOST": "evil.example"}, {"http_host": "public.example", "http_scheme": "https"},
                     "https://public.example", id="configured-origin-wins"),
        pytest.param({"HTTP_HOST": "evil.example/path"}, {}, "http://backend.internal:8000", id="path-in-host"),
        pytest.param({"HTTP_HOST": "a@b"}, {}, "http://backend.internal:8000", id="userinfo-in-host"),
        pytest.param({"HTTP_HOST": "x\r\nSet-Cookie: a"}, {}, "http://backend.internal:8000", id="crlf-in-host"),
        pytest.param({}, {}, "http://backend.internal:8000", id="no-host"),
        pytest.param({"SERVER_PORT": "80"}, {}, "http://backend.internal", id="default-port-omitted"),
        pytest.param({"wsgi.url_scheme": "https", "SERVER_PORT": "443"}, {}, "https://backend.internal",
                     id="https-default-port"),
        pytest.param({"SERVER_NAME": "bad name"}, {}, "http://localhost", id="bad-server-name"),
    ],
)
def test_request_origin(environ, settings, expected):
    assert request_origin({**BASE, **environ}, settings.get("http_scheme"), settings.get("http_host")) == expected


@pytest.mark.parametrize("value", ["evil.example/x", "a b", "host:port", "user@host"])
def test_bad_http_host_is_a_configuration_error(value):
    message = f"Setting 'http_host' must be a host[:port], got {value!r}"
    with pytest.raises(ConfigurationError) as raised:
        check_http_host(value)
    assert str(raised.value) == message
    with pytest.raises(ConfigurationError) as raised:
        load_settings({"http_host": value}, environ={})
    assert str(raised.value) == message


def test_good_http_host_is_kept():
    assert load_settings({"http_host": "api.example:443"}, environ={})["http_host"] == "api.example:443"
    assert check_http_host(None) is None
    # An empty value in an ini file or the environment means "not set", as for every setting.
    assert load_settings({"http_host": ""}, environ={})["http_host"] is None


@pytest.mark.parametrize(
    "path, expected",
    [
        pytest.param("/v1/articles/abc-1", "/v1/articles/abc-1", id="plain"),
        pytest.param("/v1/a b\r\nSet-Cookie:x", "/v1/a%20b%0D%0ASet-Cookie:x", id="crlf-never-survives"),
        pytest.param("/v1/caf\xe9", "/v1/caf%E9", id="pep3333-latin1-bytes"),
        pytest.param("/v1/\u2603", "/v1/%E2%98%83", id="not-pep3333-utf8-fallback"),
        pytest.param("/v1/x;y=1@z", "/v1/x;y=1@z", id="rfc3986-pchar-kept"),
    ],
)
def test_quote_path(path, expected):
    assert quote_path(path) == expected
