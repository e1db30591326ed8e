"""What independent middlewares of one stack share, whatever their order.

A :class:`Registry` holds, for one stack (one ``paste.ini`` pipeline or one
``wrap()`` call):

* the merged settings every middleware of the stack was configured with;
* the backends (storage, cache, permission), built lazily from those settings
  on first use, so that no middleware has to sit above another to create them;
* hello's capabilities and public settings, registered by whichever middleware
  provides a feature (batch, auth, resources…) at construction time and read
  by hello at request time;
* heartbeat checks (backends register theirs when built, applications by
  dotted path in ``heartbeat_checks``);
* the authenticator, installed by the auth middleware, which hello calls to
  show ``user`` even though it sits above auth.

How middlewares find it: ``wrap()`` creates one and passes ``registry=`` to
each layer. In a PasteDeploy pipeline every filter of the same ini file gets
the same registry, keyed by the ini path (or by ``registry_name``). A
middleware built by hand without ``registry=`` uses :func:`default_registry`.
Each middleware also puts it in ``environ["cliquet.registry"]`` if absent, so
application views reach the backends (see :mod:`cliquet_wsgi.api`).
"""
from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Callable, Mapping

from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.instrumentation import BackendListener, instrument
from cliquet_wsgi.settings import DEFAULTS, load_settings, public_settings

logger = logging.getLogger(__name__)

#: URL scheme -> module providing ``STORAGE``/``CACHE``/``PERMISSION`` classes.
#: A string table, so that the core does not import any backend.
BACKEND_SCHEMES = {
    "memory": "cliquet_wsgi.backends.memory",
    "sqlite": "cliquet_wsgi.backends.sqlite",
    "postgresql": "cliquet_wsgi.backends.postgresql",
    "postgres": "cliquet_wsgi.backends.postgresql",
    "memcached": "cliquet_wsgi.backends.memcached",
}

BACKEND_KINDS = ("storage", "cache", "permission")

#: Signature of a heartbeat check: returns True (healthy), False, or None (not applicable).
HeartbeatCheck = Callable[[], "bool | None"]


def import_dotted(path: str) -> Any:
    """``package.module.attr`` or ``package.module:attr`` -> the object."""
    module_name, sep, attr = path.replace(":", ".").rpartition(".")
    if not sep:
        return importlib.import_module(path)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return importlib.import_module(path)
    try:
        return getattr(module, attr)
    except AttributeError:
        return importlib.import_module(path)


