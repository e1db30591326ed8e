"""One structured summary line per request, and a request id on every log record.

Use it everywhere: it is cheap (no formatting happens unless a handler is
enabled for logger ``cliquet_wsgi.request.summary`` at INFO) and gives the
``request.summary`` events of PROTOCOL §12. It never configures logging:
point your logging config at :class:`JsonFormatter` (mozlog envelope, for
production) or :class:`ClassicFormatter` (one readable line, for development),
and add :class:`RequestIdFilter` to handlers whose format uses
``%(request_id)s``. In an ini file (``logging.config.fileConfig``)::

    [formatter_json]
    class = cliquet_wsgi.middlewares.request_log.JsonFormatter

(``fileConfig`` disables loggers that exist before it runs: configure logging
before building the stack, as ``gunicorn --paste`` and ``pserve`` do, or pass
``disable_existing_loggers=False``.)

Decisions (documented because logs outlive code):

* ``path`` is the path as received (``SCRIPT_NAME`` + ``PATH_INFO`` before
  inner layers rewrite them), like Kinto; ``route`` adds the matched route
  pattern (``cliquet.route_pattern``), absent when nothing matched, for
  grouping without parsing ids out of paths.
* ``querystring`` keeps every key, but only the values of the protocol's own
  parameters (``_since``, ``_before``, ``_to``, ``_limit``, ``_sort``,
  ``_fields``); other values are filter data or, for careless clients,
  tokens: they are logged as ``"[redacted]"``.
* Headers are never logged except ``User-Agent`` and ``Accept-Language``;
  so no ``Authorization`` value can leak from this layer.
* ``X-Request-Id`` from the client is kept when it matches
  ``^[A-Za-z0-9._-]{1,128}$`` (so that it cannot forge log lines or
  headers), otherwise a uuid4 hex is generated; it is echoed in the response.
* The summary is emitted when the inner app has returned (or, for a lazily
  started response, when the server closes its body); ``t`` is the time
  until then, in ms. Records logged while a streamed body is being iterated
  (after the app returned) do not carry the request id.
"""
from __future__ import annotations

import contextvars
import json
import logging
import math
import re
import random
import socket
import sys
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import unquote_plus

from cliquet_wsgi import environ as keys
from cliquet_wsgi.instrumentation import observe, process_id
from cliquet_wsgi.paste import make_filter_factory
from cliquet_wsgi.registry import Registry, default_registry
from cliquet_wsgi.rendering import json_dumps_bytes

try:
    import orjson as _orjson
except ImportError:  # the ``speedups`` extra is not installed
    _orjson = None
else:
    _SORT_KEYS = _orjson.OPT_SORT_KEYS

#: Logger of the ``request.summary`` and ``subrequest.summary`` events.
SUMMARY_LOGGER = "cliquet_wsgi.request.summary"

#: Client-supplied request ids are accepted only when they match this.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._\-]{1,128}")

#: Querystring parameters whose values are logged (the protocol's own).
LOGGED_QUERY_VALUES = frozenset({"_since", "_before", "_to", "_limit", "_sort", "_fields"})
REDACTED = "[redacted]"
#: Longest path or User-Agent logged (a 64 KiB path must not make a 64 KiB line).
_MAX_FIELD = 2048

#: (request id, Logger name) of the request being handled in this thread/task.
_current: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "cliquet_request_log", default=None
)

_perf_counter = time.perf_counter
_INFO = logging.INFO


def current_request_id() -> str | None:
    """Id of the request being handled by this thread or task, if any."""
    current = _current.get()
    return current[0] if current is not None else None


