"""OAuth2 bearer tokens (``Authorization: Bearer <token>``), checked by a callable
or by a token introspection endpoint (RFC 7662).

Options (``multiauth.policy.<name>.<option>``), exactly one of the first two:

* ``verifier``: dotted path to ``func(token) -> user id | None`` (or the callable);
* ``introspection_url``: ``http(s)://`` endpoint; the token is POSTed as
  ``token=…`` with HTTP Basic ``client_id``/``client_secret``; an answer with
  ``"active": true`` and a ``sub`` authenticates ``sub``;
* ``client_id``, ``client_secret``, ``timeout_seconds`` (default 2);
* ``cache_ttl_seconds`` (default 300, 0 = no cache): positive and negative
  results are kept in the stack's cache backend, if one is configured, under
  ``HMAC(key, token)`` (``key`` = ``userid_hmac_secret`` or a random
  per-process key): the cache never holds the token, and a different token
  can never hit another token's entry. A token revoked at the server is
  accepted at most ``cache_ttl_seconds`` (or until its ``exp``) longer.

Failures: a token refused by the verifier or inactive at the server raises
:class:`InvalidCredentials` (401). An unreachable or broken introspection
endpoint is logged and the request is anonymous (never a 500); a failing cache
is logged and treated as a miss. The token itself is never logged.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Mapping

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.auth.base import AuthenticationPolicy, InvalidCredentials, authorization
from cliquet_wsgi.registry import import_dotted
from cliquet_wsgi.settings import as_float, as_natural

logger = logging.getLogger(__name__)

#: RFC 6750 §2.1 ``b64token``; anything else is refused without a round-trip.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MAX_TOKEN_CHARS = 4096
_MAX_INTROSPECTION_BYTES = 65536

#: Key for cache entries when no ``userid_hmac_secret`` is set. Per process, so
#: entries written by other processes are simply misses.
_PROCESS_KEY = secrets.token_bytes(32)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # NOTE: a redirected introspection POST would be replayed as a GET by urllib,
    # possibly to another host with our client credentials: treat it as a failure.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


class IntrospectionError(Exception):
    """The introspection endpoint could not give an answer (logged, request anonymous)."""


class BearerPolicy(AuthenticationPolicy):
    """Bearer tokens verified by a callable or an RFC 7662 introspection endpoint."""

    options = frozenset(
        {"verifier", "introspection_url", "client_id", "client_secret", "timeout_seconds", "cache_ttl_seconds"}
    )
    capability = ("OAuth2 bearer tokens (RFC 6750).", "https://tools.ietf.org/html/rfc6750")

    def __init__(self, name: str, options: Mapping[str, Any], *, registry: Any, userid_hmac_secret: str) -> None:
        super().__init__(name, options, registry=registry, userid_hmac_secret=userid_hmac_secret)
        verifier = options.get("verifier") or None
        url = str(options.get("introspection_url") or "").strip() or None
        if (verifier is None) == (url is None):
            raise ConfigurationError(
                f"Authentication policy {name!r} needs exactly one of multiauth.policy.{name}.verifier "
                f"and multiauth.policy.{name}.introspection_url"
            )
        self._verifier: Callable[[str], Any] | None = None
        if verifier is not None:
            if isinstance(verifier, str):
                try:
                    verifier = import_dotted(verifier)
                except (ImportError, AttributeError) as exc:
                    raise ConfigurationError(
                        f"Setting 'multiauth.policy.{name}.verifier': cannot import {verifier!r}: {exc}"
                    ) from None
            if not callable(verifier):
                raise ConfigurationError(f"Setting 'multiauth.policy.{name}.verifier' is not callable")
            self._verifier = verifier
        self._url = url
        if url is not None:
            scheme = urllib.parse.urlsplit(url).scheme
            if scheme not in ("http", "https"):
                raise ConfigurationError(
                    f"Setting 'multiauth.policy.{name}.introspection_url' must be an http(s) URL, got {url!r}"
                )
            client_id = str(options.get("client_id") or "")
            client_secret = str(options.get("client_secret") or "")
            # RFC 6749 §2.3.1: client credentials are form-encoded before Basic encoding.
            pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}"
            self._client_auth = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
            self._has_client_auth = bool(client_id)
            self._opener = urllib.request.build_opener(_NoRedirect)
        try:
            self._timeout = as_float(options.get("timeout_seconds", 2.0))
            self._ttl = as_natural(options.get("cache_ttl_seconds", 300))
        except ValueError as exc:
            raise ConfigurationError(f"Authentication policy {name!r}: {exc}") from None
        if self._timeout <= 0:
            raise ConfigurationError(f"Setting 'multiauth.policy.{name}.timeout_seconds' must be > 0")
        self._cache_key = (userid_hmac_secret.encode("utf-8") if userid_hmac_secret else _PROCESS_KEY)

    def challenge(self) -> str | None:
        return 'Bearer realm="Realm"'

    def authenticate(self, environ: dict[str, Any]) -> str | None:
        token = authorization(environ, "bearer")
        if token is None:
            return None
        if len(token) > _MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
            raise InvalidCredentials(f"{self.name}: malformed bearer token")
        key = self._key(token)
        cached = self._cache_get(key)
        if cached is not None:
            user_id = cached.get("user_id")
            if not user_id:
                raise InvalidCredentials(f"{self.name}: token refused (cached)")
            return str(user_id)
        try:
            user_id, ttl = self._verify(token)
        except IntrospectionError as exc:
            logger.warning("Bearer policy %r: introspection failed, request is anonymous: %s", self.name, exc)
            return None
        self._cache_set(key, user_id, ttl)
        if not user_id:
            raise InvalidCredentials(f"{self.name}: token refused")
        return user_id

    # -- verification ------------------------------------------------------------------

    def _verify(self, token: str) -> tuple[str | None, float]:
        """``(user id or None, cache ttl)``; raises :class:`IntrospectionError`."""
        if self._verifier is not None:
            try:
                result = self._verifier(token)
            except Exception as exc:
                # A broken verifier must not turn every request into a 500.
                logger.exception("Bearer policy %r: verifier raised", self.name)
                raise IntrospectionError(type(exc).__name__) from None
            return (str(result) if result else None), float(self._ttl)
        return self._introspect(token)

    def _introspect(self, token: str) -> tuple[str | None, float]:
        data = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"}).encode("ascii")
        request = urllib.request.Request(self._url, data=data, method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        request.add_header("Accept", "application/json")
        if self._has_client_auth:
            request.add_header("Authorization", self._client_auth)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                raw = response.read(_MAX_INTROSPECTION_BYTES + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise IntrospectionError(f"HTTP {exc.code} from introspection endpoint") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # OSError covers socket timeouts and resets; the token is not in the message.
            raise IntrospectionError(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
        if len(raw) > _MAX_INTROSPECTION_BYTES:
            raise IntrospectionError("introspection answer too large")
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise IntrospectionError("introspection answer is not JSON") from None
        if not isinstance(answer, dict):
            raise IntrospectionError("introspection answer is not a JSON object")
        ttl = float(self._ttl)
        if answer.get("active") is not True:
            return None, ttl
        subject = answer.get("sub")
        if not isinstance(subject, str) or not subject:
            raise IntrospectionError("active token without 'sub'")
        expires = answer.get("exp")
        if isinstance(expires, (int, float)) and not isinstance(expires, bool):
            # Never cache a positive answer beyond the token's own expiry.
            remaining = expires - time.time()
            if remaining <= 0:
                return None, ttl
            ttl = min(ttl, remaining)
        return subject, ttl

    # -- cache ----------------------------------------------------------------------

    def _key(self, token: str) -> str:
        digest = hmac.new(self._cache_key, token.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"auth:{self.name}:{digest}"

    def _cache(self) -> Any:
        if self._ttl <= 0 or self.registry is None:
            return None
        return self.registry.cache

    def _cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            cache = self._cache()
            value = cache.get(key) if cache is not None else None
        except Exception:
            logger.warning("Bearer policy %r: cache read failed, treated as a miss", self.name, exc_info=True)
            return None
        return value if isinstance(value, dict) else None

    def _cache_set(self, key: str, user_id: str | None, ttl: float) -> None:
        if ttl <= 0:
            return
        try:
            cache = self._cache()
            if cache is not None:
                cache.set(key, {"user_id": user_id or ""}, ttl=ttl)
        except Exception:
            logger.warning("Bearer policy %r: cache write failed", self.name, exc_info=True)
