"""JSON schemas of resources, checked once at startup (RELIABILITY S10).

Schemas come from the developer (code or a file named in the settings),
never from the API. Everything that would otherwise fail on each write that
reaches it fails here, as a ConfigurationError naming the resource:

* an invalid schema (Draft 2020-12 metaschema);
* a reference that is not local (``$ref``/``$dynamicRef`` to a URL would
  mean fetching while validating a request: the registry is empty, nothing
  is ever retrieved) or that does not resolve;
* a reference loop that never descends into the instance
  (``{"$ref": "#"}``, ``allOf`` of itself…): validation would recurse until
  Python's recursion limit, a 500 on every write. Loops through
  ``properties``, ``items``… are fine: the instance's depth (at most 64,
  PROTOCOL decoders) bounds them.
"""
from __future__ import annotations

from typing import Any, Iterator

import referencing
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from cliquet_wsgi.errors import ConfigurationError

#: Keywords whose value refers to another schema (JSON Schema 2020-12).
_REF_KEYWORDS = ("$ref", "$dynamicRef")
#: Keywords applying subschemas to the same instance location (no descent).
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_SINGLE = ("not", "if", "then", "else")


def compile_schema(resource_name: str, schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``schema``, after the checks of this module's docstring."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ConfigurationError(f"Resource {resource_name!r}: invalid JSON schema: {exc.message}") from None
    registry: referencing.Registry = referencing.Registry()
    root = registry.resolver_with_root(DRAFT202012.create_resource(schema))
    for ref, resolver in _walk_refs(schema, root):
        # NOTE: remote $ref would mean fetching URLs while validating a request.
        if not ref.startswith("#"):
            raise ConfigurationError(f"Resource {resource_name!r}: only local $ref are allowed, got {ref!r}")
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise ConfigurationError(f"Resource {resource_name!r}: cannot resolve {ref!r} in the schema") from None
    loop = _in_place_loop(schema, root)
    if loop is not None:
        raise ConfigurationError(
            f"Resource {resource_name!r}: the schema refers to itself without descending into the record "
            f"(through {loop!r}): validation would never end"
        )
    return Draft202012Validator(schema, registry=registry)


def _scoped(value: dict, resolver: referencing.Resolver, root: Any) -> referencing.Resolver:
    """The resolver for references inside ``value``: a subschema with an ``$id`` is a resource of its own."""
    if value is not root and isinstance(value.get("$id"), str):
        return resolver.in_subresource(DRAFT202012.create_resource(value))
    return resolver


def _walk_refs(schema: dict, root: referencing.Resolver) -> Iterator[tuple[str, referencing.Resolver]]:
    """``(reference, resolver)`` of every ``$ref``/``$dynamicRef`` in the schema document."""
    for value, resolver in _subschemas(schema, root, schema):
        for key in _REF_KEYWORDS:
            ref = value.get(key)
            if isinstance(ref, str):
                yield ref, _scoped(value, resolver, schema)


def _in_place(value: dict, resolver: referencing.Resolver, root: Any) -> Iterator[tuple[Any, referencing.Resolver, str]]:
    """``(subschema, its resolver, via)`` applied to the same instance location as ``value``."""
    resolver = _scoped(value, resolver, root)
    for key in _IN_PLACE_LISTS:
        subs = value.get(key)
        if isinstance(subs, list):
            for sub in subs:
                yield sub, resolver, key
    for key in _IN_PLACE_SINGLE:
        if key in value:
            yield value[key], resolver, key
    dependent = value.get("dependentSchemas")
    if isinstance(dependent, dict):
        for sub in dependent.values():
            yield sub, resolver, "dependentSchemas"
    for key in _REF_KEYWORDS:
        ref = value.get(key)
        if isinstance(ref, str):
            resolved = resolver.lookup(ref)  # resolvable: checked before
            yield resolved.contents, resolved.resolver, ref


def _subschemas(value: Any, resolver: referencing.Resolver, root: Any) -> Iterator[tuple[dict, referencing.Resolver]]:
    """Every object in the schema document (each may be where validation starts), with its resolver."""
    if isinstance(value, dict):
        yield value, resolver
        inner = _scoped(value, resolver, root)
        for sub in value.values():
            yield from _subschemas(sub, inner, root)
    elif isinstance(value, list):
        for sub in value:
            yield from _subschemas(sub, resolver, root)


def _in_place_loop(schema: dict, root: referencing.Resolver) -> str | None:
    """The keyword or reference closing a loop of in-place applications, if there is one."""
    done: set[int] = set()
    for start, resolver in _subschemas(schema, root, schema):
        if id(start) in done:
            continue
        # Iterative depth-first search; "active" holds the schemas of the current path.
        active: set[int] = {id(start)}
        stack = [(start, iter(list(_in_place(start, resolver, schema))))]
        while stack:
            node, successors = stack[-1]
            for sub, sub_resolver, via in successors:
                if not isinstance(sub, dict) or id(sub) in done:
                    continue
                if id(sub) in active:
                    return via
                active.add(id(sub))
                stack.append((sub, iter(list(_in_place(sub, sub_resolver, schema)))))
                break
            else:
                stack.pop()
                active.discard(id(node))
                done.add(id(node))
    return None
