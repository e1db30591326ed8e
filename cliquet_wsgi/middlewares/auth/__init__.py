"""Authentication: turn request credentials into the user id and principals of the protocol.

Use it wherever the protocol's identities are needed (resources, hello's
``user``, permissions). Not needed for an application that does its own
authentication and never looks at ``cliquet.*`` identities; note that it
always rewrites ``REMOTE_USER``, so an inner framework that trusts
``REMOTE_USER`` (Django's ``RemoteUserMiddleware``) sees *this* layer's user.

Policies (PROTOCOL §8) are tried in the order of ``multiauth_policies``; the
first one returning an id wins and the user id is ``<policy name>:<id>``.
Built in: ``basicauth`` (:mod:`.basicauth`), ``bearer`` (:mod:`.bearer`),
``remoteuser`` (:mod:`.remoteuser`); any other policy is a class implementing
:class:`~.base.AuthenticationPolicy` named by ``multiauth.policy.<name>.use``.

401 rule: requests without usable credentials are anonymous and pass through
(the endpoint decides whether it needs a user). A request is answered
401/104 here, with one ``WWW-Authenticate`` per policy that has a challenge,
only when a policy recognised credentials of its own scheme and refused them
(:class:`~.base.InvalidCredentials`, e.g. an inactive bearer token) and no
policy authenticated it. Malformed Basic credentials stay anonymous (§8).
"""
from __future__ import annotations

import logging
import re
import time
from typing import Any, Iterable, Mapping

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError, error_response, unauthorized
from cliquet_wsgi.instrumentation import notify
from cliquet_wsgi.middlewares.auth.base import AuthenticationPolicy, InvalidCredentials
from cliquet_wsgi.middlewares.auth.basicauth import BasicAuthPolicy, basicauth_user_id
from cliquet_wsgi.middlewares.auth.bearer import BearerPolicy
from cliquet_wsgi.middlewares.auth.remoteuser import RemoteUserPolicy
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry, import_dotted

__all__ = [
    "AuthMiddleware",
    "AuthenticationPolicy",
    "InvalidCredentials",
    "BasicAuthPolicy",
    "BearerPolicy",
    "RemoteUserPolicy",
    "basicauth_user_id",
    "filter_factory",
]

logger = logging.getLogger(__name__)

#: Built-in policy names usable as ``multiauth_policies`` entries or as ``use`` values.
BUILTIN_POLICIES: dict[str, type[AuthenticationPolicy]] = {
    "basicauth": BasicAuthPolicy,
    "bearer": BearerPolicy,
    "remoteuser": RemoteUserPolicy,
}

EVERYONE = "system.Everyone"
AUTHENTICATED = "system.Authenticated"

_POLICY_NAME = re.compile(r"[a-z][a-z0-9_]*")
_OPTION_PREFIX = "multiauth.policy."


def build_policies(
    names: Iterable[str], settings: Mapping[str, Any], *, registry: Any, userid_hmac_secret: str
) -> list[AuthenticationPolicy]:
    """Instantiate the policies named in ``multiauth_policies`` from their settings."""
    options: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        if key.startswith(_OPTION_PREFIX):
            policy, _, option = key[len(_OPTION_PREFIX):].partition(".")
            options.setdefault(policy, {})[option] = value
    policies: list[AuthenticationPolicy] = []
    seen: set[str] = set()
    for raw_name in names:
        name = raw_name.strip().lower()
        if not _POLICY_NAME.fullmatch(name):
            raise ConfigurationError(f"Setting 'multiauth_policies': invalid policy name {raw_name!r}")
        if name in seen:
            raise ConfigurationError(f"Setting 'multiauth_policies': policy {name!r} is listed twice")
        seen.add(name)
        own = options.get(name, {})
        use = own.get("use") or name
        if isinstance(use, str):
            cls = BUILTIN_POLICIES.get(use.strip())
            if cls is None:
                if "." not in use and ":" not in use:
                    raise ConfigurationError(
                        f"Authentication policy {name!r}: set multiauth.policy.{name}.use to a dotted path "
                        f"(built-in policies: {', '.join(sorted(BUILTIN_POLICIES))})"
                    )
                try:
                    cls = import_dotted(use.strip())
                except (ImportError, AttributeError) as exc:
                    raise ConfigurationError(
                        f"Setting 'multiauth.policy.{name}.use': cannot import {use!r}: {exc}"
                    ) from None
        else:
            cls = use
        if not (isinstance(cls, type) and issubclass(cls, AuthenticationPolicy)):
            raise ConfigurationError(
                f"Setting 'multiauth.policy.{name}.use' must name an AuthenticationPolicy subclass, got {use!r}"
            )
        policies.append(cls(name, own, registry=registry, userid_hmac_secret=userid_hmac_secret))
    unused = set(options) - seen
    if unused:
        raise ConfigurationError(
            "Settings for authentication policies not listed in 'multiauth_policies': " + ", ".join(sorted(unused))
        )
    return policies


