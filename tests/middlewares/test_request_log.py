"""RequestLogMiddleware, its formatters and the request id filter."""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
from wsgiref.validate import validator

import pytest
import webtest

from cliquet_wsgi import environ as keys
from cliquet_wsgi.middlewares.request_log import (
    SUMMARY_LOGGER,
    ClassicFormatter,
    JsonFormatter,
    RequestIdFilter,
    RequestLogMiddleware,
    filter_factory,
    make_formatter,
)
from cliquet_wsgi.registry import Registry

HEX32 = re.compile(r"[0-9a-f]{32}")
app_logger = logging.getLogger("tests.request_log.app")


def make_app(extra: dict | None = None, status: str = "200 OK", log: bool = False):
    def app(environ, start_response):
        environ.update(extra or {})
        environ[keys.LOG_CONTEXT]["nb_records"] = 3
        if log:
            app_logger.warning("inside the view")
        start_response(status, [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def build(app, **settings):
    return webtest.TestApp(RequestLogMiddleware(validator(app), registry=Registry(), **settings))


@pytest.fixture
def summaries(caplog):
    caplog.set_level(logging.INFO, logger=SUMMARY_LOGGER)

    def get() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == SUMMARY_LOGGER]

    return get


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def app_handler():
    handler = ListHandler()
    handler.addFilter(RequestIdFilter())
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.DEBUG)
    yield handler
    app_logger.removeHandler(handler)
    app_logger.setLevel(logging.NOTSET)


def test_summary_fields(summaries):
    extra = {
        keys.ROUTE_PATTERN: "/articles/{id}",
        keys.USER_ID: "basicauth:9f2d",
        keys.AUTHN_TYPE: "basicauth",
        keys.ERRNO: 110,
    }
    app = build(make_app(extra, "404 Not Found"))
    response = app.get(
        "/v1/articles/abc?_since=12&_limit=10&owner=bob&access_token=tok",
        headers={"User-Agent": "curl/8", "Accept-Language": "fr", "X-Request-Id": "req-1.a_B"},
        status=404,
    )
    assert response.headers["X-Request-Id"] == "req-1.a_B"
    [record] = summaries()
    assert record.levelno == logging.INFO
    assert record.mozlog_type == "request.summary"
    assert record.getMessage() == f"GET /v1/articles/abc 404 {record.fields['t']}ms"
    fields = dict(record.fields)
    assert isinstance(fields.pop("t"), int)
    assert fields == {
        "agent": "curl/8",
        "path": "/v1/articles/abc",
        "method": "GET",
        "querystring": {"_since": "12", "_limit": "10", "owner": "[redacted]", "access_token": "[redacted]"},
        "lang": "fr",
        "uid": "9f2d",
        "authn_type": "basicauth",
        "errno": 110,
        "code": 404,
        "rid": "req-1.a_B",
        "route": "/articles/{id}",
        "nb_records": 3,
    }


def test_anonymous_unmatched_request(summaries):
    build(make_app()).get("/nowhere")
    [record] = summaries()
    fields = dict(record.fields)
    fields.pop("t")
    rid = fields.pop("rid")
    assert HEX32.fullmatch(rid)
    assert fields == {
        "agent": None, "path": "/nowhere", "method": "GET", "querystring": {}, "lang": None, "uid": None,
        "authn_type": None, "errno": None, "code": 200, "nb_records": 3,
    }


def test_log_context_cannot_overwrite_core_fields(summaries):
    def app(environ, start_response):
        environ[keys.LOG_CONTEXT].update(code=999, batch_size=4)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    build(app).post("/v1/batch")
    [record] = summaries()
    assert record.fields["code"] == 200
    assert record.fields["batch_size"] == 4


