"""PasteDeploy glue: ``filter_factory`` for every middleware, from one helper.

A middleware class takes the settings it needs as keyword-only arguments
named exactly like the settings (``cors_origins=...``), plus optionally
``registry=`` (the stack's :class:`~cliquet_wsgi.registry.Registry`) and
``settings=`` (the whole dict, for middlewares with dynamic per-resource
settings). :func:`make_filter_factory` reads that signature, so a module only
writes::

    filter_factory = make_filter_factory(CORSMiddleware)

In ``paste.ini`` settings shared by the stack go in ``[DEFAULT]`` (PasteDeploy
passes them to every filter as ``global_conf``); a filter's own section may
add more. Both are loaded by :func:`cliquet_wsgi.settings.load_settings`.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from cliquet_wsgi.registry import Registry, named_registry
from cliquet_wsgi.settings import load_settings


def middleware_kwargs(cls: type, settings: Mapping[str, Any], registry: Registry | None) -> dict[str, Any]:
    """The keyword arguments of ``cls.__init__`` that ``settings`` provides."""
    parameters = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    for name, parameter in parameters.items():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if name == "registry":
            kwargs[name] = registry
        elif name == "settings":
            kwargs[name] = dict(settings)
        elif name in settings:
            kwargs[name] = settings[name]
    return kwargs


def registry_for(global_conf: Mapping[str, Any], settings: Mapping[str, Any]) -> Registry:
    """The registry shared by every filter loaded from the same ini file."""
    name = settings.get("registry_name") or str(global_conf.get("__file__") or "paste")
    return named_registry(name, settings)


def make_filter_factory(cls: type) -> Callable[..., Callable[[Any], Any]]:
    """A ``paste.filter_factory`` building ``cls`` from ``[DEFAULT]`` + its section."""

    def filter_factory(global_conf: Mapping[str, Any], **local_conf: Any) -> Callable[[Any], Any]:
        settings = load_settings(global_conf, local_conf)
        registry = registry_for(global_conf, settings)
        kwargs = middleware_kwargs(cls, settings, registry)

        def make(app: Any) -> Any:
            return cls(app, **kwargs)

        return make

    filter_factory.__doc__ = f"PasteDeploy filter factory for :class:`{cls.__module__}.{cls.__name__}`."
    return filter_factory
