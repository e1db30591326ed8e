"""Versioned schema of the PostgreSQL backends, one migration list per kind.

Each kind (storage, permission, cache) records its version in
``metadata(name, value)`` under ``<kind>_schema_version``. Migration ``n``
(1-based) upgrades version ``n-1`` to ``n``; a new database runs them all. A
migration only ever appends to these lists: never edit a released entry.

Concurrent ``cliquet-wsgi migrate`` runs are serialised by a transaction-scoped
advisory lock, so the second one finds the schema already current.

Timestamps are BIGINT epoch milliseconds (PROTOCOL §15 #34). Records and
tombstones share one table (``deleted`` flag): a ``_since`` poll, which wants
both in ``last_modified`` order, is then a single index range scan.
"""
from __future__ import annotations

from typing import Any

#: Key of the advisory lock held while migrating (arbitrary, fixed).
MIGRATION_LOCK_KEY = 0x636C697175657400  # "cliquet\0"

METADATA = """
CREATE TABLE IF NOT EXISTS metadata (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""

MIGRATIONS: dict[str, list[list[str]]] = {
    "storage": [
        [
            # NOTE: COLLATE "C" makes id order byte order, like the Python backends.
            """
            CREATE TABLE IF NOT EXISTS records (
                collection_id TEXT COLLATE "C" NOT NULL,
                parent_id TEXT COLLATE "C" NOT NULL,
                id TEXT COLLATE "C" NOT NULL,
                last_modified BIGINT NOT NULL,
                deleted BOOLEAN NOT NULL DEFAULT FALSE,
                data JSONB NOT NULL DEFAULT '{}'::jsonb,
                PRIMARY KEY (collection_id, parent_id, id)
            )
            """,
            # PERF: `_since` polls (records and tombstones) and newest-first
            # pages are range scans on this index.
            """
            CREATE INDEX IF NOT EXISTS idx_records_last_modified
                ON records (collection_id, parent_id, last_modified DESC, id)
            """,
            # PERF: the same for plain listings, which skip tombstones.
            """
            CREATE INDEX IF NOT EXISTS idx_records_live_last_modified
                ON records (collection_id, parent_id, last_modified DESC, id)
                WHERE NOT deleted
            """,
            # Sort key of arrays and objects: the JSON text Python's
            # json.dumps(sort_keys=True, separators=(",", ":")) gives, as the
            # reference order (cliquet_wsgi.filtering) uses.
            """
            CREATE OR REPLACE FUNCTION cliquet_canonical_json(value jsonb) RETURNS text
            LANGUAGE plpgsql IMMUTABLE STRICT AS $$
            DECLARE
                result text;
            BEGIN
                CASE jsonb_typeof(value)
                WHEN 'object' THEN
                    SELECT '{' || coalesce(string_agg(to_json(key)::text || ':' || cliquet_canonical_json(item),
                                                      ',' ORDER BY key COLLATE "C"), '') || '}'
                      INTO result FROM jsonb_each(value) AS e(key, item);
                WHEN 'array' THEN
                    SELECT '[' || coalesce(string_agg(cliquet_canonical_json(item), ',' ORDER BY n), '') || ']'
                      INTO result FROM jsonb_array_elements(value) WITH ORDINALITY AS e(item, n);
                ELSE
                    result := value::text;
                END CASE;
                RETURN result;
            END
            $$
            """,
            """
            CREATE TABLE IF NOT EXISTS timestamps (
                collection_id TEXT COLLATE "C" NOT NULL,
                parent_id TEXT COLLATE "C" NOT NULL,
                last_modified BIGINT NOT NULL,
                PRIMARY KEY (collection_id, parent_id)
            )
            """,
        ],
        # 2: the number of live records of each partition, kept by statement
        # triggers in the writers' transactions. PERF: Total-Records of an
        # unfiltered listing is then one row read instead of a count(*) that
        # grows with the collection (1.9 ms instead of 0.4 ms at 10K records).
        [
            "ALTER TABLE timestamps ADD COLUMN IF NOT EXISTS live_records BIGINT NOT NULL DEFAULT 0",
            # The backfill must not miss a concurrent write: writers wait for the migration.
            "LOCK TABLE records IN SHARE MODE",
            """
            INSERT INTO timestamps AS t (collection_id, parent_id, last_modified, live_records)
            SELECT collection_id, parent_id, max(last_modified), count(*) FILTER (WHERE NOT deleted)
              FROM records GROUP BY collection_id, parent_id
            ON CONFLICT (collection_id, parent_id) DO UPDATE SET live_records = EXCLUDED.live_records
            """,
            # One function per kind of statement: transition tables exist only for their own events.
            """
            CREATE OR REPLACE FUNCTION cliquet_live_records_inserted() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO timestamps AS t (collection_id, parent_id, last_modified, live_records)
                SELECT collection_id, parent_id, max(last_modified), count(*)
                  FROM new_rows WHERE NOT deleted GROUP BY collection_id, parent_id
                ON CONFLICT (collection_id, parent_id)
                DO UPDATE SET live_records = t.live_records + EXCLUDED.live_records;
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE OR REPLACE FUNCTION cliquet_live_records_updated() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE timestamps t SET live_records = t.live_records + d.delta
                  FROM (SELECT collection_id, parent_id, sum(delta) AS delta FROM (
                            SELECT collection_id, parent_id, 1 AS delta FROM new_rows WHERE NOT deleted
                            UNION ALL
                            SELECT collection_id, parent_id, -1 FROM old_rows WHERE NOT deleted
                        ) changes GROUP BY collection_id, parent_id) d
                 WHERE t.collection_id = d.collection_id AND t.parent_id = d.parent_id AND d.delta <> 0;
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE OR REPLACE FUNCTION cliquet_live_records_deleted() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE timestamps t SET live_records = t.live_records - d.gone
                  FROM (SELECT collection_id, parent_id, count(*) AS gone
                          FROM old_rows WHERE NOT deleted GROUP BY collection_id, parent_id) d
                 WHERE t.collection_id = d.collection_id AND t.parent_id = d.parent_id;
                RETURN NULL;
            END
            $$
            """,
            "DROP TRIGGER IF EXISTS records_live_inserted ON records",
            """
            CREATE TRIGGER records_live_inserted AFTER INSERT ON records
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
            EXECUTE FUNCTION cliquet_live_records_inserted()
            """,
            "DROP TRIGGER IF EXISTS records_live_updated ON records",
            """
            CREATE TRIGGER records_live_updated AFTER UPDATE ON records
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
            EXECUTE FUNCTION cliquet_live_records_updated()
            """,
            # PERF: collections grow fast (batches of creates); with the default
            # 10 % of changes between analyses, the planner long believes a
            # grown partition is small and sorts all of it for a first page
            # instead of reading the index up to the limit.
            "ALTER TABLE records SET (autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 1000)",
            "DROP TRIGGER IF EXISTS records_live_deleted ON records",
            """
            CREATE TRIGGER records_live_deleted AFTER DELETE ON records
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
            EXECUTE FUNCTION cliquet_live_records_deleted()
            """,
        ],
    ],
    "permission": [
        [
            """
            CREATE TABLE IF NOT EXISTS user_principals (
                user_id TEXT COLLATE "C" NOT NULL,
                principal TEXT COLLATE "C" NOT NULL,
                PRIMARY KEY (user_id, principal)
            )
            """,
            "CREATE INDEX IF NOT EXISTS idx_user_principals_principal ON user_principals (principal)",
            """
            CREATE TABLE IF NOT EXISTS access_control_entries (
                object_id TEXT COLLATE "C" NOT NULL,
                permission TEXT COLLATE "C" NOT NULL,
                principal TEXT COLLATE "C" NOT NULL,
                PRIMARY KEY (object_id, permission, principal)
            )
            """,
            """
            CREATE INDEX IF NOT EXISTS idx_access_control_entries_permission_principal
                ON access_control_entries (permission, principal)
            """,
        ],
    ],
    "cache": [
        [
            """
            CREATE TABLE IF NOT EXISTS cache (
                key TEXT COLLATE "C" PRIMARY KEY,
                value BYTEA NOT NULL,
                expires_at BIGINT
            )
            """,
            "CREATE INDEX IF NOT EXISTS idx_cache_expires_at ON cache (expires_at)",
        ],
    ],
}


def current_version(kind: str) -> int:
    return len(MIGRATIONS[kind])


def migrate(cursor: Any, kind: str) -> list[str]:
    """Bring ``kind``'s tables to the latest version inside the caller's transaction."""
    # Index builds on big tables may outlast the request statement timeout.
    cursor.execute("SET LOCAL statement_timeout = 0")
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
    cursor.execute(METADATA)
    name = f"{kind}_schema_version"
    cursor.execute("SELECT value FROM metadata WHERE name = %s", (name,))
    row = cursor.fetchone()
    installed = int(row[0]) if row else 0
    target = current_version(kind)
    if installed > target:
        return [f"{kind}: schema version {installed} is newer than this code ({target}); nothing done"]
    if installed == target:
        return [f"{kind}: schema already at version {target}"]
    for statements in MIGRATIONS[kind][installed:]:
        for statement in statements:
            cursor.execute(statement)
    cursor.execute(
        "INSERT INTO metadata (name, value) VALUES (%s, %s) "
        "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        (name, str(target)),
    )
    if installed == 0:
        return [f"{kind}: created schema version {target}"]
    return [f"{kind}: upgraded schema from version {installed} to {target}"]
