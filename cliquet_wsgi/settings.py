"""The one settings loader.

Settings come from an ini section (strings), from ``wrap(**settings)`` keywords
(typed values) and from ``CLIQUET_<KEY>`` environment variables, in that order
of precedence (environment wins). :func:`load_settings` applies the defaults,
normalises prefixed spellings (``cliquet.paginate_by``, ``<project>.paginate_by``),
converts every value to its type and fails on unknown or contradictory settings
with a :class:`~cliquet_wsgi.errors.ConfigurationError` naming the setting.

The result is a plain dict. Middlewares receive the values they need as
explicit keywords (see :mod:`cliquet_wsgi.paste`); none reads ``os.environ``.
"""
from __future__ import annotations

import os
import re
from datetime import date, datetime
from typing import Any, Callable, Mapping

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.urls import check_http_host

# -- converters ----------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false/yes/no/on/off), got {value!r}")


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(text)


def as_natural(value: Any) -> int:
    """Integer ≥ 0 (sizes, counts, seconds)."""
    number = as_int(value)
    if number < 0:
        raise ValueError(f"expected an integer >= 0, got {value!r}")
    return number


def as_positive(value: Any) -> int:
    number = as_int(value)
    if number < 1:
        raise ValueError(f"expected an integer >= 1, got {value!r}")
    return number


def as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if number != number or number < 0 or number == float("inf"):
        raise ValueError(f"expected a finite number >= 0, got {value!r}")
    return number


