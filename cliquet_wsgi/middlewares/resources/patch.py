"""PATCH flavours: shallow merge (Cliquet), JSON merge-patch (RFC 7396), JSON-Patch (RFC 6902).

JSON-Patch operates on the document ``{"data": <record>, "permissions":
{perm: [principals]}}`` so that ``/data/title`` and ``/permissions/read/-``
both work, as in Kinto. Every failure is a 400/107, never a 500.
"""
from __future__ import annotations

import copy
from typing import Any

from cliquet_wsgi.errors import invalid_parameters

_MISSING = object()


def _error(description: str) -> Exception:
    return invalid_parameters([{"location": "body", "name": None, "description": description}])


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _parse_pointer(pointer: Any) -> list[str]:
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise _error(f"Invalid JSON pointer {pointer!r}")
    if pointer == "":
        return []
    tokens = pointer[1:].split("/")
    for token in tokens:
        # '~' must be followed by 0 or 1 (RFC 6901 §3).
        rest = token.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise _error(f"Invalid JSON pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _index(container: list, token: str, *, for_insert: bool) -> int:
    if for_insert and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise _error(f"Invalid array index {token!r}")
    index = int(token)
    limit = len(container) if for_insert else len(container) - 1
    if index > limit:
        raise _error(f"Array index {index} out of range")
    return index


def _parent(document: Any, tokens: list[str]) -> tuple[Any, str]:
    node = document
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise _error(f"Path /{'/'.join(tokens)} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_insert=False)]
        else:
            raise _error(f"Path /{'/'.join(tokens)} does not exist")
    return node, tokens[-1]


def _get(document: Any, tokens: list[str]) -> Any:
    if not tokens:
        return document
    parent, last = _parent(document, tokens)
    if isinstance(parent, dict):
        if last not in parent:
            raise _error(f"Path /{'/'.join(tokens)} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_insert=False)]
    raise _error(f"Path /{'/'.join(tokens)} does not exist")


def _add(document: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _parent(document, tokens)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_insert=True), value)
    else:
        raise _error(f"Path /{'/'.join(tokens)} does not exist")
    return document


def _remove(document: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise _error("Cannot remove the whole document")
    parent, last = _parent(document, tokens)
    if isinstance(parent, dict):
        if last not in parent:
            raise _error(f"Path /{'/'.join(tokens)} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, for_insert=False)]
    else:
        raise _error(f"Path /{'/'.join(tokens)} does not exist")
    return document


def json_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply RFC 6902 ``operations`` to a copy of ``document`` (all or nothing)."""
    if not isinstance(operations, list):
        raise _error("JSON-Patch body must be a list of operations")
    result: Any = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict):
            raise _error("Each JSON-Patch operation must be an object")
        op = operation.get("op")
        path = _parse_pointer(operation.get("path"))
        if op in ("add", "replace", "test") and "value" not in operation:
            raise _error(f"Operation {op!r} needs a value")
        value = copy.deepcopy(operation.get("value"))
        if op == "add":
            result = _add(result, path, value)
        elif op == "remove":
            result = _remove(result, path)
        elif op == "replace":
            _get(result, path)
            result = _add(_remove(result, path), path, value) if path else value
        elif op in ("move", "copy"):
            source = _parse_pointer(operation.get("from"))
            if op == "move" and path[: len(source)] == source and path != source:
                raise _error("Cannot move a value into one of its children")
            moved = copy.deepcopy(_get(result, source))
            if op == "move":
                result = _remove(result, source)
            result = _add(result, path, moved)
        elif op == "test":
            if not _json_equal(_get(result, path), value):
                raise _error(f"Test operation failed on /{'/'.join(path)}")
        else:
            raise _error(f"Unknown JSON-Patch operation {op!r}")
    if not isinstance(result, dict):
        raise _error("JSON-Patch result must be an object")
    return result


def _json_equal(a: Any, b: Any) -> bool:
    # JSON equality: 1 == 1.0 but True != 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return type(a) in (int, float) and type(b) in (int, float) and a == b or (type(a) is type(b) and a == b)
