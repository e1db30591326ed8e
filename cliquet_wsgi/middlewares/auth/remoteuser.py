"""Trust a user name set by an authenticating reverse proxy in a request header.

For deployments where a proxy (Apache ``mod_auth_*``, nginx ``auth_request``,
an SSO gateway) authenticates users and forwards the name in a header such as
``X-Remote-User``. Off by default.

RISK: a header is just client input. Anyone who can reach the application
without going through the proxy can send ``X-Remote-User: admin`` and become
``admin``. The header is therefore only trusted when the connection comes from
one of ``trusted_proxies`` (``REMOTE_ADDR``), and the policy refuses to start
without that list. The proxy itself MUST remove any incoming copy of the
header from clients, and the application port must not be reachable directly.
If the application runs behind several proxy hops, ``REMOTE_ADDR`` is the last
hop: list that one. In a batch sub-request only the value the proxy put on the
batch request itself is trusted (a sub-request's own headers come from the
client's JSON body, which the proxy never inspects).

Options: ``header`` (default ``X-Remote-User``), ``trusted_proxies`` (IPs,
space- or comma-separated).
"""
from __future__ import annotations

import hmac
import ipaddress
import re
from typing import Any, Mapping

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.auth.base import AuthenticationPolicy
from cliquet_wsgi.settings import as_list

_HEADER = re.compile(r"[A-Za-z0-9-]+")
_MAX_NAME_CHARS = 256


class RemoteUserPolicy(AuthenticationPolicy):
    """User name from a header set by a trusted authenticating proxy."""

    options = frozenset({"header", "trusted_proxies"})

    def __init__(self, name: str, options: Mapping[str, Any], *, registry: Any, userid_hmac_secret: str) -> None:
        super().__init__(name, options, registry=registry, userid_hmac_secret=userid_hmac_secret)
        header = str(options.get("header") or "X-Remote-User").strip()
        if not _HEADER.fullmatch(header):
            raise ConfigurationError(f"Setting 'multiauth.policy.{name}.header' is not a header name: {header!r}")
        # NOTE: '-' and '_' both become '_' in WSGI keys; servers differ in whether they
        # pass underscore headers, so only dash spellings are accepted as the setting.
        self._key = "HTTP_" + header.upper().replace("-", "_")
        proxies = as_list(options.get("trusted_proxies"))
        if not proxies:
            raise ConfigurationError(
                f"Authentication policy {name!r} trusts the {header} header: set "
                f"multiauth.policy.{name}.trusted_proxies to the IP addresses of the authenticating "
                "proxies, otherwise any client could impersonate any user."
            )
        try:
            self._proxies = frozenset(ipaddress.ip_address(p) for p in proxies)
        except ValueError as exc:
            raise ConfigurationError(f"Setting 'multiauth.policy.{name}.trusted_proxies': {exc}") from None

    def _trusted(self, environ: Mapping[str, Any]) -> bool:
        try:
            return ipaddress.ip_address(str(environ.get("REMOTE_ADDR", "")).strip()) in self._proxies
        except ValueError:
            return False

    def authenticate(self, environ: dict[str, Any]) -> str | None:
        value = environ.get(self._key)
        if not value or not self._trusted(environ):
            return None
        batch = environ.get(keys.BATCH)
        if batch is not None:
            # A batch sub-request carries headers chosen by the client in the JSON
            # body, behind the proxy's back: only the proxy's own value (the one on
            # the batch request itself) is trusted.
            parent = (batch.get("parent_headers") or {}).get(self._key) if isinstance(batch, dict) else None
            if parent is None or not hmac.compare_digest(parent.encode("latin-1"), value.encode("latin-1")):
                return None
        value = value.strip()
        if not value or len(value) > _MAX_NAME_CHARS or not value.isprintable():
            return None
        return value
