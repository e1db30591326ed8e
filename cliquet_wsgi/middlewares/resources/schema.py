"""Request payload validation: envelope, record schema, permissions (PROTOCOL §2.3, §9.3, §10.1).

Errors are collected as §2.3 ``details`` entries and raised as one 400/107.
"""
from __future__ import annotations

import copy
from typing import Any

from cliquet_wsgi.errors import invalid_parameters
from cliquet_wsgi.middlewares.resources.definition import CompiledResource
from cliquet_wsgi.rendering import json_copy, json_dumps

RECORD_PERMISSIONS = ("read", "write")

_ARTICLE = {"object": "an object", "array": "an array", "integer": "an integer"}


def body_error(name: str | None, description: str) -> dict[str, Any]:
    return {"location": "body", "name": name, "description": description}


def check_envelope(resource: CompiledResource, payload: Any, *, data_required: bool) -> tuple[Any, Any]:
    """``(data, permissions)`` of a POST/PUT/PATCH body; 400 on unknown or malformed keys.

    ``data`` is ``None`` when absent and not required.
    """
    if not isinstance(payload, dict):
        raise invalid_parameters([body_error(None, "Invalid JSON request body: expected an object"),
                                  body_error("data", "data is missing")])
    allowed = ("data", "permissions") if resource.shareable else ("data",)
    errors = [body_error(key, f"{key} is not allowed") for key in payload if key not in allowed]
    data = payload.get("data")
    if "data" not in payload:
        if data_required:
            errors.append(body_error("data", "data is missing"))
    elif not isinstance(data, dict):
        errors.append(body_error("data", f"{_show(data)} is not an object"))
    permissions = payload.get("permissions")
    if "permissions" in payload and "permissions" in allowed:
        errors.extend(permission_errors(permissions))
    if errors:
        raise invalid_parameters(errors)
    return data, permissions


def nul_path(value: Any) -> list[str] | None:
    """Path to the first string (value or key) containing U+0000, else ``None``."""
    stack: list[tuple[Any, list[str]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, sub in item.items():
                if "\x00" in key:
                    return [*path, key.replace("\x00", "\\u0000")]
                stack.append((sub, [*path, key]))
        elif isinstance(item, list):
            stack.extend((sub, [*path, str(i)]) for i, sub in enumerate(item))
    return None


_SCALARS = frozenset({int, float, bool, type(None)})


def _has_nul(value: Any) -> bool:
    """Whether :func:`nul_path` would find something (PERF: no paths built on the common no-NUL case)."""
    kind = type(value)
    if kind is str:
        return "\x00" in value
    if kind in _SCALARS:
        return False
    if isinstance(value, dict):
        return any("\x00" in key or _has_nul(sub) for key, sub in value.items())
    if isinstance(value, list):
        return any(_has_nul(sub) for sub in value)
    return isinstance(value, str) and "\x00" in value


def permission_errors(permissions: Any) -> list[dict[str, Any]]:
    if not isinstance(permissions, dict):
        return [body_error("permissions", f"{_show(permissions)} is not an object")]
    errors = []
    for key, principals in permissions.items():
        if key not in RECORD_PERMISSIONS:
            errors.append(body_error("permissions", f"{json_dumps(key)} is not one of {', '.join(RECORD_PERMISSIONS)}"))
        elif not isinstance(principals, list) or not all(
            isinstance(p, str) and p and "\x00" not in p for p in principals
        ):
            errors.append(body_error(f"permissions.{key}", f"{_show(principals)} is not a list of principals"))
    return errors


def clean_record(resource: CompiledResource, data: dict[str, Any], *, apply_defaults: bool) -> dict[str, Any]:
    """Validated copy of ``data`` without ``id``/``last_modified`` (handled by the views).

    Strict schemas drop unknown fields silently (§10.1); defaults are filled
    on create and replace.
    """
    record = {k: json_copy(v) for k, v in data.items() if k not in ("id", "last_modified")}
    path = nul_path(record) if _has_nul(record) else None
    if path is not None:
        # NOTE: PostgreSQL's JSONB cannot store U+0000; refuse it everywhere alike.
        name = ".".join(["data", *path])
        raise invalid_parameters([body_error(name, f"{name} contains a NUL character")])
    if resource.strict:
        record = {k: v for k, v in record.items() if k in resource.properties}
    if apply_defaults:
        for field, spec in resource.properties.items():
            if field not in record and isinstance(spec, dict) and "default" in spec:
                record[field] = copy.deepcopy(spec["default"])
    validate_record(resource, record)
    return record


def validate_record(resource: CompiledResource, record: dict[str, Any]) -> None:
    if resource.validator is None:
        return
    errors = []
    for error in resource.validator.iter_errors(record):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = _missing_property(error)
            if missing is not None:
                name = ".".join(["data", *path, missing])
                errors.append(body_error(name, f"{name} is missing"))
                continue
        name = ".".join(["data", *path])
        errors.append(body_error(name, _describe(error)))
    if errors:
        raise invalid_parameters(errors)


def _missing_property(error: Any) -> str | None:
    for field in error.validator_value or ():
        if field not in error.instance:
            return str(field)
    return None


def _describe(error: Any) -> str:
    if error.validator == "type" and isinstance(error.validator_value, str):
        kind = error.validator_value
        return f"{_show(error.instance)} is not {_ARTICLE.get(kind, 'a ' + kind)}"
    if error.validator == "additionalProperties" and error.validator_value is False:
        return error.message.replace("'", "")
    return error.message


def _show(value: Any) -> str:
    text = json_dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