def optional(converter: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Empty string, ``none``/``null`` and ``None`` become ``None``."""

    def convert(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        return converter(value)

    convert.__name__ = f"optional_{converter.__name__}"
    return convert


def as_str(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value.strip()


def as_list(value: Any) -> list[str]:
    """Whitespace- or comma-separated words; a list or tuple is kept."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(v) for v in value]
    return [word for word in re.split(r"[\s,]+", str(value).strip()) if word]


def as_lines(value: Any) -> list[str]:
    """Newline-separated entries (for values that may contain spaces)."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def as_object(value: Any) -> Any:
    """A Python object given to ``wrap()`` or a dotted-path string, kept as is."""
    return value


def as_date(value: Any) -> date | None:
    """Lenient ISO date or datetime (``2016-01-22``, ``2016-01-22T10:00``)."""
    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    if not text or text.lower() in ("none", "null"):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected an ISO date like 2016-01-22, got {value!r}") from None


# -- the table -----------------------------------------------------------------------

#: name -> (default, converter). Every setting that exists is here or matches
#: one of :data:`DYNAMIC_SETTINGS`; anything else is refused at startup.
DEFAULTS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    # project and hello
    "project_name": ("", as_str),
    "project_version": ("1.0.0", as_str),
    "project_docs": ("", as_str),
    "http_api_version": ("", as_str),
    "http_scheme": (None, optional(as_str)),
    "http_host": (None, optional(as_str)),
    "registry_name": ("", as_str),
    # versioning
    "version_prefix_redirect_enabled": (True, as_bool),
    "trailing_slash_redirect_enabled": (True, as_bool),
    # end of service
    "eos": (None, as_date),
    "eos_message": (None, optional(as_str)),
    "eos_url": (None, optional(as_str)),
    # errors
    "error_info_link": ("", as_str),
    "max_body_bytes": (1048576, as_natural),
    "errors_rewrite_html": (True, as_bool),
    # cors
    "cors_origins": (["*"], as_list),
    "cors_max_age_seconds": (3600, optional(as_natural)),
    # backoff
    "backoff": (None, optional(as_natural)),
    "retry_after_seconds": (30, as_natural),
    "maintenance": (False, as_bool),
    # heartbeat and utility endpoints
    "heartbeat_timeout_seconds": (10.0, as_float),
    "heartbeat_checks": ([], as_list),
    "version_json_path": ("./version.json", as_str),
    # backends
    "storage_backend": ("", as_str),
    "storage_url": ("", as_str),
    "storage_max_fetch_size": (10000, as_positive),
    "storage_pool_size": (25, as_positive),
    "storage_maxoverflow": (5, as_natural),
    "storage_pool_timeout": (30.0, as_float),
    "storage_pool_recycle": (-1, as_int),
    "storage_statement_timeout_seconds": (30.0, as_float),
    "storage_connect_timeout_seconds": (10.0, as_float),
    "storage_prepared_statements": (True, as_bool),
    "cache_backend": ("", as_str),
    "cache_url": ("", as_str),
    "cache_prefix": ("", as_str),
    "cache_pool_size": (25, as_positive),
    "cache_maxoverflow": (5, as_natural),
    "cache_pool_timeout": (30.0, as_float),
    "cache_connect_timeout_seconds": (1.0, as_float),
    "cache_timeout_seconds": (1.0, as_float),
    "cache_retry_attempts": (2, as_natural),
    "cache_retry_timeout_seconds": (1.0, as_float),
    "cache_dead_timeout_seconds": (30.0, as_float),
    "cache_max_size_bytes": (524288, as_positive),
    "permission_backend": ("", as_str),
    "permission_url": ("", as_str),
    "permission_pool_size": (25, as_positive),
    "permission_maxoverflow": (5, as_natural),
    "permission_pool_timeout": (30.0, as_float),
    "permission_pool_recycle": (-1, as_int),
    "permission_statement_timeout_seconds": (30.0, as_float),
    "permission_connect_timeout_seconds": (10.0, as_float),
    # resources
    "resources": ([], as_list),
    "id_generator": ("uuid4", as_str),
    "paginate_by": (None, optional(as_positive)),
    "readonly": (False, as_bool),
    "strict_preconditions": (False, as_bool),
    "transaction_per_request": (True, as_bool),
    # batch
    "batch_max_requests": (25, as_natural),
    # authentication
    "multiauth_policies": (["basicauth"], as_list),
    "userid_hmac_secret": ("", as_str),
    # monitoring
    "statsd_url": (None, optional(as_str)),
    "statsd_prefix": ("cliquet", as_str),
    "statsd_flush_interval_seconds": (0.5, as_float),
    "logging_renderer": ("classic", as_str),
    "profiler_enabled": (False, as_bool),
    "profiler_dir": ("/tmp", as_str),
    "profiler_path_filter": ("", as_str),
    "prometheus_enabled": (False, as_bool),
    "prometheus_multiproc_dir": ("", as_str),
    "sentry_dsn": (None, optional(as_str)),
    "sentry_env": (None, optional(as_str)),
}

#: Aliases from the protocol's spellings to ours.
ALIASES = {
    "multiauth.policies": "multiauth_policies",
}

_NAME = r"[a-z][a-z0-9_]*"

#: Settings whose names carry a resource or policy name: (pattern, converter).
DYNAMIC_SETTINGS: list[tuple[re.Pattern[str], Callable[[Any], Any]]] = [
    (re.compile(rf"{_NAME}_(read|write|create)_principals"), as_list),
    (re.compile(rf"{_NAME}_cache_expires_seconds"), optional(as_natural)),
    (re.compile(rf"(collection|record)_{_NAME}_(get|head|post|put|patch|delete)_enabled"), as_bool),
    (re.compile(rf"multiauth\.policy\.{_NAME}\.[a-z0-9_.]+"), as_object),
    (re.compile(rf"resource\.{_NAME}\.[a-z0-9_.]+"), as_object),
]

#: Keys PasteDeploy puts in ``global_conf``; not settings.
_PASTE_KEYS = {"__file__", "here", "__name__"}

#: Setting names whose values are secrets: never logged, never shown.
SECRET_SETTINGS = {"userid_hmac_secret", "sentry_dsn"}


def converter_for(name: str) -> Callable[[Any], Any] | None:
    if name in DEFAULTS:
        return DEFAULTS[name][1]
    for pattern, converter in DYNAMIC_SETTINGS:
        if pattern.fullmatch(name):
            return converter
    return None


def env_name(name: str) -> str:
    """``multiauth.policies`` -> ``CLIQUET_MULTIAUTH_POLICIES``."""
    return "CLIQUET_" + re.sub(r"[.\-]", "_", name).upper()


def load_settings(
    *sources: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merge ``sources`` (later wins), apply defaults, environment and types.

    ``environ`` defaults to ``os.environ``; pass ``{}`` to ignore it.
    Raises :class:`ConfigurationError` naming the setting at fault.
    """
    raw: dict[str, Any] = {}
    for source in sources:
        for key, value in (source or {}).items():
            if key in _PASTE_KEYS or key.startswith("__"):
                continue
            raw[key] = value

    project_name = str(raw.get("project_name", raw.get("cliquet.project_name", "")) or "").strip()
    merged: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in raw.items():
        name = _normalise(key, project_name)
        if name in merged and merged[name] != value:
            raise ConfigurationError(
                f"Setting {name!r} is given twice with different values ({spelled[name]!r} and {key!r})"
            )
        merged[name] = value
        spelled[name] = key

    env = os.environ if environ is None else environ
    for name in list(DEFAULTS) + [n for n in merged if n not in DEFAULTS]:
        variable = env_name(name)
        if variable in env:
            merged[name] = env[variable]
    # Env-only dynamic settings: a resource's principals can be set on a container
    # without touching the ini (dotted names cannot be recovered from env names).
    for variable, value in env.items():
        if variable.startswith("CLIQUET_"):
            name = variable[len("CLIQUET_"):].lower()
            if name not in merged and name not in DEFAULTS and "." not in name and converter_for(name):
                merged[name] = value

    settings: dict[str, Any] = {name: default for name, (default, _) in DEFAULTS.items()}
    for name, value in merged.items():
        converter = converter_for(name)
        if converter is None:
            raise ConfigurationError(f"Unknown setting {name!r}{_suggest(name)}")
        try:
            settings[name] = converter(value)
        except ValueError as exc:
            raise ConfigurationError(f"Invalid value for setting {name!r}: {exc}") from None

    _derive(settings)
    _check(settings)
    return settings


def _normalise(key: str, project_name: str) -> str:
    name = key.strip()
    if name.startswith("cliquet."):
        name = name[len("cliquet."):]
    elif project_name and name.startswith(project_name + "."):
        name = name[len(project_name) + 1:]
    return ALIASES.get(name, name)


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, DEFAULTS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _derive(settings: dict[str, Any]) -> None:
    if not settings["http_api_version"]:
        match = re.match(r"(\d+)\.(\d+)", settings["project_version"])
        if match is None:
            match = re.match(r"(\d+)()", settings["project_version"])
        if match is None:
            raise ConfigurationError(
                f"Setting 'project_version' must start with MAJOR[.MINOR], got {settings['project_version']!r}"
            )
        settings["http_api_version"] = f"{match.group(1)}.{match.group(2) or 0}"
    elif not re.fullmatch(r"\d+\.\d+", settings["http_api_version"]):
        raise ConfigurationError(
            f"Setting 'http_api_version' must be MAJOR.MINOR, got {settings['http_api_version']!r}"
        )


def version_prefix(settings: Mapping[str, Any]) -> str:
    """``/v1`` for ``http_api_version = 1.4``."""
    return "/v" + settings["http_api_version"].split(".")[0]


def _check(settings: dict[str, Any]) -> None:
    if settings["http_scheme"] not in (None, "http", "https"):
        raise ConfigurationError(f"Setting 'http_scheme' must be http or https, got {settings['http_scheme']!r}")
    check_http_host(settings["http_host"])
    if settings["logging_renderer"] not in ("classic", "json"):
        raise ConfigurationError(
            f"Setting 'logging_renderer' must be classic or json, got {settings['logging_renderer']!r}"
        )
    paginate_by = settings["paginate_by"]
    if paginate_by is not None and paginate_by > settings["storage_max_fetch_size"]:
        raise ConfigurationError(
            "Setting 'paginate_by' cannot exceed 'storage_max_fetch_size' "
            f"({paginate_by} > {settings['storage_max_fetch_size']})"
        )
    for origin in settings["cors_origins"]:
        if origin == "null":
            raise ConfigurationError("Setting 'cors_origins' cannot allow the 'null' origin")
    if settings["heartbeat_timeout_seconds"] <= 0:
        raise ConfigurationError("Setting 'heartbeat_timeout_seconds' must be > 0")
    if settings["eos"] is None and (settings["eos_message"] or settings["eos_url"]):
        raise ConfigurationError("Settings 'eos_message' and 'eos_url' need 'eos' to be set")


def public_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings shown in hello by default (PROTOCOL §1.3)."""
    return {"batch_max_requests": settings["batch_max_requests"], "readonly": settings["readonly"]}
