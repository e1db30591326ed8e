"""TLS to PostgreSQL with libpq's ``sslmode`` semantics, set in the database URL.

``postgresql://user@host/db?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem``

=============  ===========================================================
``sslmode``    meaning
=============  ===========================================================
``disable``    plain TCP, TLS is never asked for
``prefer``     TLS when the server offers it, unverified; else plain
               (the default, as libpq's)
``require``    TLS or no connection; the certificate is not verified
``verify-ca``  TLS with a certificate signed by ``sslrootcert`` (else the
               system's trusted CAs)
``verify-full`` as ``verify-ca``, and the certificate names the URL's host
=============  ===========================================================

``sslcert`` and ``sslkey`` give a client certificate. Unlike libpq,
``require`` never turns into ``verify-ca`` because a root certificate file
exists: the URL says all there is.

Why we negotiate instead of pg8000: given no context, pg8000 builds a new
one for every connection (tens of milliseconds of CPU for the system's CA
store) and, with ``prefer``, silently accepts any certificate. Here the
context is built once per pool, and a bad ``sslrootcert`` fails at startup.
"""
from __future__ import annotations

import dataclasses
import socket
import ssl
import struct
from urllib.parse import parse_qsl, urlsplit

from cliquet_wsgi.errors import ConfigurationError

SSL_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")
_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
#: The SSLRequest message: length 8, then the code 1234 5679 (PostgreSQL protocol §55.2.10).
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


@dataclasses.dataclass(frozen=True)
class TLSSettings:
    mode: str = "prefer"
    rootcert: str | None = None
    cert: str | None = None
    key: str | None = None


def parse_tls(url: str) -> TLSSettings:
    """The TLS parameters of a database URL's querystring; anything else there is a ConfigurationError."""
    values: dict[str, str] = {}
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name not in _PARAMETERS:
            raise ConfigurationError(
                f"Unknown PostgreSQL URL parameter {name!r} (supported: {', '.join(_PARAMETERS)})"
            )
        values[name] = value
    mode = values.get("sslmode", "prefer")
    if mode not in SSL_MODES:
        raise ConfigurationError(f"PostgreSQL sslmode must be one of {', '.join(SSL_MODES)}, not {mode!r}")
    if "sslkey" in values and "sslcert" not in values:
        raise ConfigurationError("PostgreSQL sslkey needs sslcert")
    return TLSSettings(mode, values.get("sslrootcert") or None, values.get("sslcert") or None,
                       values.get("sslkey") or None)


def make_context(settings: TLSSettings) -> ssl.SSLContext | None:
    """The one SSL context of a pool (None with ``disable``); unreadable files are a ConfigurationError."""
    if settings.mode == "disable":
        return None
    verify = settings.mode in ("verify-ca", "verify-full")
    try:
        if verify:
            context = ssl.create_default_context(cafile=settings.rootcert)
            context.check_hostname = settings.mode == "verify-full"
        else:
            # NOTE: no CA store to load: nothing is verified in these modes.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if settings.cert:
            context.load_cert_chain(settings.cert, settings.key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"PostgreSQL TLS files could not be loaded: {exc}") from None
    return context


class TLSRefused(ConnectionError):
    """The server does not speak TLS and ``sslmode`` requires it."""


def negotiate(sock: socket.socket, settings: TLSSettings, context: ssl.SSLContext | None,
              host: str) -> socket.socket:
    """The connected ``sock``, switched to TLS as ``settings`` say, before the startup message.

    Runs under the socket's timeout (the connect timeout). Raises
    :class:`TLSRefused`, ``ssl.SSLError`` (e.g. a certificate that does not
    verify) or ``OSError``: all are connection failures to the pool.
    """
    if context is None:
        return sock
    sock.sendall(_SSL_REQUEST)
    answer = sock.recv(1)
    if answer == b"S":
        return context.wrap_socket(sock, server_hostname=host)
    if answer == b"N":
        if settings.mode == "prefer":
            return sock
        raise TLSRefused(f"the server does not accept TLS (sslmode={settings.mode})")
    # An ErrorResponse ("E") from a server too old for SSLRequest, or a closed connection.
    raise ConnectionError(f"unexpected answer to the TLS request: {answer!r}")