@pytest.mark.parametrize(
    "supplied",
    [
        pytest.param("x" * 129, id="too-long"),
        pytest.param("a b", id="space"),
        pytest.param("abc\tdef", id="control"),
        pytest.param("<script>", id="markup"),
        pytest.param("", id="empty"),
        pytest.param("r\u00e9q", id="non-ascii"),
    ],
)
def test_invalid_request_id_is_replaced(summaries, supplied):
    environ = {"HTTP_X_REQUEST_ID": supplied} if supplied.isascii() else {}
    app = build(make_app())
    response = app.get("/v1/", extra_environ=environ) if environ else app.get(
        "/v1/", extra_environ={"HTTP_X_REQUEST_ID": supplied.encode("utf-8").decode("latin-1")})
    rid = response.headers["X-Request-Id"]
    assert HEX32.fullmatch(rid)
    [record] = summaries()
    assert record.fields["rid"] == rid


def test_request_id_on_every_record_of_the_request(summaries, app_handler):
    seen = {}

    def app(environ, start_response):
        seen["rid"] = environ[keys.REQUEST_ID]
        environ[keys.LOG_CONTEXT]["x"] = 1
        app_logger.warning("inside the view")
        app_logger.debug("debug too")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    app_handler.setFormatter(JsonFormatter())
    response = build(app).get("/v1/")
    assert response.headers["X-Request-Id"] == seen["rid"]
    assert [r.request_id for r in app_handler.records] == [seen["rid"], seen["rid"]]
    assert [json.loads(line)["Fields"]["rid"] for line in app_handler.lines] == [seen["rid"], seen["rid"]]
    assert summaries()[0].fields["rid"] == seen["rid"]
    # Outside a request the id is gone.
    app_logger.warning("after")
    assert app_handler.records[-1].request_id == "-"
    assert "rid" not in json.loads(app_handler.lines[-1])["Fields"]


def test_subrequest_summary_keeps_parent_id(summaries):
    app = RequestLogMiddleware(validator(make_app({keys.ERRNO: 107}, "400 Bad Request")), registry=Registry())
    statuses = []
    environ = {
        "REQUEST_METHOD": "PUT", "PATH_INFO": "/articles/1", "SCRIPT_NAME": "/v1", "QUERY_STRING": "",
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": __import__("io").BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False, keys.BATCH: {}, keys.REQUEST_ID: "parent-1", keys.LOG_CONTEXT: {},
    }
    body = app(environ, lambda status, headers, exc_info=None: statuses.append((status, headers)))
    assert list(body) == [b"ok"]
    body.close()
    assert statuses == [("400 Bad Request", [("Content-Type", "text/plain")])]
    [record] = summaries()
    assert record.mozlog_type == "subrequest.summary"
    fields = dict(record.fields)
    fields.pop("t")
    assert fields == {"path": "/v1/articles/1", "method": "PUT", "code": 400, "errno": 107, "rid": "parent-1"}


def test_exception_logs_500_and_propagates(summaries):
    def failing(environ, start_response):
        raise ZeroDivisionError("boom")

    app = RequestLogMiddleware(failing, registry=Registry())
    with pytest.raises(ZeroDivisionError):
        app({"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/"}, lambda *a: None)
    [record] = summaries()
    assert record.fields["code"] == 500


def test_nothing_built_when_summary_logger_is_off(caplog):
    caplog.set_level(logging.WARNING, logger=SUMMARY_LOGGER)
    response = build(make_app()).get("/v1/")
    assert HEX32.fullmatch(response.headers["X-Request-Id"])
    assert [r for r in caplog.records if r.name == SUMMARY_LOGGER] == []


def summary_record(**fields) -> logging.LogRecord:
    record = logging.LogRecord(SUMMARY_LOGGER, logging.INFO, __file__, 1, "%s", ("GET",), None)
    record.created = 1427458675.123456
    record.msecs = 123.456
    record.process = 4242
    record.mozlog_type = "request.summary"
    record.mozlog_logger = "myapp"
    record.request_id = "rid-1"
    record.fields = fields
    return record


def test_json_envelope():
    record = summary_record(code=200, querystring={"_limit": "1"}, ids=[1, 2], names=["a", "b"], uid=None,
                            rid="rid-1")
    envelope = json.loads(JsonFormatter().format(record))
    hostname = envelope.pop("Hostname")
    assert isinstance(hostname, str) and hostname
    assert envelope == {
        "Timestamp": 1427458675123456000,
        "Logger": "myapp",
        "Type": "request.summary",
        "Severity": 6,
        "Pid": 4242,
        "EnvVersion": "2.0",
        "Fields": {
            "code": 200,
            "querystring": '{"_limit":"1"}',
            "ids": "[1,2]",
            "names": ["a", "b"],
            "uid": None,
            "rid": "rid-1",
            "time": "2015-03-27T12:17:55.123Z",
        },
    }


