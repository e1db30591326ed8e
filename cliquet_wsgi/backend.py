"""What every backend (storage, cache, permission) offers, and its exceptions.

A backend implementation is a class in a module of ``cliquet_wsgi.backends``
(or any importable module), built by ``from_settings(settings)`` and selected
by ``<kind>_backend`` (dotted path) or by the scheme of ``<kind>_url``
(:data:`cliquet_wsgi.registry.BACKEND_SCHEMES`). Driver errors are translated
into :class:`~cliquet_wsgi.errors.BackendError` at one boundary in each
implementation, so callers only ever see the exceptions of the contracts.
"""
from __future__ import annotations

import abc
from typing import Any, Mapping

from cliquet_wsgi.errors import BackendError

__all__ = ["Backend", "BackendError"]


class Backend(abc.ABC):
    """Base of the three contracts."""

    #: ``"storage"``, ``"cache"`` or ``"permission"``: which settings prefix it reads.
    kind: str = ""

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "Backend":
        """Build the backend from the stack settings (``<kind>_url``, pool sizes…)."""

    @abc.abstractmethod
    def ping(self) -> bool:
        """Heartbeat check: ``True`` when a round-trip works. Never raises."""

    def initialize_schema(self) -> list[str]:
        """Create or upgrade tables, idempotently; return one line per action taken.

        Lines read like ``"storage: created schema version 1"`` or
        ``"storage: schema already at version 1"``; ``cliquet-wsgi migrate``
        prints them. Backends without a schema return ``[]``.
        """
        return []

    @abc.abstractmethod
    def flush(self) -> None:
        """Remove everything this backend stores (tests, ``cliquet-wsgi flush``)."""

    def close(self) -> None:
        """Release connections and files."""
