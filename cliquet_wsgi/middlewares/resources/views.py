"""The eight endpoints of PROTOCOL §10, as functions of a request :class:`Context`.

Each view returns a :class:`Reply` (status, headers, body value) or raises
:class:`~cliquet_wsgi.errors.CliquetError`. The observable precedence is the
one of §0: (406/415 and authorization are done by the middleware) body 400,
invalid id 400, 404, 304, 412, querystring 400, 409, success. Every write of
a request happens in one ``storage.transaction()``; permission entries are
written inside it, after the records, so a failure rolls the records back.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Callable

from cliquet_wsgi.errors import ERRORS, CliquetError, invalid_parameter, invalid_parameters
from cliquet_wsgi.filtering import json_equal
from cliquet_wsgi.middlewares.resources import patch as patching
from cliquet_wsgi.middlewares.resources import querystring
from cliquet_wsgi.middlewares.resources.definition import CompiledResource
from cliquet_wsgi.middlewares.resources.permissions import Authorizer, denied
from cliquet_wsgi.middlewares.resources.preconditions import ANY, Preconditions
from cliquet_wsgi.middlewares.resources.schema import body_error, check_envelope, clean_record, permission_errors
from cliquet_wsgi.rendering import json_dumps
from cliquet_wsgi.storage import COMPARISON, Filter, RecordNotFoundError, UnicityError

#: Body flavours on PATCH (the codec tells which content type was sent).
JSON, MERGE_PATCH, JSON_PATCH = "json", "merge-patch", "json-patch"

_META = ("id", "last_modified")
_MISSING = object()


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Any = None  # None: empty body


@dataclass
class Context:
    """Everything a view needs about one request."""

    resource: CompiledResource
    endpoint: str
    method: str
    slots: dict[str, str]
    user_id: str | None
    principals: list[str]
    storage: Any
    permission: Any  # the permission backend (shareable resources) or None
    authorizer: Authorizer | None
    preconditions: Preconditions
    params: list[tuple[str, str]]
    payload: Any
    body_kind: str
    body_error: CliquetError | None
    challenges: list[str] | None
    paginate_by: int | None
    max_fetch_size: int
    cache_expires_seconds: int | None
    response_behavior: str
    next_page_base: Callable[[], str]
    restricted_ids: set[str] | None = None  # shareable list restricted to these ids
    log: dict[str, Any] = field(default_factory=dict)

    @property
    def parent_id(self) -> str:
        return self.resource.parent_id(self.slots, self.user_id)

    @property
    def cid(self) -> str:
        return self.resource.name

    @property
    def collection_oid(self) -> str:
        return self.resource.collection_object_id(self.slots)

    @property
    def token_scope(self) -> str:
        # Pagination tokens are bound to the endpoint and the partition.
        return f"{self.collection_oid}|{self.parent_id}"

    def record_oid(self, record_id: str) -> str:
        return self.resource.record_object_id(self.slots, record_id)

    def deny(self) -> CliquetError:
        return denied(self.principals, self.challenges)


# -- headers --------------------------------------------------------------------------


def http_date(timestamp_ms: int) -> str:
    """IMF-fixdate of ``floor(ts / 1000)`` (§10.3)."""
    return _imf_fixdate(timestamp_ms // 1000)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@functools.lru_cache(maxsize=1024)
def _imf_fixdate(seconds: int) -> str:
    # PERF: what formatdate(seconds, usegmt=True) gives, at half its cost, and
    # memoised: a collection's Last-Modified repeats on every poll.
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def timestamp_headers(timestamp: int) -> list[tuple[str, str]]:
    return [("ETag", f'"{timestamp}"'), ("Last-Modified", http_date(timestamp))]


def cache_headers(ctx: Context) -> list[tuple[str, str]]:
    seconds = ctx.cache_expires_seconds
    if seconds and ctx.user_id is None:
        return [("Cache-Control", f"max-age={seconds}"), ("Expires", formatdate(time.time() + seconds, usegmt=True))]
    return [("Cache-Control", "no-cache")]


def precondition_failed(current: int | None, existing: Any) -> CliquetError:
    return CliquetError(
        412,
        ERRORS.MODIFIED_MEANWHILE,
        message="Resource was modified meanwhile",
        details={"existing": existing} if existing is not None else {},
        headers=timestamp_headers(current) if current is not None else [],
    )


def write_refused(pre: Preconditions, current: int | None) -> bool:
    """Preconditions of a write on a target whose timestamp is ``current`` (None: absent).

    ``If-None-Match: *`` refuses existing targets; a value is ignored on
    writes in order mode and refuses an equal ETag in strict mode (RFC 9110).
    """
    if current is not None and pre.if_none_match is not None:
        if pre.if_none_match == ANY or pre.strict and pre.none_match_hits(current):
            return True
    return pre.match_fails(current)


def record_not_found() -> CliquetError:
    return CliquetError(404, ERRORS.INVALID_RESOURCE_ID)


def conflict(ctx: "Context", error: UnicityError) -> CliquetError:
    """409/122 (§10.10, §15 #3 #4); the existing record and its id only if the requester may read it (S3)."""
    details: dict[str, Any] = {"field": error.field}
    existing_id = error.record.get("id")
    message = f"Conflict of field {error.field}"
    if not ctx.resource.shareable or (
        isinstance(existing_id, str)
        and ctx.authorizer is not None
        and ctx.authorizer.allowed(ctx.record_oid(existing_id), "read", ctx.principals)
    ):
        details["existing"] = error.record
        message += f" on record {existing_id}"
    return CliquetError(409, ERRORS.CONSTRAINT_VIOLATED, message=message, details=details)


# -- request checks -------------------------------------------------------------------


def check_record_id(ctx: Context) -> str:
    record_id = ctx.slots["id"]
    if not ctx.resource.valid_id(record_id):
        raise invalid_parameter("path", None, "Invalid record id")
    return record_id


def raise_body_error(ctx: Context) -> None:
    if ctx.body_error is not None:
        raise ctx.body_error


def forced_timestamp(data: dict[str, Any] | None, resource: CompiledResource) -> int | None:
    """``data.last_modified`` when integer and kept by the schema (§10.3); else ignored."""
    if not data or not resource.keeps_field("last_modified"):
        return None
    value = data.get("last_modified")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def data_required(resource: CompiledResource) -> bool:
    """``data`` may be omitted when the schema accepts ``{}`` (§10.1)."""
    if resource.validator is None:
        return False
    return not resource.validator.is_valid({})


def get_record(ctx: Context, record_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
    try:
        return ctx.storage.get(ctx.cid, ctx.parent_id, record_id, for_update=for_update)
    except RecordNotFoundError:
        return None


def locked_record(ctx: Context, record_id: str) -> dict[str, Any]:
    """The live record, locked for this transaction: 404 if absent, 412 if preconditions refuse it."""
    existing = get_record(ctx, record_id, for_update=True)
    if existing is None:
        raise record_not_found()
    current = existing["last_modified"]
    if write_refused(ctx.preconditions, current):
        raise precondition_failed(current, existing)
    return existing


def tombstone_timestamp(ctx: Context, record_id: str) -> int | None:
    records, _ = ctx.storage.get_all(
        ctx.cid, ctx.parent_id, filters=[Filter("id", record_id, COMPARISON.EQ)], include_deleted=True
    )
    for record in records:
        if record.get("deleted"):
            return record["last_modified"]
    return None


def parse_fields(ctx: Context) -> list[str] | None:
    params = [(k, v) for k, v in ctx.params if k == "_fields"]
    if not params:
        return None
    query = querystring.parse_list_query(
        params,
        known_fields=ctx.resource.known_fields,
        paginate_by=None,
        max_fetch_size=ctx.max_fetch_size,
        token_scope=ctx.token_scope,
    )
    return query.fields


# -- permissions in bodies and responses (§9.3) ---------------------------------------


def object_permissions(ctx: Context, record_id: str) -> dict[str, list[str]]:
    found = ctx.permission.object_permissions(ctx.record_oid(record_id))
    return {perm: sorted(principals) for perm, principals in found.items() if principals}


def write_permissions(
    ctx: Context, record_id: str, given: dict[str, list[str]] | None, *, reset_missing: bool
) -> None:
    """Store the ACEs of a created/replaced/modified record, writer included."""
    changes: dict[str, list[str]] = {}
    if given is not None:
        changes.update({perm: list(dict.fromkeys(principals)) for perm, principals in given.items()})
    if reset_missing:
        for perm in ("read", "write"):
            changes.setdefault(perm, [])
    if ctx.user_id is not None:
        # §9.3: the current user is always a writer (§15 #35: not when anonymous).
        writers = changes.get("write")
        if writers is None:
            writers = sorted(ctx.permission.object_permission_principals(ctx.record_oid(record_id), "write"))
        if ctx.user_id not in writers:
            writers = [*writers, ctx.user_id]
        changes["write"] = writers
    if changes:
        ctx.permission.replace_object_permissions(ctx.record_oid(record_id), changes)


def record_body(ctx: Context, record: dict[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
    data = querystring.apply_fields(record, fields) if fields else record
    body: dict[str, Any] = {"data": data}
    if ctx.resource.shareable:
        body["permissions"] = object_permissions(ctx, record["id"])
    return body


# -- authorization (§9) -----------------------------------------------------------------


def authorize(ctx: Context) -> None:
    """Raise 401/403 unless the request may proceed; may set ``ctx.restricted_ids``."""
    if not ctx.resource.shareable:
        if ctx.user_id is None:
            raise ctx.deny()
        return
    auth = ctx.authorizer
    assert auth is not None
    principals = ctx.principals
    if ctx.endpoint == "collection":
        if ctx.method in ("GET", "HEAD", "DELETE"):
            perm = "read" if ctx.method != "DELETE" else "write"
            if auth.allowed(ctx.collection_oid, perm, principals):
                return
            ids = auth.accessible_ids(ctx.collection_oid, perm, principals)
            if not ids:
                raise ctx.deny()
            ctx.restricted_ids = ids
            return
        if not auth.allowed(ctx.collection_oid, "create", principals):
            raise ctx.deny()
        return
    record_id = ctx.slots["id"]
    if ctx.method in ("GET", "HEAD"):
        allowed = auth.allowed(ctx.record_oid(record_id), "read", principals)
    elif ctx.method == "PUT":
        exists = ctx.resource.valid_id(record_id) and get_record(ctx, record_id) is not None
        if exists:
            allowed = auth.allowed(ctx.record_oid(record_id), "write", principals)
        else:
            allowed = auth.allowed(ctx.collection_oid, "create", principals)
    else:
        allowed = auth.allowed(ctx.record_oid(record_id), "write", principals)
    if not allowed:
        raise ctx.deny()


def restriction_filters(ctx: Context) -> list[Filter]:
    if ctx.restricted_ids is None:
        return []
    return [Filter("id", sorted(ctx.restricted_ids), COMPARISON.IN)]


# -- collection endpoints ---------------------------------------------------------------


def get_collection(ctx: Context) -> Reply:
    # PERF: on PostgreSQL, one transaction (checkout, ping, BEGIN/COMMIT) for both reads.
    with ctx.storage.read_transaction():
        try:
            return _get_collection(ctx)
        except CliquetError as error:
            # Leave the block normally: the timestamp a first read persisted is
            # kept (a 412 shows it as ETag), as when each call committed alone.
            refusal = error
    raise refusal


def _get_collection(ctx: Context) -> Reply:
    timestamp = ctx.storage.collection_timestamp(ctx.cid, ctx.parent_id)
    pre = ctx.preconditions
    headers = timestamp_headers(timestamp)
    if pre.if_none_match != ANY and pre.none_match_hits(timestamp):
        return Reply(304, headers + cache_headers(ctx))
    if pre.match_fails(timestamp):
        raise precondition_failed(timestamp, None)
    query = querystring.parse_list_query(
        ctx.params,
        known_fields=ctx.resource.known_fields,
        paginate_by=ctx.paginate_by,
        max_fetch_size=ctx.max_fetch_size,
        token_scope=ctx.token_scope,
    )
    limit = query.limit
    records, total = ctx.storage.get_all(
        ctx.cid,
        ctx.parent_id,
        filters=[*query.filters, *restriction_filters(ctx)],
        sorting=query.sorting,
        pagination_rules=query.pagination_rules,
        limit=None if limit is None else limit + 1,
        include_deleted=query.include_deleted,
        count=True,
    )
    page = records if limit is None else records[:limit]
    # §15 #18: one extra record tells whether there is a next page; when the
    # backend capped the fetch at its maximum, fall back to the count.
    has_next = limit is not None and (
        len(records) > limit
        or (len(page) == limit and total is not None and query.offset + len(page) < total
            and limit + 1 > ctx.max_fetch_size)
    )
    headers += [("Total-Records", str(total))]
    if ctx.method == "HEAD":
        headers.append(("Total-Objects", str(total)))
    if has_next and page:
        token = querystring.next_page_token(query, page[-1], len(page), ctx.token_scope)
        headers.append(("Next-Page", querystring.next_page_url(ctx.next_page_base(), ctx.params, limit, token)))
    for alert in query.alerts:
        headers.append(("Alert", json_dumps(alert)))
    headers += cache_headers(ctx)
    ctx.log.update(nb_records=len(page), limit=limit, collection_timestamp=timestamp)
    if query.fields:
        page = [querystring.apply_fields(r, query.fields) for r in page]
    return Reply(200, headers, {"data": page})


def post_collection(ctx: Context) -> Reply:
    raise_body_error(ctx)
    data, permissions = check_envelope(ctx.resource, ctx.payload, data_required=data_required(ctx.resource))
    data = data or {}
    record_id = data.get("id", _MISSING)
    if record_id is not _MISSING and not ctx.resource.valid_id(record_id):
        raise invalid_parameter("path", None, "Invalid record id")
    record = clean_record(ctx.resource, data, apply_defaults=True)
    forced = forced_timestamp(data, ctx.resource)
    pre = ctx.preconditions
    with ctx.storage.transaction():
        existing = get_record(ctx, record_id, for_update=True) if record_id is not _MISSING else None
        if existing is not None:
            return _post_existing(ctx, existing)
        if pre.if_match is not None:  # PERF: no read of the timestamp when nothing compares it
            timestamp = ctx.storage.collection_timestamp(ctx.cid, ctx.parent_id)
            if pre.match_fails(timestamp):
                raise precondition_failed(timestamp, None)
        record = ctx.resource.process_record(record, None)
        if record_id is not _MISSING:
            record["id"] = record_id
        if forced is not None:
            record["last_modified"] = forced
        try:
            created = ctx.storage.create(
                ctx.cid, ctx.parent_id, record,
                id_generator=ctx.resource.id_generator, unique_fields=ctx.resource.unique_fields,
            )
        except UnicityError as error:
            if error.field == "id":
                # A concurrent request created it between our read and write.
                return _post_existing(ctx, error.record)
            raise conflict(ctx, error) from None
        if ctx.resource.shareable:
            write_permissions(ctx, created["id"], permissions, reset_missing=True)
        body = record_body(ctx, created)
    return Reply(201, [], body)


def _post_existing(ctx: Context, existing: dict[str, Any]) -> Reply:
    """§10.6: POST with the id of a live record answers it unchanged (200)."""
    pre = ctx.preconditions
    if ctx.resource.shareable and not ctx.authorizer.allowed(ctx.record_oid(existing["id"]), "read", ctx.principals):
        # Answering the record would disclose it to someone who cannot read it.
        raise ctx.deny()
    current = existing["last_modified"]
    if write_refused(pre, current):
        raise precondition_failed(current, existing)
    return Reply(200, [], record_body(ctx, existing))


def delete_collection(ctx: Context) -> Reply:
    pre = ctx.preconditions
    with ctx.storage.transaction():
        timestamp = ctx.storage.collection_timestamp(ctx.cid, ctx.parent_id)
        if pre.match_fails(timestamp):
            raise precondition_failed(timestamp, None)
        query = querystring.parse_list_query(
            ctx.params,
            known_fields=ctx.resource.known_fields,
            paginate_by=None,
            max_fetch_size=ctx.max_fetch_size,
            token_scope=ctx.token_scope,
            for_delete=True,
        )
        tombstones = ctx.storage.delete_all(
            ctx.cid, ctx.parent_id, filters=[*query.filters, *restriction_filters(ctx)]
        )
        if ctx.resource.shareable and tombstones:
            ctx.permission.delete_object_permissions(*(ctx.record_oid(t["id"]) for t in tombstones))
    headers = [("Alert", json_dumps(alert)) for alert in query.alerts]
    return Reply(200, headers, {"data": tombstones})


# -- record endpoints -------------------------------------------------------------------


def get_record_view(ctx: Context) -> Reply:
    record_id = check_record_id(ctx)
    record = get_record(ctx, record_id)
    if record is None:
        raise record_not_found()
    current = record["last_modified"]
    pre = ctx.preconditions
    headers = timestamp_headers(current)
    if pre.none_match_hits(current):
        if pre.if_none_match == ANY:
            raise precondition_failed(current, record)
        return Reply(304, headers + cache_headers(ctx))
    if pre.match_fails(current):
        raise precondition_failed(current, record)
    fields = parse_fields(ctx)
    return Reply(200, headers + cache_headers(ctx), record_body(ctx, record, fields))


def put_record(ctx: Context) -> Reply:
    raise_body_error(ctx)
    data, permissions = check_envelope(ctx.resource, ctx.payload, data_required=data_required(ctx.resource))
    record_id = check_record_id(ctx)
    data = data or {}
    if "id" in data and data["id"] != record_id:
        raise invalid_parameter("body", "id", "Record id does not match existing record")
    record = clean_record(ctx.resource, data, apply_defaults=True)
    forced = forced_timestamp(data, ctx.resource)
    pre = ctx.preconditions
    with ctx.storage.transaction():
        existing = get_record(ctx, record_id, for_update=True)
        current = existing["last_modified"] if existing is not None else tombstone_timestamp(ctx, record_id)
        if write_refused(pre, current if existing is not None else None) or pre.match_fails(current):
            raise precondition_failed(current, existing)
        if existing is not None:
            check_readonly(ctx.resource, record, existing, keep_absent=True)
        record = ctx.resource.process_record(record, existing)
        if forced is not None:
            record["last_modified"] = forced
        try:
            if existing is not None:
                stored = ctx.storage.update(
                    ctx.cid, ctx.parent_id, record_id, record, unique_fields=ctx.resource.unique_fields
                )
                status = 200
            else:
                stored = ctx.storage.create(
                    ctx.cid, ctx.parent_id, {**record, "id": record_id}, unique_fields=ctx.resource.unique_fields
                )
                status = 201
        except UnicityError as error:
            if error.field == "id":
                # Lost a race with a concurrent creation of the same id (C3).
                raise precondition_failed(error.record["last_modified"], error.record) from None
            raise conflict(ctx, error) from None
        if ctx.resource.shareable:
            write_permissions(ctx, record_id, permissions, reset_missing=permissions is not None)
        body = record_body(ctx, stored)
    return Reply(status, timestamp_headers(stored["last_modified"]), body)


def check_readonly(resource: CompiledResource, record: dict, existing: dict, *, keep_absent: bool) -> None:
    """§10.9, §15 #32: read-only fields keep their value (absent on PUT = kept)."""
    errors = []
    for name in resource.readonly_fields:
        old = existing.get(name, _MISSING)
        new = record.get(name, _MISSING)
        if new is _MISSING and keep_absent:
            if old is not _MISSING:
                record[name] = old
            continue
        if not _same(new, old):
            errors.append(body_error(f"data.{name}", f"Cannot modify {name}"))
    if errors:
        raise invalid_parameters(errors)


def _same(a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    return json_equal(a, b)


def patch_record(ctx: Context) -> Reply:
    raise_body_error(ctx)
    resource = ctx.resource
    permissions = None
    data: Any = None
    if ctx.body_kind == JSON_PATCH:
        if not isinstance(ctx.payload, list):
            raise invalid_parameter("body", None, "JSON-Patch body must be a list of operations")
    else:
        payload = ctx.payload
        if isinstance(payload, dict) and not payload:
            raise invalid_parameter("body", None, "Provide at least one of data or permissions")
        data, permissions = check_envelope(resource, payload, data_required=not resource.shareable)
    record_id = check_record_id(ctx)
    with ctx.storage.transaction():
        existing = locked_record(ctx, record_id)
        current = existing["last_modified"]
        old_data = {k: v for k, v in existing.items() if k not in _META}
        if ctx.body_kind == JSON_PATCH:
            document: dict[str, Any] = {"data": old_data}
            if resource.shareable:
                document["permissions"] = object_permissions(ctx, record_id)
            result = patching.json_patch(document, ctx.payload)
            unknown = set(result) - set(document)
            if unknown or not isinstance(result.get("data"), dict):
                raise invalid_parameter("body", None, "JSON-Patch may only change data and permissions")
            data = result["data"]
            merged = dict(data)
            if resource.shareable:
                new_perms = result.get("permissions")
                errors = permission_errors(new_perms if new_perms is not None else {})
                if errors:
                    raise invalid_parameters(errors)
                permissions = {p: new_perms.get(p, []) for p in ("read", "write")} if new_perms is not None else None
        elif ctx.body_kind == MERGE_PATCH:
            merged = patching.merge_patch(old_data, data or {})
        else:
            merged = {**old_data, **(data or {})}
        forced = forced_timestamp(data, resource)
        merged = {k: v for k, v in merged.items() if k not in _META}
        check_readonly(resource, merged, existing, keep_absent=False)
        merged = clean_record(resource, merged, apply_defaults=False)
        new = resource.process_record(merged, existing)
        changed = not json_equal(new, old_data) or (forced is not None and forced > current)
        if changed or resource.shareable:
            if forced is not None:
                new = {**new, "last_modified": forced}
            try:
                stored = ctx.storage.update(ctx.cid, ctx.parent_id, record_id, new, unique_fields=resource.unique_fields)
            except UnicityError as error:
                raise conflict(ctx, error) from None
        else:
            stored = existing
        if resource.shareable:
            write_permissions(ctx, record_id, permissions, reset_missing=False)
        body = record_body(ctx, stored)
    body["data"] = shape_patch_response(ctx.response_behavior, stored, old_data, data or {})
    return Reply(200, timestamp_headers(stored["last_modified"]), body)


def shape_patch_response(behavior: str, stored: dict, old: dict, sent: dict) -> dict[str, Any]:
    """§10.9 ``Response-Behavior``: full, light (sent keys as stored), diff (stored != sent)."""
    if behavior == "light":
        return {k: stored[k] for k in sent if k in stored}
    if behavior == "diff":
        return {k: stored[k] for k in sent if k in stored and not json_equal(stored[k], sent[k])}
    return stored


def delete_record(ctx: Context) -> Reply:
    record_id = check_record_id(ctx)
    with ctx.storage.transaction():
        locked_record(ctx, record_id)
        forced = None
        values = [v for k, v in ctx.params if k == "last_modified"]
        if values:
            forced = querystring.parse_timestamp_param("last_modified", values[-1])
        tombstone = ctx.storage.delete(ctx.cid, ctx.parent_id, record_id, last_modified=forced)
        if ctx.resource.shareable:
            ctx.permission.delete_object_permissions(ctx.record_oid(record_id))
    return Reply(200, [], {"data": tombstone})


def options(ctx: Context) -> Reply:
    return Reply(200, [])


VIEWS: dict[tuple[str, str], Callable[[Context], Reply]] = {
    ("collection", "GET"): get_collection,
    ("collection", "HEAD"): get_collection,
    ("collection", "POST"): post_collection,
    ("collection", "DELETE"): delete_collection,
    ("record", "GET"): get_record_view,
    ("record", "HEAD"): get_record_view,
    ("record", "PUT"): put_record,
    ("record", "PATCH"): patch_record,
    ("record", "DELETE"): delete_record,
}
