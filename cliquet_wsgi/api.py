"""What an application view reads from the WSGI environ.

The middlewares of the stack leave these in ``environ``; a Django, Flask,
Bottle or plain WSGI view below them uses these functions rather than the raw
keys::

    from cliquet_wsgi import api

    def score(environ, start_response):
        storage = api.get_storage(environ)
        user_id = api.get_user_id(environ)   # None when anonymous
        ...

Each returns ``None`` when the middleware that provides it is absent.
"""
from __future__ import annotations

from typing import Any, Mapping

from cliquet_wsgi import environ as keys


def get_registry(environ: Mapping[str, Any]) -> Any:
    """The stack's :class:`~cliquet_wsgi.registry.Registry`."""
    return environ.get(keys.REGISTRY)


def get_storage(environ: Mapping[str, Any]) -> Any:
    registry = environ.get(keys.REGISTRY)
    return registry.storage if registry is not None else None


def get_cache(environ: Mapping[str, Any]) -> Any:
    registry = environ.get(keys.REGISTRY)
    return registry.cache if registry is not None else None


def get_permission(environ: Mapping[str, Any]) -> Any:
    registry = environ.get(keys.REGISTRY)
    return registry.permission if registry is not None else None


def get_user_id(environ: Mapping[str, Any]) -> str | None:
    """Prefixed user id (``basicauth:…``) set by the auth middleware, or ``None``."""
    return environ.get(keys.USER_ID)


def get_principals(environ: Mapping[str, Any]) -> list[str]:
    return list(environ.get(keys.PRINCIPALS) or ["system.Everyone"])