@pytest.mark.parametrize(
    "level, severity",
    [
        pytest.param(logging.CRITICAL, 0, id="critical"),
        pytest.param(logging.ERROR, 2, id="error"),
        pytest.param(logging.WARNING, 4, id="warning"),
        pytest.param(logging.INFO, 6, id="info"),
        pytest.param(logging.DEBUG, 7, id="debug"),
        pytest.param(5, 7, id="below-debug"),
    ],
)
def test_json_plain_record_and_severity(level, severity):
    try:
        raise ValueError("bad")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("myapp.views", level, __file__, 1, "hello %s", ("world",), exc_info)
    envelope = json.loads(JsonFormatter().format(record))
    assert envelope["Severity"] == severity
    assert envelope["Type"] == "myapp.views"
    assert envelope["Logger"] == "myapp.views"
    fields = envelope["Fields"]
    assert fields["msg"] == "hello world"
    assert fields["error"] == "ValueError('bad')"
    assert fields["traceback"].startswith("Traceback (most recent call last):")
    assert set(fields) == {"msg", "error", "traceback", "time"}


def test_classic_formatter_line():
    formatter = ClassicFormatter()
    formatter.converter = __import__("time").gmtime
    record = summary_record(agent="curl/8", path="/v1/", method="GET", code=200, t=3, uid=None, rid="rid-1",
                            querystring={"_limit": "1"})
    record.msg, record.args = "%s %s %s %sms", ("GET", "/v1/", 200, 3)
    assert formatter.format(record) == (
        '2015-03-27 12:17:55,123 INFO cliquet_wsgi.request.summary [rid-1] GET /v1/ 200 3ms '
        'agent="curl/8" querystring={"_limit": "1"}'
    )


@pytest.mark.parametrize(
    "renderer, cls",
    [pytest.param("json", JsonFormatter, id="json"), pytest.param("classic", ClassicFormatter, id="classic")],
)
def test_make_formatter(renderer, cls):
    assert type(make_formatter(renderer)) is cls


