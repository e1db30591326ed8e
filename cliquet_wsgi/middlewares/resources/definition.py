"""What a REST resource is: name, paths, schema, model, id policy.

A :class:`Resource` is pure description; it never touches a request. The
middleware compiles each one once at startup (schema checked, paths parsed,
id pattern compiled) so that a bad definition fails before serving.
"""
from __future__ import annotations

import copy
import inspect
import json
import os
import re
from typing import Any, Callable, Iterable, Mapping

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.middlewares.resources.schemas import compile_schema
from cliquet_wsgi.registry import import_dotted

#: PROTOCOL §10.2: ids the default UUID4 generator produces (full match, §15 #37).
UUID4_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: PROTOCOL §10.2: ids accepted for any other generator, and for parent path slots.
GENERIC_PATTERN = r"[a-zA-Z0-9][a-zA-Z0-9_-]*"
#: Longest id accepted in any path slot (record id or parent), whatever the pattern.
#: NOTE: PostgreSQL cannot index a key of more than about 2.7 kB (partition and id
#: together): longer ids would fail in the backend as a 503 instead of a 400 (RELIABILITY I6).
MAX_ID_LENGTH = 255

COLLECTION_METHODS = ("GET", "HEAD", "POST", "DELETE")
RECORD_METHODS = ("GET", "HEAD", "PUT", "PATCH", "DELETE")
MODELS = ("user", "shareable")
#: Fields every record has whatever its schema says.
BUILTIN_FIELDS = frozenset({"id", "last_modified", "deleted"})

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PARENT_SLOT = re.compile(GENERIC_PATTERN)
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


#: Version 4 and RFC 4122 variant bits, as ``uuid.UUID(version=4)`` sets them.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def uuid4_generator() -> str:
    """``str(uuid.uuid4())`` without building a UUID object (PERF: one per created record)."""
    value = int.from_bytes(os.urandom(16), "big") & _UUID4_CLEAR | _UUID4_SET
    text = "%032x" % value
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


