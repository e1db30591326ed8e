"""The origin (``scheme://host``) of the URLs the middlewares generate: ``Location``, ``Next-Page``, hello's ``url``.

One rule for every middleware (RELIABILITY S8): the configured ``http_scheme``
and ``http_host`` when set; else the request's scheme and its ``Host`` header
when that is a well-formed ``host[:port]``; else ``SERVER_NAME`` and
``SERVER_PORT``; else ``localhost``. A forged ``Host`` (spaces, CR/LF, a path,
user info) never reaches a generated URL.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from cliquet_wsgi.errors import ConfigurationError

#: A DNS name or an IPv4 address, or a bracketed IPv6 address, with an optional port.
HOST = re.compile(r"([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


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