class RequestLogMiddleware:
    """Log a ``request.summary`` per request; give every request an id.

    Settings:
        ``project_name``: the ``Logger`` of JSON events (default ``cliquet``).

    Environ: reads ``HTTP_X_REQUEST_ID``, and after the inner app returned
    ``cliquet.route_pattern``, ``cliquet.errno``, ``cliquet.user_id``,
    ``cliquet.authn_type``, ``cliquet.log_context`` (extra fields);
    sets ``cliquet.request_id`` and ``cliquet.log_context`` (an empty dict that
    inner layers fill). In a batch sub-request (``cliquet.batch`` present) it
    logs ``subrequest.summary`` under the parent's id instead. Adds the
    ``X-Request-Id`` response header. Sits outermost (below the profiler) so
    that ``t`` covers the whole stack and every record carries the id.

    Example::

        app = RequestLogMiddleware(app, project_name="myapp")
        logging.getLogger("cliquet_wsgi.request.summary").setLevel(logging.INFO)
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        registry: Registry | None = None,
        project_name: str = "",
    ) -> None:
        self.app = app
        self.registry = registry if registry is not None else default_registry()
        self.logger_name = project_name or "cliquet"
        # NOTE: looked up here, not at import: fileConfig() imports this module
        # for JsonFormatter and then disables every logger that already exists.
        self.logger = logging.getLogger(SUMMARY_LOGGER)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if keys.REGISTRY not in environ:
            environ[keys.REGISTRY] = self.registry
        if keys.BATCH in environ:
            return self._subrequest(environ, start_response)
        supplied = environ.get("HTTP_X_REQUEST_ID")
        if supplied and REQUEST_ID_PATTERN.fullmatch(supplied):
            request_id = supplied
        else:
            request_id = new_request_id()
        environ[keys.REQUEST_ID] = request_id
        if keys.LOG_CONTEXT not in environ:
            environ[keys.LOG_CONTEXT] = {}
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        start = _perf_counter()
        logger = self.logger

        def done(status: str | None, exc: BaseException | None) -> None:
            if logger.isEnabledFor(_INFO):
                _log_summary(logger, environ, request_id, path, status, start, self.logger_name)

        token = _current.set((request_id, self.logger_name))
        try:
            return observe(self.app, environ, start_response, done, (("X-Request-Id", request_id),))
        finally:
            _current.reset(token)

    def _subrequest(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        request_id = environ.get(keys.REQUEST_ID) or current_request_id() or new_request_id()
        environ[keys.REQUEST_ID] = request_id
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        start = _perf_counter()
        logger = self.logger

        def done(status: str | None, exc: BaseException | None) -> None:
            if not logger.isEnabledFor(_INFO):
                return
            fields = {
                "path": path,
                "method": environ.get("REQUEST_METHOD"),
                "code": _code(status),
                "errno": _errno(environ),
                "t": int((_perf_counter() - start) * 1000),
                "rid": request_id,
            }
            logger.info(
                "%s %s %s", fields["method"], path, fields["code"],
                extra={"mozlog_type": "subrequest.summary", "fields": fields, "request_id": request_id},
            )

        return observe(self.app, environ, start_response, done)


def _code(status: str | None) -> int:
    # No status: the exception propagates and the server answers 500.
    return int(status[:3]) if status else 500


def _errno(environ: dict) -> int | None:
    errno = environ.get(keys.ERRNO)
    if errno is None:
        return None
    try:
        return int(errno)
    except (TypeError, ValueError):
        return None


#: Request ids identify log lines, they guard nothing: a PRNG (reseeded in
#: forked children by the random module) is enough, and avoids a system call.
_random_bits = random.getrandbits
_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


def new_request_id() -> str:
    """A random uuid4, as 32 hex digits."""
    # PERF: several times cheaper than uuid.uuid4().hex; same version and variant bits.
    # bytes.hex() is cheaper than "%032x" and keeps the leading zeros too.
    return (_random_bits(128) & _UUID4_CLEAR | _UUID4_SET).to_bytes(16, "big").hex()


def _querystring(query: str) -> dict[str, str]:
    # PERF: parse_qsl costs more than the rest of the summary; values we do
    # not log are never decoded.
    if query and "&" not in query and "%" not in query and "+" not in query:
        # One parameter, nothing to decode (``?_limit=10``): the loop's result without the loop.
        name, _, value = query.partition("=")
        return {name: value[:256] if name in LOGGED_QUERY_VALUES else REDACTED}
    logged = {}
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name in LOGGED_QUERY_VALUES:
            logged[name] = unquote_plus(value)[:256] if "%" in value or "+" in value else value[:256]
        else:
            logged[name] = REDACTED
    return logged


def _log_summary(logger: logging.Logger, environ: dict, request_id: str, path: str, status: str | None, start: float,
                 logger_name: str) -> None:
    get = environ.get
    user_id = get(keys.USER_ID)
    query = get("QUERY_STRING")
    agent = get("HTTP_USER_AGENT")
    errno = get(keys.ERRNO)
    fields: dict[str, Any] = {
        "agent": agent[:_MAX_FIELD] if agent else None,
        "path": path[:_MAX_FIELD],
        "method": get("REQUEST_METHOD"),
        "querystring": _querystring(query) if query else {},
        "lang": get("HTTP_ACCEPT_LANGUAGE"),
        "uid": user_id.partition(":")[2] or user_id if user_id else None,
        "authn_type": get(keys.AUTHN_TYPE),
        # PERF: _errno() and _code() inlined for their common cases.
        "errno": errno if errno is None or type(errno) is int else _errno(environ),
        "code": int(status[:3]) if status else 500,
        "t": int((_perf_counter() - start) * 1000),
        "rid": request_id,
    }
    route = get(keys.ROUTE_PATTERN)
    if route is not None:
        fields["route"] = route
    extras = get(keys.LOG_CONTEXT)
    if extras:
        # Inner layers add fields (batch_size, nb_records…) but cannot overwrite these.
        for name, value in extras.items():
            fields.setdefault(name, value)
    # PERF: what logger.info(..., extra=...) does, minus findCaller's stack
    # walk and the checks of extra keys (about 3 µs of the 10 µs budget).
    # The pathname is left empty: LogRecord would split __file__ on every request.
    args = (fields["method"], fields["path"], fields["code"], fields["t"])
    factory = logging.getLogRecordFactory()
    if factory is _LogRecord and _template is not None:
        record = _lean_summary_record(logger.name, args)
    else:
        record = factory(logger.name, _INFO, "", 0, _SUMMARY_MESSAGE, args, None, "_log_summary")
    record.mozlog_type = "request.summary"
    record.mozlog_logger = logger_name
    record.request_id = request_id
    record.fields = fields
    logger.handle(record)


# -- the summary LogRecord, without LogRecord.__init__ ----------------------------------------
#
# PERF: LogRecord.__init__ (about 19K instructions, 2 µs) computes much that
# is the same for every summary (file name and module of an empty pathname,
# args checks…). With the default record factory, summaries are a copy of a
# template of those attributes plus the per-record ones, computed exactly as
# LogRecord.__init__ of the running Python computes them (tests compare both
# on 3.10 to 3.13): about 14K instructions. A custom factory
# (logging.setLogRecordFactory) is always called instead.

_LogRecord = logging.LogRecord
_SUMMARY_MESSAGE = "%s %s %s %sms"
#: Python 3.13 made LogRecord's clock time.time_ns().
_NS_CLOCK = sys.version_info >= (3, 13)
_time, _time_ns = time.time, time.time_ns
_get_ident, _current_thread = threading.get_ident, threading.current_thread


def _summary_template() -> dict[str, Any] | None:
    """Attributes of a summary record, in LogRecord's order (from a real one).

    None when this Python's LogRecord has attributes the lean builder does not set.
    """
    args = ("GET", "/", 200, 0)
    real = _LogRecord(SUMMARY_LOGGER, _INFO, "", 0, _SUMMARY_MESSAGE, args, None, "_log_summary")
    template = dict(vars(real))
    lean = _lean_summary_record(SUMMARY_LOGGER, args, template)
    return template if list(vars(lean)) == list(template) else None


def _lean_summary_record(name: str, args: tuple, template: dict[str, Any] | None = None) -> logging.LogRecord:
    """A summary LogRecord equal to ``LogRecord(name, INFO, "", 0, _SUMMARY_MESSAGE, args, None, "_log_summary")``."""
    if _NS_CLOCK:
        ns = _time_ns()
        created = ns / 1e9
        msecs = (ns % 1_000_000_000) // 1_000_000 + 0.0
        if msecs == 999.0 and int(created) != ns // 1_000_000_000:
            msecs = 0.0
        relative = (ns - logging._startTime) / 1e6
    else:
        created = _time()
        msecs = int((created - int(created)) * 1000) + 0.0
        relative = (created - logging._startTime) * 1000
    if logging.logThreads:
        thread, thread_name = _get_ident(), _current_thread().name
    else:
        thread = thread_name = None
    process_name = None
    if logging.logMultiprocessing:
        process_name = "MainProcess"
        multiprocessing = sys.modules.get("multiprocessing")
        if multiprocessing is not None:
            try:
                process_name = multiprocessing.current_process().name
            except Exception:
                pass
    record = _new_record(_LogRecord)
    # PERF: copying a dict is one memcpy; keys already in the template keep
    # their place, so vars(record) lists them in LogRecord's order.
    record.__dict__ = attributes = (template or _template).copy()
    attributes["name"] = name
    attributes["args"] = args
    attributes["levelname"] = _get_level_name(_INFO)
    attributes["created"] = created
    attributes["msecs"] = msecs
    attributes["relativeCreated"] = relative
    attributes["thread"] = thread
    attributes["threadName"] = thread_name
    attributes["processName"] = process_name
    attributes["process"] = process_id() if logging.logProcesses else None
    if _TASK_NAMES:
        task_name = None
        if logging.logAsyncioTasks:
            asyncio = sys.modules.get("asyncio")
            if asyncio:
                try:
                    task_name = asyncio.current_task().get_name()
                except Exception:
                    pass
        attributes["taskName"] = task_name
    return record


_new_record = object.__new__
_get_level_name = logging.getLevelName
#: Python 3.12 added LogRecord.taskName.
_TASK_NAMES = hasattr(logging, "logAsyncioTasks")
_template = _summary_template()


# -- logging plumbing -----------------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Set ``record.request_id`` (``"-"`` outside a request) so formats can use ``%(request_id)s``.

    Attach it to handlers: a filter on a logger does not see records that
    propagate from its children.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id() or "-"
        return True


#: Severity of the mozlog envelope (PROTOCOL §12: crit/err/warn/info/debug).
_SEVERITY = {logging.CRITICAL: 0, logging.ERROR: 2, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
_HOSTNAME = socket.gethostname()


def _severity(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _SEVERITY[level]
    return 7


#: Exact types :func:`_heka_value` returns unchanged: the formatter skips the call for them.
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
#: ``json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))``, built once:
#: json.dumps() builds a new encoder per call when given options.
_FIELD_ENCODER = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def _heka_value(value: Any) -> Any:
    """Fields hold scalars or lists of strings; anything else is JSON-encoded (PROTOCOL §12)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    if type(value) is dict and _orjson is not None:
        text = _plain_strings_json(value)
        if text is not None:
            return text
    return _FIELD_ENCODER.encode(value)


