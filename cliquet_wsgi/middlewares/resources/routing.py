"""Path -> (resource, endpoint) matching, a thin explicit layer over ``routes.Mapper``.

The mapper is built with ``register=False`` (no thread-local global config)
and ``explicit=True`` (no implicit defaults), with minimization off, so that
``/articles/`` never matches ``/articles``: trailing slashes are the version
layer's business (§1.2).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

from routes import Mapper

from cliquet_wsgi.middlewares.resources.definition import CompiledResource

COLLECTION = "collection"
RECORD = "record"


class Match(NamedTuple):
    resource: CompiledResource
    endpoint: str  # COLLECTION or RECORD
    slots: dict[str, str]  # parent placeholders and, for records, ``id``
    pattern: str

    @property
    def route_name(self) -> str:
        return f"{self.resource.name}-{self.endpoint}"


class Router:
    """Matches unprefixed paths to resource endpoints."""

    def __init__(self, resources: list[CompiledResource]) -> None:
        self._mapper = Mapper(register=False, explicit=True)
        self._mapper.minimization = False
        self._targets: dict[str, tuple[CompiledResource, str, str]] = {}
        for resource in resources:
            for endpoint, path in ((COLLECTION, resource.collection_path), (RECORD, resource.record_path)):
                route_name = f"{resource.name}-{endpoint}"
                if route_name in self._targets:
                    raise ValueError(f"Two resources named {resource.name!r}")
                # One path segment per placeholder: ids never contain "/".
                requirements = {slot: "[^/]+" for slot in (*resource.parent_slots, "id")}
                self._mapper.connect(route_name, path, requirements=requirements, _route_name=route_name)
                self._targets[route_name] = (resource, endpoint, path)

        # PERF: routes' matching costs more than the rest of routing; a path's
        # match never changes, so recent ones are remembered (per router).
        self._cached = functools.lru_cache(maxsize=1024)(self._match)

    def _match(self, path: str) -> tuple[CompiledResource, str, tuple[tuple[str, str], ...], str] | None:
        found = self._mapper.match(path)
        if found is None:
            return None
        route_name = found.pop("_route_name")
        resource, endpoint, pattern = self._targets[route_name]
        return resource, endpoint, tuple((k, str(v)) for k, v in found.items()), pattern

    def match(self, path: str) -> Match | None:
        found = self._cached(path)
        if found is None:
            return None
        resource, endpoint, slots, pattern = found
        # A fresh slots dict per call: callers own it.
        return Match(resource, endpoint, dict(slots), pattern)