class Resource:
    """Definition of one REST resource (PROTOCOL §9, §10).

    Pass keywords, or subclass and set class attributes / override
    :meth:`process_record`::

        Resource("article", schema={"type": "object", "properties": {...}},
                 unique_fields=("url",), model="shareable")

    * ``schema``: JSON Schema of ``data``. ``additionalProperties: false`` makes
      the resource strict (unknown fields dropped silently); otherwise the
      resource is schemaless (unknown fields kept, filterable). ``None``: no
      validation at all.
    * ``unique_fields``: unique per partition among live records (409).
    * ``readonly_fields``: may be set on create, never changed afterwards.
    * ``id_generator``: callable returning a new id (default UUID4 from the
      ``id_generator`` setting); ``id_pattern``: regexp of accepted ids.
    * ``model``: ``"user"`` (records partitioned per user) or ``"shareable"`` (ACLs).
    * ``methods``: HTTP methods served (default all of §10.1).
    * ``collection_path`` / ``record_path``: default ``/{name}s`` and
      ``/{name}s/{id}``; ``parent``: path prefix of a nested resource such as
      ``/buckets/{bucket_id}/collections/{collection_id}``.
    * ``process_record(new, old)``: hook returning the record to store.
    * ``get_bound_permissions(object_id, permission)``: optional method of a
      subclass returning the ``(object_id, permission)`` pairs that also grant
      it (inheritance, e.g. write implies read, §9.2 and §15 #31).
    """

    name: str = ""
    schema: Mapping[str, Any] | None = None
    unique_fields: Iterable[str] = ()
    readonly_fields: Iterable[str] = ()
    id_generator: Callable[[], str] | None = None
    id_pattern: str | None = None
    model: str = "user"
    methods: Iterable[str] | None = None
    collection_path: str | None = None
    record_path: str | None = None
    parent: str | None = None

    def __init__(
        self,
        name: str | None = None,
        schema: Mapping[str, Any] | None = None,
        unique_fields: Iterable[str] | None = None,
        readonly_fields: Iterable[str] | None = None,
        id_generator: Callable[[], str] | None = None,
        id_pattern: str | None = None,
        model: str | None = None,
        methods: Iterable[str] | None = None,
        collection_path: str | None = None,
        record_path: str | None = None,
        parent: str | None = None,
        process_record: Callable[[dict, dict | None], dict] | None = None,
    ) -> None:
        given = {
            "name": name, "schema": schema, "unique_fields": unique_fields,
            "readonly_fields": readonly_fields, "id_generator": id_generator, "id_pattern": id_pattern,
            "model": model, "methods": methods, "collection_path": collection_path,
            "record_path": record_path, "parent": parent,
        }
        for attr, value in given.items():
            if value is not None:
                setattr(self, attr, value)
        if process_record is not None:
            self.process_record = process_record  # type: ignore[method-assign]

    def process_record(self, new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        """Return the record to store (``old`` is ``None`` on create). Default: unchanged."""
        return new

    def __repr__(self) -> str:
        return f"<Resource {self.name!r} model={self.model!r}>"


class CompiledResource:
    """A checked, precomputed :class:`Resource`; what the views work with."""

    def __init__(self, resource: Resource, *, default_id_generator: str = "uuid4") -> None:
        self.definition = resource
        name = resource.name
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigurationError(f"Resource name must match [a-z][a-z0-9_]*, got {name!r}")
        self.name = name
        if resource.model not in MODELS:
            raise ConfigurationError(f"Resource {name!r}: model must be one of {', '.join(MODELS)}")
        self.shareable = resource.model == "shareable"
        self.unique_fields = tuple(resource.unique_fields or ())
        self.readonly_fields = tuple(resource.readonly_fields or ())
        self._compile_schema(resource.schema)
        self._compile_ids(resource, default_id_generator)
        self._compile_paths(resource)
        methods = {m.upper() for m in resource.methods} if resource.methods is not None else None
        self.collection_methods = tuple(m for m in COLLECTION_METHODS if methods is None or m in methods)
        self.record_methods = tuple(m for m in RECORD_METHODS if methods is None or m in methods)
        self.process_record = resource.process_record

    # -- schema --------------------------------------------------------------------

    def _compile_schema(self, schema: Mapping[str, Any] | None) -> None:
        self.schema = copy.deepcopy(dict(schema)) if schema is not None else None
        self.validator = None
        self.strict = False
        self.properties: dict[str, Any] = {}
        if self.schema is None:
            return
        self.validator = compile_schema(self.name, self.schema)
        self.strict = self.schema.get("additionalProperties", True) is False
        props = self.schema.get("properties") or {}
        self.properties = dict(props) if isinstance(props, dict) else {}

    @property
    def known_fields(self) -> set[str] | None:
        """Fields usable in filters, sort and ``_fields``; ``None`` = any (schemaless, §15 #20)."""
        if not self.strict:
            return None
        return set(self.properties) | BUILTIN_FIELDS

    def keeps_field(self, field: str) -> bool:
        return not self.strict or field in self.properties

    # -- ids -----------------------------------------------------------------------

    def _compile_ids(self, resource: Resource, default_generator: str) -> None:
        # NOTE: a function set as class attribute of a subclass must not be
        # called as a bound method (it takes no argument).
        generator = inspect.getattr_static(resource, "id_generator", None)
        if isinstance(generator, staticmethod):
            generator = generator.__func__
        pattern = resource.id_pattern
        if generator is None:
            if default_generator in ("", "uuid4"):
                generator = uuid4_generator
            else:
                try:
                    generator = import_dotted(default_generator)
                except ImportError as exc:
                    raise ConfigurationError(f"Setting 'id_generator': cannot import {default_generator!r}: {exc}")
                if isinstance(generator, type):
                    generator = generator()
        if not callable(generator):
            raise ConfigurationError(f"Resource {self.name!r}: id_generator must be callable")
        if pattern is None:
            pattern = getattr(generator, "regexp", None) or getattr(generator, "id_pattern", None)
        if pattern is None:
            pattern = UUID4_PATTERN if generator is uuid4_generator else GENERIC_PATTERN
        pattern = pattern.lstrip("^").rstrip("$") if isinstance(pattern, str) else pattern
        try:
            self.id_regexp = re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ConfigurationError(f"Resource {self.name!r}: invalid id_pattern {pattern!r}: {exc}") from None
        self.id_generator = generator

    def valid_id(self, value: Any) -> bool:
        # Full match on str only: ``3.14`` or ``"abc\n"`` are refused (§10.2, §15 #37).
        return (
            isinstance(value, str) and len(value) <= MAX_ID_LENGTH and self.id_regexp.fullmatch(value) is not None
        )

    # -- paths ---------------------------------------------------------------------

    def _compile_paths(self, resource: Resource) -> None:
        collection = resource.collection_path
        record = resource.record_path
        parent = (resource.parent or "").rstrip("/")
        if record and not collection:
            if not record.endswith("/{id}"):
                raise ConfigurationError(f"Resource {self.name!r}: record_path must end with /{{id}}")
            collection = record[: -len("/{id}")]
        if collection is None:
            collection = f"{parent}/{self.name}s"
        if record is None:
            record = f"{collection}/{{id}}"
        for path in (collection, record):
            if not path.startswith("/"):
                raise ConfigurationError(f"Resource {self.name!r}: paths must start with /, got {path!r}")
        if "{id}" in collection or not record.endswith("{id}"):
            raise ConfigurationError(f"Resource {self.name!r}: only record_path has the {{id}} placeholder")
        self.collection_path = collection
        self.record_path = record
        self.parent_slots = tuple(_PLACEHOLDER.findall(collection))
        if set(self.parent_slots) != set(_PLACEHOLDER.findall(record)) - {"id"}:
            raise ConfigurationError(f"Resource {self.name!r}: collection and record paths have different parents")
        self.nested = bool(self.parent_slots)

    @staticmethod
    def valid_parent_slot(value: str) -> bool:
        """Whether a parent placeholder's value (``bucket_id`` in ``/buckets/{bucket_id}/…``) is acceptable."""
        return len(value) <= MAX_ID_LENGTH and _PARENT_SLOT.fullmatch(value) is not None

    def collection_object_id(self, slots: Mapping[str, str]) -> str:
        """Path of the collection with parent slots filled: the ACL object id (§9.2)."""
        return self.collection_path.format(**{k: slots[k] for k in self.parent_slots})

    def record_object_id(self, slots: Mapping[str, str], record_id: str) -> str:
        return f"{self.collection_object_id(slots)}/{record_id}"

    def parent_id(self, slots: Mapping[str, str], user_id: str | None) -> str:
        """Storage partition: user id, parent path, or both (§9.1)."""
        parent_path = self.collection_object_id(slots).rsplit("/", 1)[0] if self.nested else ""
        if self.shareable:
            return parent_path
        return f"{user_id}{parent_path}"

    def create_permission(self) -> str:
        return f"{self.name}:create"


def resource_from_settings(name: str, settings: Mapping[str, Any], base: Resource | None = None) -> Resource:
    """Apply the declarative ``resource.<name>.*`` settings on top of ``base``."""
    resource = copy.copy(base) if base is not None else Resource(name)
    prefix = f"resource.{name}."
    for key, value in settings.items():
        if not key.startswith(prefix):
            continue
        attr = key[len(prefix):]
        if attr == "schema":
            resource.schema = _load_schema(name, value)
        elif attr in ("unique_fields", "readonly_fields", "methods"):
            setattr(resource, attr, tuple(value) if isinstance(value, (list, tuple)) else tuple(str(value).split()))
        elif attr in ("model", "collection_path", "record_path", "parent", "id_pattern"):
            setattr(resource, attr, str(value).strip())
        elif attr == "id_generator":
            setattr(resource, attr, import_dotted(str(value).strip()) if isinstance(value, str) else value)
        else:
            raise ConfigurationError(f"Unknown setting {key!r} (schema, unique_fields, readonly_fields, model, "
                                     "methods, collection_path, record_path, parent, id_pattern, id_generator)")
    return resource


def _load_schema(name: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return value
    text = str(value).strip()
    try:
        if text.startswith("{"):
            return json.loads(text)
        with open(text, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"Setting 'resource.{name}.schema': cannot load {text!r}: {exc}") from None
