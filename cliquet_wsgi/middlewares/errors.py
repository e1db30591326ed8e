"""Turn everything that goes wrong below into a protocol JSON error (PROTOCOL §2).

Use it once per stack, below CORS and backoff (so that their headers decorate
the errors it renders) and above every layer that can raise. It also rejects
inputs that would otherwise crash a layer below: request bodies over
``max_body_bytes`` (413/113) and paths or querystrings that are not UTF-8
(400/107); a connection lost while the app reads the body is a 400/107
logged at INFO (:class:`ClientInput`). Do not use it if an outer framework
already renders errors in its own format and clients do not speak the
Cliquet protocol.

NOTE(errors): the body limit can only stop uploads that the server streams to
the app (gunicorn does: a ``Content-Length`` over the limit is refused before
any body byte arrives). waitress reads the whole body before calling the app;
set its ``max_request_body_size`` to ``max_body_bytes`` so that it refuses
large uploads itself (with its own, non-JSON, 413). See tests/test_servers.py.

NOTE(errors): to be able to replace a response with an error when the body
iterable raises, the middleware waits for the first non-empty chunk of the
body before starting the response. Streaming apps that yield empty chunks for
flow control therefore see their first bytes delayed until real data comes.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import unquote_to_bytes

from cliquet_wsgi import environ as keys
from cliquet_wsgi.errors import (
    ERRORS,
    MESSAGES,
    BackendError,
    CliquetError,
    ConfigurationError,
    error_from_exception,
    error_response,
    invalid_parameter,
    legacy_error,
)
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry
from cliquet_wsgi.settings import converter_for

logger = logging.getLogger("cliquet_wsgi.errors")

def _checked(name: str, value: Any) -> Any:
    """Convert a keyword like the settings loader would, failing at startup."""
    try:
        return converter_for(name)(value)
    except ValueError as exc:
        raise ConfigurationError(f"Invalid value for setting {name!r}: {exc}") from None


def check_encoding(environ: dict[str, Any]) -> None:
    """Raise 400/107 if ``PATH_INFO`` or the decoded ``QUERY_STRING`` is not UTF-8 (RELIABILITY I2)."""
    if not _path_is_utf8(environ.get("PATH_INFO", "")):
        raise invalid_parameter("path", None, "Invalid UTF-8 sequence")
    if not _query_is_utf8(environ.get("QUERY_STRING", "")):
        raise invalid_parameter("querystring", None, "Invalid UTF-8 sequence")


def _path_is_utf8(path: str) -> bool:
    # PERF: ASCII is the common case and is always valid.
    if path.isascii():
        return True
    try:
        # PEP 3333: PATH_INFO holds the raw bytes decoded as latin-1.
        path.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return False
    return True


def _query_is_utf8(query: str) -> bool:
    if "%" not in query and query.isascii():
        return True
    try:
        unquote_to_bytes(query.encode("latin-1")).decode("utf-8")
    except UnicodeError:
        return False
    return True


def _too_large() -> CliquetError:
    return CliquetError(413, ERRORS.REQUEST_TOO_LARGE, message=MESSAGES["too_large"])


def _body_incomplete() -> CliquetError:
    return invalid_parameter("body", None, "Request body incomplete: the connection was lost while reading it")


class ClientInput:
    """``wsgi.input`` of a request with a body: a client that goes away mid-upload is a 400, not a 500.

    A reset connection (``ConnectionResetError``, gunicorn's ``NoMoreData``,
    a socket timeout: all ``OSError``) while the app reads the body becomes
    a :class:`CliquetError` 400/107, logged at INFO: nobody is there to read
    the answer, and an ERROR with a traceback (and a Sentry event) for every
    mobile client that lost its network would bury the real errors. ``gone``
    stays true afterwards, so the middleware answers so even when the app
    catches the exception and renders something else.
    """

    __slots__ = ("_stream", "gone")

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.gone = False

    def _lost(self, exc: OSError) -> CliquetError:
        self.gone = True
        logger.info("Connection lost while reading the request body: %r", exc)
        return _body_incomplete()

    def _read(self, size: int) -> bytes:
        try:
            return self._stream.read(size)
        except OSError as exc:
            raise self._lost(exc) from None

    def _readline(self, size: int) -> bytes:
        try:
            return self._stream.readline(size)
        except OSError as exc:
            raise self._lost(exc) from None

    def read(self, size: int | None = -1) -> bytes:
        return self._read(-1 if size is None else size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._readline(-1 if size is None else size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class LimitedInput(ClientInput):
    """``wsgi.input`` for bodies of unknown length: 413 once more than ``limit`` bytes are read.

    Never reads more than ``limit + 1`` bytes from the server's stream.
    ``exceeded`` stays true afterwards, so the middleware answers 413 even when
    the app catches the exception and renders something else. A lost
    connection is a 400, as for :class:`ClientInput`.
    """

    # PERF: built for every request without Content-Length (most GETs).
    __slots__ = ("_limit", "_count", "exceeded")

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__(stream)
        self._limit = limit
        self._count = 0
        self.exceeded = False

    def _account(self, data: bytes) -> bytes:
        self._count += len(data)
        if self._count > self._limit:
            self.exceeded = True
            raise _too_large()
        return data

    def _allowance(self, size: int | None) -> int:
        left = self._limit + 1 - self._count
        return left if size is None or size < 0 else min(size, left)

    def read(self, size: int | None = -1) -> bytes:
        if self.exceeded:
            raise _too_large()
        allowance = self._allowance(size)
        if allowance <= 0:
            return b""
        if size is None or size < 0:
            # Read everything up to the allowance, in chunks, since a chunked
            # stream may return less than asked.
            parts = []
            while allowance > 0:
                part = self._read(allowance)
                if not part:
                    break
                parts.append(self._account(part))
                allowance = self._allowance(None)
            return b"".join(parts)
        return self._account(self._read(allowance))

    def readline(self, size: int | None = -1) -> bytes:
        if self.exceeded:
            raise _too_large()
        allowance = self._allowance(size)
        if allowance <= 0:
            return b""
        return self._account(self._readline(allowance))


class _Capture:
    """The ``start_response`` given to the app: records, forwards only when told to."""

    __slots__ = ("_start_response", "status", "headers", "sent", "_write")

    def __init__(self, start_response: Callable[..., Any]) -> None:
        self._start_response = start_response
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = False
        self._write: Callable[[bytes], Any] | None = None

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
        if exc_info is not None and self.sent:
            # PEP 3333: too late to change the headers, re-raise the app's error.
            raise exc_info[1].with_traceback(exc_info[2])
        if self.status is not None and exc_info is None:
            raise AssertionError("start_response called twice without exc_info")
        self.status, self.headers = status, headers
        return self.write

    def send(self) -> None:
        if not self.sent:
            self.sent = True
            self._write = self._start_response(self.status, self.headers)

    def write(self, data: bytes) -> None:
        # Legacy write(): the headers must go out first, so no rewrite is possible.
        self.send()
        self._write(data)


class _Body:
    """The app's body, with its first chunk already pulled; logs late failures; forwards ``close()``."""

    __slots__ = ("_first", "_iterator", "_app_iter")

    def __init__(self, first: bytes, iterator: Iterator[bytes], app_iter: Any) -> None:
        self._first = first
        self._iterator = iterator
        self._app_iter = app_iter

    def __iter__(self) -> Iterator[bytes]:
        # PERF: a generator, not __next__: no Python call per chunk, and the end of
        # the app's body is not re-raised through Python code.
        yield self._first
        try:
            # A for loop rather than "yield from": if the server stops early, the
            # app's iterable is closed once, by close() below, not also from here.
            for chunk in self._iterator:
                yield chunk
        except Exception:
            # Headers are gone: the server can only cut the connection.
            logger.exception("Error while sending the response body")
            raise

    def close(self) -> None:
        _close(self._app_iter)


