"""The authentication policy interface shared by the auth middleware and its policies.

A policy turns the credentials of a request into an **unprefixed** user id.
The middleware prefixes it with the policy's configured name (PROTOCOL §8:
``<name>:<id>``), so one class can serve several policies (``fxa`` and
``bearer`` both using :class:`~cliquet_wsgi.middlewares.auth.bearer.BearerPolicy`).

Writing a policy: subclass :class:`AuthenticationPolicy`, implement
:meth:`~AuthenticationPolicy.authenticate`, and point
``multiauth.policy.<name>.use`` at the class. Options come from
``multiauth.policy.<name>.<option>`` settings, passed as the ``options`` dict.
"""
from __future__ import annotations

import abc
from typing import Any, Mapping

from cliquet_wsgi.errors import ConfigurationError


class InvalidCredentials(Exception):
    """Raised by :meth:`AuthenticationPolicy.authenticate` for credentials in the
    policy's own scheme that it checked and refused (an inactive bearer token).

    The middleware answers 401 when no other policy authenticates the request.
    Credentials a policy cannot even read (malformed Basic) are *not* refused:
    the policy returns ``None`` and the request goes on anonymously (§8).
    The message is for logs only and must never contain the credentials.
    """


class AuthenticationPolicy(abc.ABC):
    """One way of authenticating a request.

    * :attr:`name`: the configured policy name (user id prefix);
    * :meth:`authenticate`: unprefixed user id, ``None`` (not mine / anonymous),
      or raise :class:`InvalidCredentials`;
    * :meth:`challenge`: the ``WWW-Authenticate`` value this policy offers on 401;
    * :attr:`capability`: ``(description, url)`` advertised in hello, or ``None``.

    Implementations are thread-safe and keep no per-request state.
    """

    #: Option names accepted from ``multiauth.policy.<name>.<option>``;
    #: anything else is a startup error (a typo must not disable a check).
    options: frozenset[str] = frozenset()
    capability: tuple[str, str] | None = None

    def __init__(self, name: str, options: Mapping[str, Any], *, registry: Any, userid_hmac_secret: str) -> None:
        unknown = set(options) - set(self.options) - {"use"}
        if unknown:
            raise ConfigurationError(
                f"Unknown option(s) for authentication policy {name!r}: "
                + ", ".join(f"multiauth.policy.{name}.{o}" for o in sorted(unknown))
            )
        self.name = name
        self.registry = registry

    @abc.abstractmethod
    def authenticate(self, environ: dict[str, Any]) -> str | None:
        """The unprefixed user id of the request, or ``None``."""

    def challenge(self) -> str | None:
        return None


def authorization(environ: Mapping[str, Any], scheme: str) -> str | None:
    """The credentials of an ``Authorization: <scheme> <credentials>`` header, else ``None``.

    The scheme is compared case-insensitively (RFC 7235 §2.1).
    """
    header = environ.get("HTTP_AUTHORIZATION")
    if not header:
        return None
    found, _, credentials = header.strip().partition(" ")
    if found.lower() != scheme:
        return None
    return credentials.strip()
