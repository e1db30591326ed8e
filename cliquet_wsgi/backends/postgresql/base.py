"""What the three PostgreSQL backends share: settings, the pool, ping, schema."""
from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator, Mapping

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.backends.postgresql import schema
from cliquet_wsgi.backends.postgresql.pool import Pool, get_pool

#: Defaults used when a kind has no setting of its own (e.g. ``cache_pool_recycle``).
_FALLBACKS = {
    "pool_size": 25,
    "maxoverflow": 5,
    "pool_timeout": 30.0,
    "pool_recycle": -1,
    "connect_timeout_seconds": 10.0,
    "statement_timeout_seconds": 30.0,
    "max_fetch_size": 10000,
    "prepared_statements": True,
}


def _import_driver() -> None:
    try:
        import pg8000.dbapi  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "The PostgreSQL backends need pg8000: pip install 'cliquet-wsgi[postgresql]'"
        ) from None


def kind_setting(settings: Mapping[str, Any], kind: str, name: str) -> Any:
    """``<kind>_<name>``, else ``storage_<name>``, else the built-in default."""
    for key in (f"{kind}_{name}", f"storage_{name}"):
        if settings.get(key) is not None:
            return settings[key]
    return _FALLBACKS[name]


def dumps(value: Any) -> str:
    """JSON text for a ``%s::jsonb`` parameter."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class PostgreSQLBackend:
    """Mixin: one pool (shared per URL), transactions, ping, schema."""

    kind = ""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Any:
        _import_driver()
        url = settings.get(f"{cls.kind}_url") or ""
        if not url:
            raise ConfigurationError(f"Setting '{cls.kind}_url' is required for the PostgreSQL {cls.kind} backend")
        pool = get_pool(
            url,
            size=kind_setting(settings, cls.kind, "pool_size"),
            max_overflow=kind_setting(settings, cls.kind, "maxoverflow"),
            timeout=kind_setting(settings, cls.kind, "pool_timeout"),
            recycle=kind_setting(settings, cls.kind, "pool_recycle"),
            connect_timeout=kind_setting(settings, cls.kind, "connect_timeout_seconds"),
            statement_timeout=kind_setting(settings, cls.kind, "statement_timeout_seconds"),
            prepare=bool(kind_setting(settings, cls.kind, "prepared_statements")),
        )
        return cls(pool, settings)  # type: ignore[call-arg]

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._joined()

    @contextlib.contextmanager
    def _joined(self) -> Iterator[None]:
        with self.pool.transaction():
            yield

    def ping(self) -> bool:
        try:
            with self.pool.transaction() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            return True
        except Exception:
            return False

    def initialize_schema(self) -> list[str]:
        with self.pool.transaction() as cursor:
            return schema.migrate(cursor, self.kind)

    def close(self) -> None:
        self.pool.dispose()
