"""PostgreSQL backends (storage, permission, cache) through pg8000.

Selected by ``<kind>_url = postgresql://user[:password]@host[:port]/db`` (or
``postgres://``). Backends of one process pointing at the same URL share one
connection pool and the calling thread's transaction (see :mod:`.pool`).
Create or upgrade the tables with ``cliquet-wsgi migrate``
(``initialize_schema()``), which is idempotent and safe to run concurrently.
"""
from cliquet_wsgi.backends.postgresql.cache import PostgreSQLCache
from cliquet_wsgi.backends.postgresql.permission import PostgreSQLPermission
from cliquet_wsgi.backends.postgresql.storage import PostgreSQLStorage

STORAGE = PostgreSQLStorage
CACHE = PostgreSQLCache
PERMISSION = PostgreSQLPermission

__all__ = ["STORAGE", "CACHE", "PERMISSION", "PostgreSQLStorage", "PostgreSQLCache", "PostgreSQLPermission"]
