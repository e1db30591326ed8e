"""The origin (``scheme://host``) of the URLs the middlewares generate: ``Location``, ``Next-Page``, hello's ``url``.

One rule for every middleware (RELIABILITY S8): the configured ``http_scheme``
and ``http_host`` when set; else the request's scheme and its ``Host`` header
when that is a well-formed ``host[:port]``; else ``SERVER_NAME`` and
``SERVER_PORT``; else ``localhost``. A forged ``Host`` (spaces, CR/LF, a path,
user info) never reaches a generated URL. Paths are percent-encoded from the
raw bytes of their PEP 3333 string, so no CR/LF can reach a header.
"""
from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import quote

from cliquet_wsgi.errors import ConfigurationError

#: A DNS name or an IPv4 address, or a bracketed IPv6 address, with an optional port.
HOST = re.compile(r"([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
#: pchar of RFC 3986 and "/" (besides the letters, digits and "_.-~" quote() always keeps).
PATH_SAFE = "/!$&'()*+,;=:@"


def check_http_host(value: str | None) -> str | None:
    """``value`` if it is a valid ``http_host`` setting (or None), else a ConfigurationError."""
    if value is not None and not HOST.fullmatch(value):
        raise ConfigurationError(f"Setting 'http_host' must be a host[:port], got {value!r}")
    return value


def request_origin(environ: Mapping[str, Any], http_scheme: str | None = None, http_host: str | None = None) -> str:
    """``scheme://host[:port]`` for links in the answer to this request (no trailing slash)."""
    scheme = http_scheme or environ.get("wsgi.url_scheme") or "http"
    host = http_host
    if not host:
        host = environ.get("HTTP_HOST", "")
        if not HOST.fullmatch(host):
            host = environ.get("SERVER_NAME", "localhost")
            port = str(environ.get("SERVER_PORT", ""))
            if port and port != _DEFAULT_PORTS.get(scheme):
                host = f"{host}:{port}"
            if not HOST.fullmatch(host):
                host = "localhost"
    return f"{scheme}://{host}"


def quote_raw(text: str, safe: str) -> str:
    """Percent-encode the raw bytes behind a PEP 3333 (latin-1) string, keeping ``safe``: no CR/LF survives (I6)."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:  # a server that did not follow PEP 3333
        raw = text.encode("utf-8", "surrogatepass")
    return quote(raw, safe=safe)


def quote_path(path: str) -> str:
    """``path`` (``SCRIPT_NAME``, ``PATH_INFO``…) as it goes into a generated URL."""
    return quote_raw(path, PATH_SAFE)
