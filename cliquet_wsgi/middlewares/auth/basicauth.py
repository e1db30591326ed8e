"""HTTP Basic authentication without an account store (PROTOCOL §8).

Any ``username:password`` pair is accepted and becomes the identity
``hex(HMAC-SHA256(userid_hmac_secret, "username:password"))``: whoever knows
the pair is that user; a different password is a different user. With an
empty or public secret anybody could compute user ids from guessed
credentials, hence the middleware refuses to start without a secret.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Mapping

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.auth.base import AuthenticationPolicy, authorization


def basicauth_user_id(secret: str, username: str, password: str) -> str:
    """Unprefixed user id of a Basic Auth pair (the four vectors of PROTOCOL §8)."""
    message = f"{username}:{password}".encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def parse_basic(credentials: str) -> tuple[str, str] | None:
    """``(username, password)`` from the base64 part, or ``None`` when unusable."""
    try:
        decoded = base64.b64decode(credentials.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username:
        return None
    return username, password


class BasicAuthPolicy(AuthenticationPolicy):
    """``Authorization: Basic …`` -> HMAC of the pair; malformed -> anonymous."""

    capability = ("Basic Auth: any user/password pair is an identity.", "https://tools.ietf.org/html/rfc7617")

    def __init__(self, name: str, options: Mapping[str, Any], *, registry: Any, userid_hmac_secret: str) -> None:
        super().__init__(name, options, registry=registry, userid_hmac_secret=userid_hmac_secret)
        if not userid_hmac_secret:
            raise ConfigurationError(
                f"Authentication policy {name!r} (Basic Auth) needs 'userid_hmac_secret': user ids are "
                "HMAC(secret, 'user:password'), so with an empty secret anyone can compute every user id "
                "from guessed credentials. Set a long random userid_hmac_secret (e.g. "
                "`python3 -c 'import secrets; print(secrets.token_hex(32))'`) and keep it stable: "
                "changing it changes every user id."
            )
        self._secret = userid_hmac_secret

    def authenticate(self, environ: dict[str, Any]) -> str | None:
        credentials = authorization(environ, "basic")
        if credentials is None:
            return None
        pair = parse_basic(credentials)
        if pair is None:
            return None
        return basicauth_user_id(self._secret, *pair)

    def challenge(self) -> str | None:
        return 'Basic realm="Realm"'