class Registry:
    """Shared state of one stack. Thread-safe; see the module docstring."""

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        self._lock = threading.RLock()
        self._explicit: dict[str, Any] = {}
        self.settings: dict[str, Any] = dict(settings) if settings is not None else load_settings(environ={})
        if settings is not None:
            self._explicit = {k: v for k, v in settings.items() if k not in DEFAULTS or DEFAULTS[k][0] != v}
        self.capabilities: dict[str, dict[str, Any]] = {}
        self.public_settings: dict[str, Any] = public_settings(self.settings)
        self.heartbeat_checks: dict[str, HeartbeatCheck] = {}
        self._backends: dict[str, Any] = {}
        self.authenticator: Callable[[dict], Any] | None = None
        self._app_checks_loaded = False
        self._endpoint_resolvers: list[Callable[[str], "list[str] | None"]] = []
        self._batch_endpoints: dict[str, Callable[..., Any]] = {}
        # Live list shared with the timing proxies (see cliquet_wsgi.instrumentation).
        self.backend_listeners: list[BackendListener] = []

    # -- settings ------------------------------------------------------------------

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Merge the settings of one more middleware of the stack.

        Values that differ from the defaults must agree across middlewares
        (one storage URL per stack), otherwise :class:`ConfigurationError`.
        """
        with self._lock:
            for name, value in settings.items():
                if name in DEFAULTS and DEFAULTS[name][0] == value:
                    continue
                if name in self._explicit and self._explicit[name] != value:
                    raise ConfigurationError(
                        f"Setting {name!r} has two values in one stack: "
                        f"{self._explicit[name]!r} and {value!r}"
                    )
                self._explicit[name] = value
                self.settings[name] = value
            self.public_settings.update(public_settings(self.settings))

    # -- hello -----------------------------------------------------------------------

    def register_capability(self, identifier: str, description: str, url: str, **extra: Any) -> None:
        """Advertise a feature in hello. Registering the same id twice is a startup error."""
        with self._lock:
            entry = {"description": description, "url": url, **extra}
            existing = self.capabilities.get(identifier)
            if existing is not None and existing != entry:
                raise ConfigurationError(f"Capability {identifier!r} is registered twice")
            self.capabilities[identifier] = entry

    def register_public_setting(self, name: str, value: Any) -> None:
        with self._lock:
            self.public_settings[name] = value

    # -- routing knowledge shared with outer layers -----------------------------------

    def register_endpoint_methods(self, resolver: Callable[[str], "list[str] | None"]) -> None:
        """Add a resolver: unprefixed path -> methods the endpoint allows, or ``None`` if not its own.

        CORS preflight uses it to refuse methods an endpoint does not define.
        """
        with self._lock:
            self._endpoint_resolvers.append(resolver)

    def endpoint_methods(self, path: str) -> "list[str] | None":
        """Methods of the endpoint at ``path`` (without version prefix), ``None`` if unknown."""
        for resolver in self._endpoint_resolvers:
            methods = resolver(path)
            if methods is not None:
                return methods
        return None

    def register_batch_endpoint(self, path: str, app: Callable[..., Any]) -> None:
        """Let batch sub-requests reach an endpoint served by a layer above batch (hello, heartbeats).

        ``path`` is unprefixed (``/``, ``/__heartbeat__``). ``app`` is called
        with the sub-request laid out as the version layer leaves a direct
        request: ``SCRIPT_NAME`` ends with the prefix, ``PATH_INFO`` is
        ``path`` and ``cliquet.path_orig`` is ``(SCRIPT_NAME before the
        prefix, the prefixed path)``.
        """
        with self._lock:
            self._batch_endpoints[path] = app

    def batch_endpoint(self, path: str) -> Callable[..., Any] | None:
        """The app registered for unprefixed ``path`` by :meth:`register_batch_endpoint`, if any."""
        return self._batch_endpoints.get(path)

    # -- heartbeat -------------------------------------------------------------------

    def register_heartbeat(self, name: str, check: HeartbeatCheck) -> None:
        with self._lock:
            self.heartbeat_checks[name] = check

    def all_heartbeat_checks(self) -> dict[str, HeartbeatCheck]:
        """Checks of the configured backends (built now if needed) and of the app."""
        for kind in BACKEND_KINDS:
            try:
                self.backend(kind)
            except ConfigurationError:
                raise
            except Exception:
                # A backend that cannot even be built is reported unhealthy.
                logger.exception("Could not build the %s backend", kind)
                self.register_heartbeat(kind, lambda: False)
        with self._lock:
            if not self._app_checks_loaded:
                for entry in self.settings.get("heartbeat_checks", []):
                    name, sep, path = entry.partition("=")
                    if not sep:
                        name, path = path.rsplit(".", 1)[-1], entry
                    self.heartbeat_checks[name] = import_dotted(path)
                self._app_checks_loaded = True
            return dict(self.heartbeat_checks)

    # -- backends --------------------------------------------------------------------

    @property
    def storage(self) -> Any:
        return self.backend("storage")

    @property
    def cache(self) -> Any:
        return self.backend("cache")

    @property
    def permission(self) -> Any:
        return self.backend("permission")

    def backend(self, kind: str) -> Any:
        """The backend of ``kind`` built from settings, or ``None`` if not configured."""
        if kind in self._backends:
            return self._backends[kind]
        with self._lock:
            if kind not in self._backends:
                backend = build_backend(kind, self.settings)
                self._backends[kind] = instrument(kind, backend, self.backend_listeners)
                if backend is not None:
                    self.register_heartbeat(kind, backend.ping)
            return self._backends[kind]

    def set_backend(self, kind: str, backend: Any) -> None:
        """Install a ready-made backend (tests, or an app that builds its own)."""
        with self._lock:
            self._backends[kind] = instrument(kind, backend, self.backend_listeners)
            if backend is not None:
                self.register_heartbeat(kind, backend.ping)

    def add_backend_listener(self, listener: BackendListener) -> None:
        """Call ``listener(kind, class_name, method, duration_ms)`` after every public backend call.

        Backends are then handed out wrapped in a timing proxy; without any
        listener they are handed out raw (monitoring off costs nothing).
        """
        with self._lock:
            self.backend_listeners.append(listener)
            for kind, backend in list(self._backends.items()):
                self._backends[kind] = instrument(kind, backend, self.backend_listeners)

    def close(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                close = getattr(backend, "close", None)
                if close is not None:
                    close()
            self._backends.clear()


def backend_class(kind: str, settings: Mapping[str, Any]) -> type | None:
    """The class configured for ``kind`` by ``<kind>_backend`` or the scheme of ``<kind>_url``."""
    dotted = settings.get(f"{kind}_backend") or ""
    url = settings.get(f"{kind}_url") or ""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if url and not scheme:
        raise ConfigurationError(f"Setting '{kind}_url' must be a URL like memory:// or sqlite:///path, got {url!r}")
    if scheme and scheme not in BACKEND_SCHEMES:
        raise ConfigurationError(
            f"Setting '{kind}_url' has unknown scheme {scheme!r} (one of {', '.join(sorted(BACKEND_SCHEMES))})"
        )
    if not dotted and not scheme:
        return None
    target = dotted or BACKEND_SCHEMES[scheme]
    if dotted and scheme and dotted.rsplit(".", 1)[0] != BACKEND_SCHEMES[scheme] and dotted != BACKEND_SCHEMES[scheme]:
        # NOTE: a custom class path with a URL is fine as long as the URL does
        # not name one of our own backends that contradicts it.
        if dotted.startswith("cliquet_wsgi.backends."):
            raise ConfigurationError(
                f"Settings '{kind}_backend' ({dotted}) and '{kind}_url' ({scheme}://) name different backends"
            )
    try:
        found = import_dotted(target)
    except ImportError as exc:
        raise ConfigurationError(f"Setting '{kind}_backend': cannot import {target!r}: {exc}") from None
    if isinstance(found, type):
        return found
    cls = getattr(found, kind.upper(), None)
    if cls is None:
        raise ConfigurationError(f"Backend module {target!r} provides no {kind} backend")
    return cls


def build_backend(kind: str, settings: Mapping[str, Any]) -> Any:
    """The configured backend of ``kind``, or ``None`` if none is configured."""
    cls = backend_class(kind, settings)
    if cls is None:
        return None
    return cls.from_settings(settings)


_registries: dict[str, Registry] = {}
_registries_lock = threading.Lock()


def named_registry(name: str, settings: Mapping[str, Any]) -> Registry:
    """The registry called ``name`` in this process, created or configured with ``settings``."""
    with _registries_lock:
        registry = _registries.get(name)
        if registry is None:
            registry = _registries[name] = Registry(settings)
            return registry
    registry.configure(settings)
    return registry


def default_registry() -> Registry:
    """The process-wide registry used by middlewares built without ``registry=``."""
    with _registries_lock:
        registry = _registries.get("")
        if registry is None:
            registry = _registries[""] = Registry()
        return registry


def all_registries() -> list[Registry]:
    """Every registry of this process (the CLI migrates their backends)."""
    with _registries_lock:
        return list(_registries.values())