def _plain_strings_json(value: dict) -> str | None:
    """:data:`_FIELD_ENCODER`'s text for a dict of strings that need no escaping, else None.

    PERF: the querystring of every summary is such a dict; orjson encodes it
    in a fraction of the stdlib's time. Its text is provably the stdlib's when
    every key and value is a string (``join`` raises otherwise, orjson raises
    on other keys) and nothing was escaped: both encoders then write the same
    ASCII characters, keys sorted by code point.
    """
    try:
        "".join(value.values())
        text = _orjson.dumps(value, None, _SORT_KEYS).decode("utf-8")
    except TypeError:
        return None
    # orjson escapes only quotes, backslashes and controls (with a backslash);
    # the stdlib (ensure_ascii) also escapes non-ASCII and DEL: refuse all of them.
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text
    return None


#: ".000Z" to ".999Z": PERF: an index instead of formatting a number per record.
_MILLISECONDS = tuple(f".{ms:03d}Z" for ms in range(1000))
#: (whole second, its "%Y-%m-%dT%H:%M:%S" text) of the last record formatted.
_last_second: tuple[float, str] = (math.nan, "")


def _iso_time(created: float) -> str:
    # Microseconds rounded from the fraction first, as datetime.fromtimestamp() does.
    global _last_second
    cached_seconds, text = _last_second
    # PERF: within the second of the last record, the fraction is this
    # subtraction (exact, as modf's) and the text is known.
    fraction = created - cached_seconds
    if 0.0 <= fraction < 1.0:
        micros = round(fraction * 1_000_000)
        if micros < 1_000_000:
            return text + _MILLISECONDS[micros // 1000]
    fraction, seconds = math.modf(created)
    micros = round(fraction * 1_000_000)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    # PERF: gmtime() + strftime() cost more than the rest of the formatter;
    # records come in bursts within the same second. (A tuple is replaced as
    # a whole: threads see an old or a new pair, never a mix.)
    if seconds != cached_seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, text)
    return text + _MILLISECONDS[micros // 1000]


class JsonFormatter(logging.Formatter):
    """One JSON object per record in the mozlog envelope (PROTOCOL §12).

    ``{"Timestamp": ns, "Logger", "Type", "Hostname", "Severity", "Pid",
    "EnvVersion": "2.0", "Fields": {...}}``. Request summaries put their
    fields in ``Fields``; other records give ``msg`` (and ``error`` and
    ``traceback`` when they carry an exception). ``Type`` of plain records is
    the logger name; ``Logger`` is ``project_name`` during a request.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        kind = getattr(record, "mozlog_type", None)
        if isinstance(fields, dict) and kind:
            # PERF: in a summary only the querystring needs _heka_value; the
            # other values are checked in one C-level pass, not a call each.
            fields = dict(fields)
            query = fields.get("querystring")
            if type(query) is dict:
                # Most requests have no querystring: "{}" needs no encoder.
                fields["querystring"] = ((not query and "{}") or (_orjson is not None and _plain_strings_json(query))
                                         or _FIELD_ENCODER.encode(query))
            if not _PLAIN_TYPES.issuperset(map(type, fields.values())):
                fields = {key: _heka_value(value) for key, value in fields.items()}
        else:
            fields = {"msg": _heka_value(record.getMessage())}
            kind = record.name
        if "rid" not in fields:
            request_id = getattr(record, "request_id", None)
            if request_id in (None, "-"):
                current = _current.get()
                if current is not None:
                    request_id = current[0]
            if request_id not in (None, "-"):
                fields["rid"] = _heka_value(request_id)
        created = record.created
        if "time" not in fields:
            fields["time"] = _iso_time(created)
        name = getattr(record, "mozlog_logger", None)
        if not name:
            current = _current.get()
            name = current[1] if current is not None else record.name
        if record.exc_info:
            fields["error"] = repr(record.exc_info[1])
            fields["traceback"] = _heka_value(self.formatException(record.exc_info))
        elif record.exc_text:
            fields["traceback"] = _heka_value(record.exc_text)
        levelno = record.levelno
        severity = _SEVERITY.get(levelno) if type(levelno) is int else None
        envelope = {
            "Timestamp": int(created * 1_000_000_000),
            "Logger": name,
            "Type": kind,
            "Hostname": _HOSTNAME,
            "Severity": _severity(levelno) if severity is None else severity,
            "Pid": record.process,
            "EnvVersion": "2.0",
            "Fields": fields,
        }
        # PERF: Fields holds only JSON scalars and lists of strings now, so
        # the fast encoder applies (orjson with the speedups extra).
        return json_dumps_bytes(envelope).decode("utf-8")


class ClassicFormatter(logging.Formatter):
    """A readable line for development: ``time LEVEL logger [request id] message key=value…``.

    A custom ``fmt`` may use ``%(request_id)s``; summary fields are appended.
    """

    default_format = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%",
                 *args: Any, **kwargs: Any) -> None:
        super().__init__(fmt or self.default_format, datefmt, style, *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id() or "-"
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            shown = " ".join(
                f"{key}={json.dumps(value, default=str, ensure_ascii=False)}"
                for key, value in fields.items()
                if value is not None and key not in ("rid", "method", "path", "code", "t")
            )
            if shown:
                head, sep, tail = line.partition("\n")
                line = f"{head} {shown}{sep}{tail}"
        return line


def make_formatter(logging_renderer: str) -> logging.Formatter:
    """The formatter for the ``logging_renderer`` setting (``classic`` or ``json``).

    For whoever configures logging (the CLI, a ``serve`` script); the
    middleware itself never does.
    """
    return JsonFormatter() if logging_renderer == "json" else ClassicFormatter()


filter_factory = make_filter_factory(RequestLogMiddleware)