def test_usable_from_an_ini_logging_config(tmp_path):
    # fileConfig replaces the root handlers of the whole process: run it in a child.
    ini = tmp_path / "logging.ini"
    ini.write_text(textwrap.dedent("""
        [loggers]
        keys = root
        [handlers]
        keys = console
        [formatters]
        keys = json
        [logger_root]
        level = INFO
        handlers = console
        [handler_console]
        class = StreamHandler
        args = (sys.stdout,)
        formatter = json
        [formatter_json]
        class = cliquet_wsgi.middlewares.request_log.JsonFormatter
    """))
    script = textwrap.dedent(f"""
        import logging.config
        logging.config.fileConfig({str(ini)!r})
        from cliquet_wsgi.middlewares.request_log import filter_factory
        app = filter_factory({{}}, project_name="myapp", registry_name="ini-test")(
            lambda environ, start_response: start_response("204 No Content", []) or [])
        app({{"REQUEST_METHOD": "DELETE", "PATH_INFO": "/v1/x", "HTTP_X_REQUEST_ID": "abc"}}, lambda *a: None)
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    [line] = output.stdout.splitlines()
    envelope = json.loads(line)
    assert (envelope["Logger"], envelope["Type"], envelope["Severity"]) == ("myapp", "request.summary", 6)
    assert (envelope["Fields"]["code"], envelope["Fields"]["rid"], envelope["Fields"]["path"]) == (204, "abc", "/v1/x")


def test_filter_factory_passes_project_name(summaries):
    app = webtest.TestApp(filter_factory({}, project_name="shop", registry_name="rl-test")(validator(make_app())))
    app.get("/v1/")
    assert summaries()[0].mozlog_logger == "shop"


def test_huge_path_and_agent_are_truncated(summaries):
    path = "/v1/" + "a" * 5000
    build(make_app()).get(path, headers={"User-Agent": "b" * 5000}, expect_errors=True)
    [record] = summaries()
    assert record.fields["path"] == path[:2048]
    assert record.fields["agent"] == "b" * 2048
    assert len(record.getMessage()) < 2100


def test_odd_errno_does_not_break_the_response(summaries):
    response = build(make_app({keys.ERRNO: "not-a-number"})).get("/v1/")
    assert response.body == b"ok"
    [record] = summaries()
    assert record.fields["errno"] is None


def test_generated_request_ids_are_uuid4_and_differ_across_forked_workers():
    import os
    import uuid

    from cliquet_wsgi.middlewares.request_log import new_request_id

    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(rid).version == 4 and uuid.UUID(rid).variant == uuid.RFC_4122 for rid in ids)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # a gunicorn worker forked from the master
        os.write(writer, new_request_id().encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    child = os.read(reader, 64).decode()
    os.close(reader)
    assert child != new_request_id()
    assert len(child) == 32


from hypothesis import given, strategies as st  # noqa: E402


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_iso_time_matches_datetime(created):
    from datetime import datetime, timezone

    from cliquet_wsgi.middlewares.request_log import _iso_time

    expected = datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
    assert _iso_time(created) == expected.replace("+00:00", "Z")


@given(st.integers(min_value=0, max_value=4_000_000_000), st.lists(st.floats(min_value=0, max_value=2.5), max_size=8))
def test_iso_time_of_records_within_and_across_seconds(second, offsets):
    # _iso_time keeps the text of the last whole second: a run of records must still each get their own time.
    from datetime import datetime, timezone

    from cliquet_wsgi.middlewares.request_log import _iso_time

    for offset in offsets:
        created = second + offset
        expected = datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")
        assert _iso_time(created) == expected.replace("+00:00", "Z")


# -- JsonFormatter against the reference text ------------------------------------------------


def reference_json_line(record: logging.LogRecord) -> str:
    """The mozlog line as first specified: every field through the heka rule, then one encoder.

    JsonFormatter skips work for common values; its text must stay this one.
    """
    from datetime import datetime, timezone

    from cliquet_wsgi.middlewares.request_log import _HOSTNAME, _current
    from cliquet_wsgi.rendering import json_dumps_bytes

    def heka(value):
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))

    current = _current.get()
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict) and getattr(record, "mozlog_type", None):
        fields, kind = dict(fields), record.mozlog_type
    else:
        fields, kind = {"msg": record.getMessage()}, record.name
    request_id = getattr(record, "request_id", None)
    if request_id in (None, "-") and current is not None:
        request_id = current[0]
    if request_id not in (None, "-"):
        fields.setdefault("rid", request_id)
    iso = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
    fields.setdefault("time", iso.replace("+00:00", "Z"))
    name = getattr(record, "mozlog_logger", None) or (current[1] if current is not None else record.name)
    if record.exc_info:
        fields["error"] = repr(record.exc_info[1])
        fields["traceback"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        fields["traceback"] = record.exc_text
    levelno = record.levelno
    severity = next((s for level, s in ((50, 0), (40, 2), (30, 4), (20, 6)) if levelno >= level), 7)
    return json_dumps_bytes({
        "Timestamp": int(record.created * 1_000_000_000), "Logger": name, "Type": kind, "Hostname": _HOSTNAME,
        "Severity": severity, "Pid": record.process, "EnvVersion": "2.0",
        "Fields": {key: heka(value) for key, value in fields.items()},
    }).decode("utf-8")


# Querystring-like values: plain ASCII, then what either encoder escapes (quotes, controls, DEL, non-ASCII).
field_text = st.one_of(st.sampled_from(["10", "-last_modified", "[redacted]", "a\"b", "a\\b", "\x7f", "\n", "é", "☃"]),
                       st.text(max_size=12))
field_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**64), st.floats(), field_text,
    st.lists(field_text, max_size=3), st.lists(st.integers(), max_size=3), st.tuples(field_text),
    st.dictionaries(field_text, field_text, max_size=4),
    st.dictionaries(field_text, st.one_of(st.integers(), st.floats(), st.none(), st.lists(field_text)), max_size=3),
    st.dictionaries(st.integers(), field_text, max_size=2),
)


@given(
    fields=st.dictionaries(st.sampled_from(["querystring", "path", "code", "rid", "time", "uid", "ids", "x"]),
                           field_values),
    request_id=st.sampled_from([None, "-", "rid-1", 7]),
    logger_name=st.sampled_from([None, "", "myapp"]),
    level=st.sampled_from([logging.INFO, logging.WARNING, 25, 5, logging.CRITICAL]),
    exc_text=st.sampled_from([None, "", "Traceback: boom"]),
)
def test_json_formatter_text_is_the_reference_one(fields, request_id, logger_name, level, exc_text):
    record = logging.LogRecord(SUMMARY_LOGGER, level, __file__, 1, "%s", ("GET",), None)
    record.mozlog_type = "request.summary"
    record.mozlog_logger = logger_name
    record.request_id = request_id
    record.fields = fields
    record.exc_text = exc_text
    assert outcome(JsonFormatter().format, record) == outcome(reference_json_line, record)


def outcome(format_line, record: logging.LogRecord) -> str:
    """The line, or the error: a value no encoder takes (inf beside a 65-bit int) fails both ways alike."""
    try:
        return format_line(record)
    except ValueError as exc:
        return repr(exc)


@pytest.mark.parametrize("request_id", [None, "rid-inside"])
def test_json_formatter_plain_records_are_the_reference_ones(request_id):
    from cliquet_wsgi.middlewares.request_log import _current

    try:
        raise ValueError("bad")
    except ValueError:
        exc_info = sys.exc_info()
    token = _current.set(("rid-ctx", "myapp"))
    try:
        for record in (logging.LogRecord("myapp.views", logging.ERROR, __file__, 1, "x %s", ("y",), exc_info),
                       logging.LogRecord("myapp.views", logging.INFO, __file__, 1, "x %s", ("y",), None)):
            if request_id:
                record.request_id = request_id
            assert JsonFormatter().format(record) == reference_json_line(record)
    finally:
        _current.reset(token)


@pytest.mark.parametrize(
    "querystring",
    [
        pytest.param({}, id="empty"),
        pytest.param({"_limit": "10", "_since": "12", "owner": "[redacted]"}, id="plain"),
        pytest.param({"b": "1", "a": "2", "B": "3"}, id="unsorted"),
        pytest.param({"_sort": "a\x7fb"}, id="delete-char"),
        pytest.param({"_sort": "é"}, id="non-ascii-value"),
        pytest.param({"ключ": "[redacted]"}, id="non-ascii-key"),
        pytest.param({"_sort": "\U0001f600"}, id="astral"),
        pytest.param({"_sort": 'a"b\\c'}, id="quote-backslash"),
        pytest.param({"_sort": "a\nb\x01"}, id="controls"),
        pytest.param({"_limit": 10}, id="int-value"),
        pytest.param({"_limit": 1e16}, id="float-value"),
        pytest.param({1: "a"}, id="int-key"),
        pytest.param({"a": {"c": "1", "b": "2"}}, id="nested"),
    ],
)
@pytest.mark.parametrize("with_orjson", [pytest.param(True, id="orjson"), pytest.param(False, id="stdlib")])
def test_json_formatter_querystring_text(querystring, with_orjson, monkeypatch):
    from cliquet_wsgi.middlewares import request_log

    if not with_orjson:
        monkeypatch.setattr(request_log, "_orjson", None)
    record = summary_record(code=200, querystring=querystring, rid="rid-1")
    assert JsonFormatter().format(record) == reference_json_line(record)


# -- the summary record -------------------------------------------------------------------------


@pytest.fixture
def frozen_clock(monkeypatch):
    """time.time() and time.time_ns() return one instant, for the stdlib and for the lean builder."""
    import time

    from cliquet_wsgi.middlewares import request_log

    ns = 1_795_873_831_999_634_567
    monkeypatch.setattr(time, "time", lambda: ns / 1e9)
    monkeypatch.setattr(time, "time_ns", lambda: ns)
    monkeypatch.setattr(request_log, "_time", lambda: ns / 1e9)
    monkeypatch.setattr(request_log, "_time_ns", lambda: ns)


def standard_and_lean_records() -> tuple[logging.LogRecord, logging.LogRecord]:
    from cliquet_wsgi.middlewares.request_log import _SUMMARY_MESSAGE, _lean_summary_record, _template

    assert _template is not None
    args = ("GET", "/v1/articles", 200, 3)
    standard = logging.LogRecord(SUMMARY_LOGGER, logging.INFO, "", 0, _SUMMARY_MESSAGE, args, None, "_log_summary")
    return standard, _lean_summary_record(SUMMARY_LOGGER, args)


def test_lean_summary_record_is_a_standard_one(frozen_clock):
    standard, lean = standard_and_lean_records()
    assert type(lean) is logging.LogRecord
    assert list(vars(lean).items()) == list(vars(standard).items())
    assert lean.getMessage() == "GET /v1/articles 200 3ms"


@pytest.mark.parametrize("flag", ["logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks"])
def test_lean_summary_record_honours_logging_flags(frozen_clock, monkeypatch, flag):
    monkeypatch.setattr(logging, flag, False, raising=False)
    standard, lean = standard_and_lean_records()
    assert list(vars(lean).items()) == list(vars(standard).items())


def test_lean_summary_record_in_a_named_thread_and_task(frozen_clock):
    import asyncio
    import multiprocessing  # noqa: F401 - imported, processName comes from it
    import threading

    results = []

    async def in_task():
        results.append(standard_and_lean_records())

    thread = threading.Thread(target=lambda: asyncio.run(in_task()), name="worker-7")
    thread.start()
    thread.join()
    [(standard, lean)] = results
    assert standard.threadName == "worker-7"
    assert list(vars(lean).items()) == list(vars(standard).items())


def test_summary_carries_every_standard_attribute(summaries):
    build(make_app()).get("/v1/")
    [record] = summaries()
    standard = logging.LogRecord("x", logging.INFO, "", 0, "m", (), None)
    assert set(vars(standard)) <= set(vars(record))
    assert record.funcName == "_log_summary" and record.levelname == "INFO"


def test_custom_record_factory_builds_the_summary(summaries):
    class TaggedRecord(logging.LogRecord):
        pass

    calls = []

    def factory(*args, **kwargs):
        calls.append(args[:2])
        return TaggedRecord(*args, **kwargs)

    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(factory)
    try:
        build(make_app()).get("/v1/?_limit=2")
    finally:
        logging.setLogRecordFactory(previous)
    [record] = summaries()
    assert type(record) is TaggedRecord
    assert (SUMMARY_LOGGER, logging.INFO) in calls
    assert record.fields["querystring"] == {"_limit": "2"}
    assert record.getMessage() == f"GET /v1/ 200 {record.fields['t']}ms"


@given(st.lists(st.one_of(st.sampled_from(["_limit", "_since", "_sort", "owner", "a+b", "%5Fsince", "x%zz", ""]),
                          st.text(alphabet="ab_=%+5F", max_size=6)), max_size=4),
       st.lists(st.text(alphabet="az09=+%2C_", max_size=8), max_size=4),
       st.booleans())
def test_summary_querystring_keeps_only_protocol_values(names, values, bare):
    """_querystring (with its one-parameter shortcut) is the plain decode-every-pair reading, redacted."""
    from urllib.parse import unquote_plus

    from cliquet_wsgi.middlewares.request_log import LOGGED_QUERY_VALUES, REDACTED, _querystring

    pairs = [name if bare and not value else f"{name}={value}" for name, value in zip(names, values)]
    query = "&".join(pairs)
    expected = {}
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            name = unquote_plus(name)
            expected[name] = unquote_plus(value)[:256] if name in LOGGED_QUERY_VALUES else REDACTED
    assert _querystring(query) == expected
