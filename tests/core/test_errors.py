import json

import pytest

from cliquet_wsgi.errors import (
    ERRORS, BackendError, CliquetError, error_from_exception, invalid_parameters, method_not_allowed,
    render_error, unauthorized,
)


def test_render_minimal_error():
    status, headers, body = render_error(CliquetError(402))
    assert status == "402 Payment Required"
    assert json.loads(body) == {"code": 402, "errno": 999, "error": "Payment Required"}
    assert headers == [("Content-Type", "application/json; charset=UTF-8"), ("Content-Length", str(len(body)))]


def test_render_keeps_extra_headers_and_omits_unset_fields():
    status, headers, body = render_error(method_not_allowed(["GET", "HEAD"]))
    assert status == "405 Method Not Allowed"
    assert ("Allow", "GET,HEAD") in headers
    assert json.loads(body) == {
        "code": 405, "errno": 115, "error": "Method Not Allowed",
        "message": "Method not allowed on this endpoint.",
    }


def test_empty_details_are_rendered():
    assert CliquetError(412, ERRORS.MODIFIED_MEANWHILE, details={}).to_dict()["details"] == {}


def test_unauthorized_challenges():
    error = unauthorized(['Basic realm="Realm"', 'Bearer realm="x"'])
    assert error.headers == [("WWW-Authenticate", 'Basic realm="Realm"'), ("WWW-Authenticate", 'Bearer realm="x"')]
    assert error.errno == 104


@pytest.mark.parametrize(
    "details, message",
    [
        pytest.param([{"location": "body", "name": "data.title", "description": "42 is not a string"}],
                     "data.title in body: 42 is not a string", id="name-not-in-description"),
        pytest.param([{"location": "body", "name": "data", "description": "data is missing"}],
                     "data is missing", id="name-in-description"),
        pytest.param([{"location": "path", "name": None, "description": "Invalid record id"}],
                     "path: Invalid record id", id="no-name"),
        pytest.param([{"location": "querystring", "name": "min_foo", "description": "Unknown filter field 'min_foo'"},
                      {"location": "body", "name": "data.z", "description": "bad"}],
                     "data.z in body: bad", id="sorted-by-name"),
    ],
)
def test_validation_message(details, message):
    error = invalid_parameters(details)
    body = error.to_dict()
    assert body["message"] == message
    assert body["error"] == "Invalid parameters"
    assert body["errno"] == 107
    assert body["details"] == sorted(details, key=lambda d: str(d["name"]))


def test_error_from_exception():
    assert error_from_exception(CliquetError(404, 110)).status == 404
    backend = error_from_exception(BackendError(OSError("down")), retry_after_seconds=30)
    assert (backend.status, backend.errno, backend.headers) == (503, 201, [("Retry-After", "30")])
    crash = error_from_exception(KeyError("secret"), error_info_link="https://x/issues")
    assert crash.to_dict() == {
        "code": 500, "errno": 999, "error": "Internal Server Error",
        "message": "A programmatic error occured, developers have been informed.", "info": "https://x/issues",
    }
