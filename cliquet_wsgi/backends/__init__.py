"""Backend implementations: memory, SQLite, PostgreSQL (pg8000), memcached (pymemcache)."""
