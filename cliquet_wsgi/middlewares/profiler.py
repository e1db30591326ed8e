"""Write one cProfile file per request, to find where time goes (PROTOCOL §12).

For development and short investigations on a staging box: profiling slows
every request down several times and writes a file per request. Off by
default; :func:`cliquet_wsgi.stack.wrap` only adds it with
``profiler_enabled``. Files are named like
``POST.v1.batch.000176ms.1427458675.prof`` (method, path, duration, epoch
seconds) and open with ``python -m pstats`` or snakeviz.

What is profiled: the call of the inner app in the request's thread (the
body of a list response is already built then; a streamed body is not
included). Threads the app starts are not profiled.
"""
from __future__ import annotations

import cProfile
import logging
import marshal
import os
import re
import time
from typing import Any, Callable, Iterable

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import ConfigurationError
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry

logger = logging.getLogger(__name__)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def profile_name(method: str, path: str, duration_ms: float, epoch: float) -> str:
    """``POST.v1.batch.000176ms.1427458675`` (without ``.prof``); safe as a file name."""
    if method not in HTTP_METHODS:
        method = "OTHER"
    dotted = _UNSAFE.sub("_", path.strip("/").replace("/", "."))[:100].strip(".") or "root"
    dotted = re.sub(r"\.{2,}", ".", dotted)
    return f"{method}.{dotted}.{int(duration_ms):06d}ms.{int(epoch)}"


class ProfilerMiddleware:
    """Profile each request with cProfile and write the stats to ``profiler_dir``.

    Settings:
        ``profiler_enabled``: off -> the layer only passes requests through.
        ``profiler_dir``: existing writable directory for the ``.prof`` files.
        ``profiler_path_filter``: regular expression; only requests whose path
        (``SCRIPT_NAME`` + ``PATH_INFO``) it matches (``re.search``) are
        profiled. Empty: all.

    Environ: sets ``cliquet.registry`` if absent. Sits outermost so that the
    profile covers the whole stack.

    Example::

        app = ProfilerMiddleware(app, profiler_enabled=True, profiler_dir="/tmp/prof",
                                 profiler_path_filter=r"^/v1/batch")
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        profiler_enabled: bool = False,
        profiler_dir: str = "/tmp",
        profiler_path_filter: str = "",
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        self.enabled = bool(profiler_enabled)
        self.directory = profiler_dir
        try:
            self.path_filter = re.compile(profiler_path_filter) if profiler_path_filter else None
        except re.error as exc:
            raise ConfigurationError(f"Setting 'profiler_path_filter' is not a valid regular expression: {exc}") \
                from None
        if self.enabled and not (os.path.isdir(profiler_dir) and os.access(profiler_dir, os.W_OK)):
            raise ConfigurationError(f"Setting 'profiler_dir': {profiler_dir!r} is not a writable directory")

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.enabled:
            return self.app(environ, start_response)
        if keys.REGISTRY not in environ:
            environ[keys.REGISTRY] = self.registry
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if self.path_filter is not None and not self.path_filter.search(path):
            return self.app(environ, start_response)
        profile = cProfile.Profile()
        try:
            profile.enable()
        except ValueError:
            # Another profiler is active in this thread (Python >= 3.12 refuses two).
            return self.app(environ, start_response)
        start = time.perf_counter()
        try:
            return self.app(environ, start_response)
        finally:
            profile.disable()
            duration_ms = (time.perf_counter() - start) * 1000.0
            self._write(profile, environ.get("REQUEST_METHOD", ""), path, duration_ms)

    def _write(self, profile: cProfile.Profile, method: str, path: str, duration_ms: float) -> None:
        name = profile_name(method, path, duration_ms, time.time())
        profile.create_stats()
        for attempt in range(100):
            suffix = f"-{attempt}" if attempt else ""
            filename = os.path.join(self.directory, f"{name}{suffix}.prof")
            try:
                # "x": two requests in the same second never overwrite each other.
                with open(filename, "xb") as stream:
                    marshal.dump(profile.stats, stream)  # the format pstats reads
                return
            except FileExistsError:
                continue
            except OSError:
                # NOTE: a full disk must not fail the request being profiled.
                logger.warning("Could not write profile %s", filename, exc_info=True)
                return


filter_factory = make_filter_factory(ProfilerMiddleware)