def _close(app_iter: Any) -> None:
    close = getattr(app_iter, "close", None)
    if close is not None:
        close()


class ErrorsMiddleware:
    """Render exceptions and legacy error pages from below as protocol JSON errors.

    Settings:
      * ``retry_after_seconds`` -- ``Retry-After`` of 503 responses for :class:`BackendError`.
      * ``error_info_link`` -- ``info`` URL of 500 responses (omitted when empty).
      * ``max_body_bytes`` -- larger request bodies get 413/113 (``0``: no limit).
      * ``errors_rewrite_html`` -- rewrite non-JSON error responses (status >= 400) of the app.

    Environ: sets ``cliquet.errno`` (:data:`~cliquet_wsgi.environ.ERRNO`) on every
    error it renders and ``cliquet.registry`` if absent; replaces ``wsgi.input``
    for bodies without ``Content-Length``.

    Place it below CORS and backoff, above version, heartbeat, batch, auth and the app::

        app = ErrorsMiddleware(app, error_info_link="https://example.com/issues")
        app = BackoffMiddleware(CORSMiddleware(app))  # outer layers decorate its errors
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        retry_after_seconds: int = 30,
        error_info_link: str = "",
        max_body_bytes: int = 1048576,
        errors_rewrite_html: bool = True,
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        self.retry_after_seconds = _checked("retry_after_seconds", retry_after_seconds)
        self.error_info_link = _checked("error_info_link", error_info_link) or None
        self.max_body_bytes = _checked("max_body_bytes", max_body_bytes)
        self.rewrite_html = _checked("errors_rewrite_html", errors_rewrite_html)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault(keys.REGISTRY, self.registry)
        # PERF: inline, plain string checks; the helpers only run on rare inputs.
        query = environ.get("QUERY_STRING", "")
        if not (environ.get("PATH_INFO", "").isascii() and "%" not in query and query.isascii()):
            try:
                check_encoding(environ)
            except CliquetError as error:
                return self._render(environ, start_response, error)
        body_input: ClientInput | None = None
        length = environ.get("CONTENT_LENGTH", "")
        if self.max_body_bytes:
            if length:
                error = self._length_error(length)
                if error is not None:
                    return self._render(environ, start_response, error)
            else:
                # No Content-Length: chunked upload (wsgi.input_terminated) or no body.
                body_input = environ["wsgi.input"] = LimitedInput(environ["wsgi.input"], self.max_body_bytes)
        if body_input is None and length and length != "0":
            # PERF: only requests announcing a body pay for the wrapper.
            body_input = environ["wsgi.input"] = ClientInput(environ["wsgi.input"])

        capture = _Capture(start_response)
        app_iter: Any = None
        try:
            app_iter = self.app(environ, capture.start_response)
            if capture.status is not None and isinstance(app_iter, (list, tuple)):
                # PERF: a list cannot fail while iterated; hand it over untouched.
                first, iterator = b"", None
            else:
                first, iterator = self._first_chunk(app_iter, capture)
        except Exception as exc:
            if app_iter is not None:
                _close(app_iter)
            return self._render_exception(environ, start_response, exc, capture)

        if not capture.sent and body_input is not None:
            # The app swallowed our 413 or 400 (Django turns them into its 500 page).
            if isinstance(body_input, LimitedInput) and body_input.exceeded:
                _close(app_iter)
                return self._render(environ, start_response, _too_large())
            if body_input.gone:
                _close(app_iter)
                return self._render(environ, start_response, _body_incomplete())
        if not capture.sent:
            status = capture.status
            # PERF: statuses below 400 are never rewritten; skip parsing them.
            if self.rewrite_html and not (status < "4" and status[:3].isdigit()):
                error = legacy_error(status, capture.headers, self.error_info_link)
                if error is not None:
                    _close(app_iter)
                    return self._render(environ, start_response, error)
            capture.send()
        if iterator is None:
            return app_iter
        return _Body(first, iterator, app_iter)

    def _length_error(self, length: str) -> CliquetError | None:
        if not length.strip().isdigit():
            return invalid_parameter("header", "Content-Length", "Invalid Content-Length header")
        if int(length) > self.max_body_bytes:
            # Refused without reading a byte of the body (RELIABILITY I4).
            return _too_large()
        return None

    @staticmethod
    def _first_chunk(app_iter: Any, capture: _Capture) -> tuple[bytes, Iterator[bytes] | None]:
        """Pull body chunks until one is non-empty, so that failures happen before the headers go."""
        iterator = iter(app_iter)
        first = b""
        for first in iterator:
            if first or capture.sent:
                break
        if capture.status is None:
            raise RuntimeError("The application sent a body without calling start_response")
        return first, iterator

    def _render_exception(
        self, environ: dict[str, Any], start_response: Callable[..., Any], exc: Exception, capture: _Capture
    ) -> list[bytes]:
        exc_info = sys.exc_info() if capture.status is not None else None
        error = error_from_exception(
            exc, retry_after_seconds=self.retry_after_seconds, error_info_link=self.error_info_link
        )
        if isinstance(exc, BackendError):
            original = exc.original or exc
            logger.critical(
                "Backend error: %s", exc, exc_info=(type(original), original, original.__traceback__)
            )
        elif not isinstance(exc, CliquetError):
            # S6: the traceback goes to the log, once, never to the client.
            logger.error("Unhandled exception during %s %s", environ.get("REQUEST_METHOD"),
                         environ.get("PATH_INFO"), exc_info=exc)
        try:
            return self._render(environ, start_response, error, exc_info)
        finally:
            exc_info = None  # break the traceback reference cycle

    @staticmethod
    def _render(
        environ: dict[str, Any], start_response: Callable[..., Any], error: CliquetError, exc_info: Any = None
    ) -> list[bytes]:
        environ[keys.ERRNO] = error.errno
        return error_response(error, start_response, exc_info)


filter_factory = make_filter_factory(ErrorsMiddleware)