class AuthMiddleware:
    """Authenticate every request with the configured policies and set its principals.

    Settings:
      * ``multiauth_policies``: ordered policy names (default ``basicauth``);
      * ``multiauth.policy.<name>.use`` / ``.<option>``: policy class and options (via ``settings``);
      * ``userid_hmac_secret``: Basic Auth user id key (required when ``basicauth`` is on),
        also keys the bearer token cache.
    Environ: reads ``HTTP_AUTHORIZATION`` (and what policies read), ``REMOTE_USER``, ``cliquet.memo``;
    sets ``cliquet.user_id``, ``cliquet.authn_type``, ``cliquet.principals``, ``cliquet.remote_user_orig``,
    ``cliquet.memo``, ``cliquet.registry``; ``REMOTE_USER`` is always rewritten (prefixed id) or removed.
    Needs: below batch (each sub-request is authenticated); above resources and the app. Uses
    ``registry.permission`` (groups) and ``registry.cache`` (bearer) when configured. Installs
    ``registry.authenticator`` for hello and registers one capability per policy that has one.

    Example::

        app = AuthMiddleware(app, multiauth_policies=["basicauth"], userid_hmac_secret="s3cr3t")
    """

    def __init__(
        self,
        app: Any,
        *,
        registry: Registry | None = None,
        multiauth_policies: Iterable[str] = ("basicauth",),
        userid_hmac_secret: str = "",
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        if settings is None:
            settings = self.registry.settings
        if isinstance(multiauth_policies, str):
            multiauth_policies = multiauth_policies.split()
        self.policies = build_policies(
            multiauth_policies, settings, registry=self.registry, userid_hmac_secret=userid_hmac_secret or ""
        )
        self.challenges = [c for c in (p.challenge() for p in self.policies) if c]
        self.registry.authenticator = self.authenticate
        for policy in self.policies:
            if policy.capability is not None:
                description, url = policy.capability
                self.registry.register_capability(policy.name, description, url)

    def __call__(self, environ: dict[str, Any], start_response):
        environ.setdefault(keys.REGISTRY, self.registry)
        try:
            identity = self._identify(environ)
        except InvalidCredentials:
            self._set_identity(environ, None, None)
            return error_response(unauthorized(self.challenges), start_response)
        if identity is None:
            self._set_identity(environ, None, None)
        else:
            self._set_identity(environ, *identity)
        return self.app(environ, start_response)

    def authenticate(self, environ: dict[str, Any]) -> tuple[str, list[str]] | None:
        """``(user id, principals)`` of a request, or ``None`` when anonymous or refused.

        Installed as ``registry.authenticator`` so that hello, above this layer,
        can show the user. Does not modify ``environ`` apart from ``cliquet.memo``.
        """
        try:
            identity = self._identify(environ)
        except InvalidCredentials:
            return None
        if identity is None:
            return None
        policy_name, user_id = identity
        return user_id, self._principals(environ, user_id)

    # -- internals --------------------------------------------------------------------

    def _identify(self, environ: dict[str, Any]) -> tuple[str, str] | None:
        """``(policy name, prefixed user id)``; raises InvalidCredentials per the 401 rule."""
        refused: InvalidCredentials | None = None
        listeners = self.registry.backend_listeners
        for policy in self.policies:
            started = time.perf_counter() if listeners else 0.0
            try:
                user_id = policy.authenticate(environ)
            except InvalidCredentials as exc:
                refused = exc
                continue
            finally:
                if listeners:
                    # PROTOCOL §12: authentication.<policy name>.<method> timers.
                    notify(listeners, "authentication", policy.name, "authenticate",
                           (time.perf_counter() - started) * 1000.0)
            if user_id:
                return policy.name, f"{policy.name}:{user_id}"
        if refused is not None:
            logger.info("Credentials refused: %s", refused)
            raise refused
        return None

    def _principals(self, environ: dict[str, Any], user_id: str) -> list[str]:
        memo = environ.get(keys.MEMO)
        if memo is None:
            memo = environ[keys.MEMO] = {}
        memo_key = ("principals", user_id)
        principals = memo.get(memo_key)
        if principals is None:
            principals = [EVERYONE, AUTHENTICATED, user_id]
            permission = self.registry.permission
            if permission is not None:
                principals += sorted(set(permission.user_principals(user_id)) - set(principals))
            memo[memo_key] = principals
        return list(principals)

    def _set_identity(self, environ: dict[str, Any], policy_name: str | None, user_id: str | None) -> None:
        if "REMOTE_USER" in environ and keys.REMOTE_USER_ORIG not in environ:
            environ[keys.REMOTE_USER_ORIG] = environ["REMOTE_USER"]
        if user_id is None:
            # NOTE: a REMOTE_USER coming from the server or a client-controlled
            # environ must never look like an identity to frameworks below.
            environ.pop("REMOTE_USER", None)
            environ.pop(keys.USER_ID, None)
            environ.pop(keys.AUTHN_TYPE, None)
            environ[keys.PRINCIPALS] = [EVERYONE]
            return
        environ["REMOTE_USER"] = user_id
        environ[keys.USER_ID] = user_id
        environ[keys.AUTHN_TYPE] = policy_name
        environ[keys.PRINCIPALS] = self._principals(environ, user_id)


filter_factory = make_filter_factory(AuthMiddleware)
