"""The querystring language of collection endpoints: filters, sorting, limit, tokens, ``_fields``."""
from __future__ import annotations

import base64
import importlib
import json
import re
import string
import uuid
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cliquet_wsgi import filtering
from cliquet_wsgi.errors import CliquetError
from cliquet_wsgi.middlewares.resources.querystring import (
    ListQuery,
    apply_fields,
    build_pagination_rules,
    next_page_token,
    next_page_url,
    parse_filter_value,
    parse_list_query,
    parse_timestamp_param,
)
from cliquet_wsgi.registry import BACKEND_SCHEMES, build_backend
from cliquet_wsgi.settings import load_settings
from cliquet_wsgi.storage import COMPARISON, Filter, Sort
from cliquet_wsgi.testing import postgresql_database, services_required

SCOPE = "/articles|"
SAFE_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
DEFAULT_SORT = [Sort("last_modified", -1), Sort("id", -1)]


def parse(params, *, known_fields=None, paginate_by=None, max_fetch_size=10000, scope=SCOPE, **kw):
    return parse_list_query(
        params,
        known_fields=known_fields,
        paginate_by=paginate_by,
        max_fetch_size=max_fetch_size,
        token_scope=scope,
        **kw,
    )


def error_body(params, **kw) -> dict:
    with pytest.raises(CliquetError) as info:
        parse(params, **kw)
    return info.value.to_dict()


def qs_error(name, description, message=None):
    """The expected 400/107 body of a single querystring error (§2.3 message rules)."""
    if message is None:
        if name is None:
            message = f"querystring: {description}"
        elif name in description:
            message = description
        else:
            message = f"{name} in querystring: {description}"
    return {
        "code": 400,
        "errno": 107,
        "error": "Invalid parameters",
        "message": message,
        "details": [{"location": "querystring", "name": name, "description": description}],
    }


def encode_token(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


def decode_token(token: str):
    return json.loads(base64.urlsafe_b64decode(token))


# -- values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("true", True, id="true"),
        pytest.param("YES", True, id="yes-upper"),
        pytest.param("On", True, id="on"),
        pytest.param("false", False, id="false"),
        pytest.param("No", False, id="no"),
        pytest.param("OFF", False, id="off"),
        pytest.param("null", None, id="null"),
        pytest.param("42", 42, id="int"),
        pytest.param("-7", -7, id="negative-int"),
        pytest.param("0", 0, id="zero"),
        pytest.param("3.14", 3.14, id="float"),
        pytest.param("-1e3", -1000.0, id="exponent"),
        pytest.param("'abc'", "abc", id="single-quoted"),
        pytest.param('"abc"', "abc", id="double-quoted"),
        pytest.param('"42"', "42", id="quoted-number-stays-string"),
        pytest.param("[1,2]", [1, 2], id="json-list"),
        pytest.param('{"a": [true]}', {"a": [True]}, id="json-object"),
        pytest.param("[1,", "[1,", id="broken-json-stays-string"),
        pytest.param("[NaN]", "[NaN]", id="nan-json-stays-string"),
        pytest.param("[1e999]", "[1e999]", id="overflowing-json-stays-string"),
        pytest.param("1.2.3", "1.2.3", id="version-string"),
        pytest.param("007", "007", id="leading-zero-string"),
        pytest.param("1e999", "1e999", id="infinite-float-string"),
        pytest.param("nan", "nan", id="nan-string"),
        pytest.param("Infinity", "Infinity", id="infinity-string"),
        pytest.param("1_000", "1_000", id="underscore-digits-string"),
        pytest.param(" 1", " 1", id="space-string"),
        pytest.param("٣", "٣", id="non-ascii-digit-string"),
        pytest.param("None", "None", id="python-none-string"),
        pytest.param("__import__('os')", "__import__('os')", id="code-string"),
        pytest.param("", "", id="empty"),
        pytest.param("'", "'", id="lone-quote"),
        pytest.param("'a\"", "'a\"", id="mismatched-quotes"),
    ],
)
def test_parse_filter_value(text, expected):
    value = parse_filter_value(text)
    assert value == expected
    assert type(value) is type(expected)


@given(st.text(max_size=50))
def test_parse_filter_value_never_raises(text):
    value = parse_filter_value(text)
    assert value is None or isinstance(value, (bool, int, float, str, list, dict))


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("1430222877724", 1430222877724, id="int"),
        pytest.param('"1430222877724"', 1430222877724, id="etag-form"),
        pytest.param("0", 0, id="zero"),
        pytest.param("-5", -5, id="negative"),
        pytest.param(str(2**63 - 1), 2**63 - 1, id="int64-max"),
    ],
)
def test_parse_timestamp_param(text, expected):
    assert parse_timestamp_param("_since", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("abc", id="word"),
        pytest.param("", id="empty"),
        pytest.param('""', id="empty-quotes"),
        pytest.param("12.5", id="float"),
        pytest.param("'12'", id="single-quotes"),
        pytest.param('"12', id="unbalanced-quote"),
        pytest.param(str(2**63), id="above-int64"),
        pytest.param("9" * 5000, id="huge"),
        pytest.param(" 12", id="space"),
        pytest.param("12\x00", id="nul"),
        pytest.param("W/\"12\"", id="weak-etag"),
    ],
)
def test_parse_timestamp_param_rejects(text):
    with pytest.raises(CliquetError) as info:
        parse_timestamp_param("_before", text)
    assert info.value.to_dict() == qs_error("_before", "Invalid value for _before")


# -- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, expected",
    [
        pytest.param([("title", "MoFo")], [Filter("title", "MoFo", COMPARISON.EQ)], id="eq"),
        pytest.param([("status", "1")], [Filter("status", 1, COMPARISON.EQ)], id="eq-int"),
        pytest.param([("done", "yes")], [Filter("done", True, COMPARISON.EQ)], id="eq-bool"),
        pytest.param([("min_age", "18")], [Filter("age", 18, COMPARISON.MIN)], id="min"),
        pytest.param([("max_age", "3.5")], [Filter("age", 3.5, COMPARISON.MAX)], id="max"),
        pytest.param([("lt_age", "1")], [Filter("age", 1, COMPARISON.LT)], id="lt"),
        pytest.param([("gt_age", "1")], [Filter("age", 1, COMPARISON.GT)], id="gt"),
        pytest.param([("not_title", "a")], [Filter("title", "a", COMPARISON.NOT)], id="not"),
        pytest.param(
            [("in_status", "1,'2',x")], [Filter("status", [1, "2", "x"], COMPARISON.IN)], id="in"
        ),
        pytest.param(
            [("exclude_status", "1,2")], [Filter("status", [1, 2], COMPARISON.EXCLUDE)], id="exclude"
        ),
        pytest.param([("like_title", "42")], [Filter("title", "42", COMPARISON.LIKE)], id="like-text"),
        pytest.param([("like_title", "mo*fo")], [Filter("title", "mo*fo", COMPARISON.LIKE)], id="like"),
        pytest.param([("has_title", "false")], [Filter("title", False, COMPARISON.HAS)], id="has"),
        pytest.param(
            [("contains_tags", "a,b")], [Filter("tags", ["a", "b"], COMPARISON.CONTAINS)], id="contains"
        ),
        pytest.param(
            [("contains_tags", '[["a"],1]')],
            [Filter("tags", [["a"], 1], COMPARISON.CONTAINS)],
            id="contains-json",
        ),
        pytest.param(
            [("contains_any_tags", "a,1")],
            [Filter("tags", ["a", 1], COMPARISON.CONTAINS_ANY)],
            id="contains-any",
        ),
        pytest.param(
            [("author.name", "bob")], [Filter("author.name", "bob", COMPARISON.EQ)], id="dotted"
        ),
        pytest.param(
            [("min_a.b.c", "1")], [Filter("a.b.c", 1, COMPARISON.MIN)], id="dotted-operator"
        ),
        pytest.param([("id", "123")], [Filter("id", "123", COMPARISON.EQ)], id="id-stays-string"),
        pytest.param([("in_id", "a,b")], [Filter("id", ["a", "b"], COMPARISON.IN)], id="in-id"),
        pytest.param(
            [("in_last_modified", '1,"2"')],
            [Filter("last_modified", [1, 2], COMPARISON.IN)],
            id="in-last-modified",
        ),
        pytest.param(
            [("last_modified", '"12"')], [Filter("last_modified", 12, COMPARISON.EQ)], id="last-modified"
        ),
        pytest.param(
            [("_since", "10"), ("_before", '"20"')],
            [Filter("last_modified", 10, COMPARISON.GT), Filter("last_modified", 20, COMPARISON.LT)],
            id="since-before",
        ),
        pytest.param([("_to", "20")], [Filter("last_modified", 20, COMPARISON.LT)], id="to"),
        pytest.param(
            [("a", "1"), ("a", "2")],
            [Filter("a", 1, COMPARISON.EQ), Filter("a", 2, COMPARISON.EQ)],
            id="repeated-and",
        ),
        pytest.param([("min_", "1")], [Filter("min_", 1, COMPARISON.EQ)], id="bare-prefix-is-field"),
        pytest.param([("flag", "")], [Filter("flag", "", COMPARISON.EQ)], id="empty-value"),
        pytest.param([("deleted", "true")], [Filter("deleted", True, COMPARISON.EQ)], id="deleted"),
        pytest.param([("_unknown", "x\x00"), ("_", "")], [], id="other-underscore-ignored"),
    ],
)
def test_filters(params, expected):
    assert parse(params).filters == expected


def test_filters_known_fields_allow_schema_and_reserved_fields():
    query = parse(
        [("title", "a"), ("id", "b"), ("gt_last_modified", "3"), ("deleted", "true"), ("author.name", "c")],
        known_fields={"title", "author"},
    )
    assert [f.field for f in query.filters] == ["title", "id", "last_modified", "deleted", "author.name"]


@pytest.mark.parametrize(
    "params, known_fields, expected",
    [
        pytest.param(
            [("min_foo", "1")], {"title"}, qs_error("min_foo", "Unknown filter field 'min_foo'"),
            id="unknown-field",
        ),
        pytest.param(
            [("foo.bar", "1")], {"title"}, qs_error("foo.bar", "Unknown filter field 'foo.bar'"),
            id="unknown-dotted-root",
        ),
        pytest.param(
            [("last_modified.x", "1")], None,
            qs_error("last_modified.x", "Unknown filter field 'last_modified.x'"),
            id="dotted-reserved",
        ),
        pytest.param(
            [("a..b", "1")], None, qs_error("a..b", "Invalid filter field 'a..b'"), id="empty-segment"
        ),
        pytest.param([("a.", "1")], None, qs_error("a.", "Invalid filter field 'a.'"), id="trailing-dot"),
        pytest.param(
            [("min_.a", "1")], None, qs_error("min_.a", "Invalid filter field 'min_.a'"),
            id="operator-then-dot",
        ),
        pytest.param(
            [("a'--", "1")], None, qs_error("a'--", "Invalid filter field 'a'--'"), id="sql-quote"
        ),
        pytest.param(
            [("a)", "1")], None, qs_error("a)", "Invalid filter field 'a)'"), id="parenthesis"
        ),
        pytest.param(
            [("a;b", "1")], None, qs_error("a;b", "Invalid filter field 'a;b'"), id="semicolon"
        ),
        pytest.param(
            [("a\x00", "1")], None, qs_error("a\x00", "Invalid filter field 'a\x00'"), id="nul-name"
        ),
        pytest.param([("", "1")], None, qs_error("", "Invalid filter field ''"), id="empty-name"),
        pytest.param(
            [("é", "1")], None, qs_error("é", "Invalid filter field 'é'"), id="non-ascii-name"
        ),
        pytest.param(
            [("a" * 257, "1")], None, qs_error("a" * 257, f"Invalid filter field '{'a' * 257}'"),
            id="long-name",
        ),
        pytest.param([("min_x", "a\x00")], None, qs_error("min_x", "Invalid value for min_x"), id="nul-value"),
        pytest.param(
            [("x", "\ud800")], None, qs_error("x", "Invalid value for x"), id="lone-surrogate-value"
        ),
        pytest.param([("has_x", "1")], None, qs_error("has_x", "Invalid value for has_x"), id="has-non-bool"),
        pytest.param([("in_id", "a,1")], None, qs_error("in_id", "Invalid value for in_id"), id="in-id-int"),
        pytest.param(
            [("exclude_id", "true")], None, qs_error("exclude_id", "Invalid value for exclude_id"),
            id="exclude-id-bool",
        ),
        pytest.param(
            [("in_last_modified", "1,a")], None,
            qs_error("in_last_modified", "Invalid value for in_last_modified"), id="in-last-modified-str",
        ),
        pytest.param(
            [("last_modified", "abc")], None, qs_error("last_modified", "Invalid value for last_modified"),
            id="last-modified-str",
        ),
        pytest.param(
            [("gt_last_modified", "1.5")], None,
            qs_error("gt_last_modified", "Invalid value for gt_last_modified"), id="last-modified-float",
        ),
        pytest.param(
            [("like_last_modified", "1")], None,
            qs_error("like_last_modified", "Invalid value for like_last_modified"), id="like-last-modified",
        ),
        pytest.param(
            [("in_x", "," * 1000)], None, qs_error("in_x", "Invalid value for in_x"), id="too-many-values"
        ),
        pytest.param([("_since", "abc")], None, qs_error("_since", "Invalid value for _since"), id="since"),
        pytest.param([("_before", "")], None, qs_error("_before", "Invalid value for _before"), id="before"),
        pytest.param([("_to", "1.0")], None, qs_error("_to", "Invalid value for _to"), id="to"),
    ],
)
def test_filter_errors(params, known_fields, expected):
    assert error_body(params, known_fields=known_fields) == expected


@pytest.mark.parametrize(
    "params",
    [
        pytest.param([("a", "1")] * 1001, id="many-params"),
        pytest.param([("in_a", "," * 600), ("exclude_b", "," * 600)], id="many-list-values"),
    ],
)
def test_too_many_filter_values(params):
    assert error_body(params) == qs_error(None, "Too many filter values (at most 1000)")


def test_filter_values_limit_is_inclusive():
    assert len(parse([("a", "1")] * 1000).filters) == 1000
    assert parse([("in_a", "," * 999)]).filters[0].value == [""] * 1000


def test_deep_json_value_is_a_string():
    # Not parsed as JSON (no recursion): bench/hostile_input.py measures how fast.
    assert parse([("contains_a", "[" * 100_000)]).filters == [
        Filter("a", ["[" * 100_000], COMPARISON.CONTAINS)
    ]
    assert parse_filter_value("{" * 50_000) == "{" * 50_000


def test_filter_errors_also_apply_to_delete():
    assert error_body([("min_foo", "1")], known_fields=set(), for_delete=True) == qs_error(
        "min_foo", "Unknown filter field 'min_foo'"
    )


@pytest.mark.parametrize(
    "params, include_deleted",
    [
        pytest.param([], False, id="none"),
        pytest.param([("title", "a")], False, id="other-field"),
        pytest.param([("_since", "1")], True, id="since"),
        pytest.param([("_before", "1")], True, id="before"),
        pytest.param([("last_modified", "1")], True, id="eq"),
        pytest.param([("title", "a"), ("in_last_modified", "1,2")], True, id="in"),
    ],
)
def test_include_deleted(params, include_deleted):
    assert parse(params).include_deleted is include_deleted


def test_to_adds_alert_once():
    query = parse([("_to", "5"), ("_to", "6")])
    assert query.alerts == [
        {"code": "soft-eol", "message": "_to is now deprecated, you should use _before instead"}
    ]
    assert parse([("_before", "5")]).alerts == []


# -- sorting, limit, fields ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(None, DEFAULT_SORT, id="default"),
        pytest.param("title", [Sort("title", 1), *DEFAULT_SORT], id="ascending"),
        pytest.param(
            "-title,+age", [Sort("title", -1), Sort("age", 1), *DEFAULT_SORT], id="mixed"
        ),
        pytest.param(
            "last_modified", [Sort("last_modified", 1), Sort("id", 1)], id="last-modified-listed"
        ),
        pytest.param(
            "-id,title",
            [Sort("id", -1), Sort("title", 1), Sort("last_modified", -1)],
            id="id-listed",
        ),
        pytest.param(
            "a.b,-c", [Sort("a.b", 1), Sort("c", -1), *DEFAULT_SORT], id="dotted"
        ),
        pytest.param(
            "title,-title", [Sort("title", 1), *DEFAULT_SORT], id="duplicate-first-wins"
        ),
        pytest.param(
            "--title,ti tle,,a..b,+,'x',title)", DEFAULT_SORT, id="invalid-entries-ignored"
        ),
        pytest.param("x" * 257, DEFAULT_SORT, id="long-name-ignored"),
        pytest.param("", DEFAULT_SORT, id="empty"),
    ],
)
def test_sorting(text, expected):
    params = [] if text is None else [("_sort", text)]
    assert parse(params).sorting == expected


@pytest.mark.parametrize(
    "text, known_fields, expected",
    [
        pytest.param("title,foo", {"title"}, qs_error(None, "Unknown sort field 'foo'"), id="unknown"),
        pytest.param("-a.b", {"title"}, qs_error(None, "Unknown sort field 'a.b'"), id="unknown-root"),
        pytest.param("id.x", None, qs_error(None, "Unknown sort field 'id.x'"), id="dotted-reserved"),
    ],
)
def test_sorting_errors(text, known_fields, expected):
    assert error_body([("_sort", text)], known_fields=known_fields) == expected


def test_sorting_known_fields():
    query = parse([("_sort", "deleted,-title,id")], known_fields={"title"})
    assert query.sorting == [Sort("deleted", 1), Sort("title", -1), Sort("id", 1), Sort("last_modified", -1)]


@pytest.mark.parametrize(
    "limit, paginate_by, max_fetch_size, expected",
    [
        pytest.param(None, None, 10000, 10000, id="neither-capped"),
        pytest.param("5", None, 10000, 5, id="limit"),
        pytest.param(None, 20, 10000, 20, id="paginate-by"),
        pytest.param("5", 20, 10000, 5, id="min-limit"),
        pytest.param("50", 20, 10000, 20, id="min-paginate-by"),
        pytest.param("1000000000", None, 10000, 10000, id="capped"),
        pytest.param("9" * 5000, None, 100, 100, id="huge-capped"),
        pytest.param("007", None, 100, 7, id="leading-zeros"),
    ],
)
def test_limit(limit, paginate_by, max_fetch_size, expected):
    params = [] if limit is None else [("_limit", limit)]
    assert parse(params, paginate_by=paginate_by, max_fetch_size=max_fetch_size).limit == expected


@pytest.mark.parametrize(
    "text", ["abc", "0", "000", "-1", "1.5", "", " 5", "5 ", "+5", "١", "1e3", "0x10"]
)
def test_limit_errors(text):
    assert error_body([("_limit", text)]) == qs_error(None, "_limit should be an integer")


def test_last_occurrence_of_special_params_wins():
    query = parse([("_limit", "abc"), ("_limit", "3"), ("_sort", "x"), ("_sort", "y")])
    assert query.limit == 3
    assert query.sorting[0] == Sort("y", 1)


def test_for_delete_ignores_pagination_params():
    query = parse(
        [("_limit", "abc"), ("_sort", "foo"), ("_token", "garbage"), ("_fields", "a..b"), ("a", "1")],
        known_fields={"a"},
        paginate_by=10,
        for_delete=True,
    )
    assert query == ListQuery(filters=[Filter("a", 1, COMPARISON.EQ)])
    assert query.limit is None and query.pagination_rules == [] and query.fields is None


@pytest.mark.parametrize(
    "text, known_fields, expected",
    [
        pytest.param("title,author.name", None, ["title", "author.name"], id="schemaless"),
        pytest.param("title,,title,", {"title"}, ["title"], id="empty-and-duplicates"),
        pytest.param("", None, [], id="empty"),
        pytest.param("id,last_modified", set(), ["id", "last_modified"], id="reserved"),
    ],
)
def test_fields(text, known_fields, expected):
    assert parse([("_fields", text)], known_fields=known_fields).fields == expected


@pytest.mark.parametrize(
    "text, known_fields, bad",
    [
        pytest.param("title,foo,bar", {"title"}, "foo,bar", id="unknown"),
        pytest.param("a..b", None, "a..b", id="invalid-name"),
        pytest.param("a;drop", None, "a;drop", id="semicolon"),
    ],
)
def test_fields_errors(text, known_fields, bad):
    assert error_body([("_fields", text)], known_fields=known_fields) == qs_error(
        "Invalid _fields parameter",
        f"Fields {bad} do not exist",
        message=f"Invalid _fields parameter in querystring: Fields {bad} do not exist",
    )


RECORD = {
    "id": "a",
    "last_modified": 1,
    "title": "t",
    "author": {"name": "n", "age": 3, "address": {"city": "c", "zip": "z"}},
    "tags": ["x"],
}


@pytest.mark.parametrize(
    "fields, expected",
    [
        pytest.param(None, RECORD, id="none"),
        pytest.param([], {"id": "a", "last_modified": 1}, id="empty"),
        pytest.param(["title"], {"id": "a", "last_modified": 1, "title": "t"}, id="plain"),
        pytest.param(["missing"], {"id": "a", "last_modified": 1}, id="missing"),
        pytest.param(
            ["author.name"], {"id": "a", "last_modified": 1, "author": {"name": "n"}}, id="dotted"
        ),
        pytest.param(
            ["author.address.city", "author.age"],
            {"id": "a", "last_modified": 1, "author": {"age": 3, "address": {"city": "c"}}},
            id="merged-branches",
        ),
        pytest.param(
            ["author.name", "author"], {"id": "a", "last_modified": 1, "author": RECORD["author"]},
            id="whole-after-branch",
        ),
        pytest.param(
            ["author", "author.name"], {"id": "a", "last_modified": 1, "author": RECORD["author"]},
            id="branch-after-whole",
        ),
        pytest.param(
            ["title.x", "tags.0"], {"id": "a", "last_modified": 1, "title": "t", "tags": ["x"]},
            id="non-object-intermediate",
        ),
        pytest.param(["author.missing"], {"id": "a", "last_modified": 1}, id="missing-leaf"),
    ],
)
def test_apply_fields(fields, expected):
    assert apply_fields(RECORD, fields) == expected


def test_apply_fields_keeps_tombstone_flag():
    tombstone = {"id": "a", "last_modified": 2, "deleted": True}
    assert apply_fields(tombstone, ["title"]) == tombstone


# -- tokens ------------------------------------------------------------------------------------


def first_token(params=(), record=None, returned=2, scope=SCOPE):
    query = parse(list(params), scope=scope)
    record = record or {"id": "b", "last_modified": 20, "title": "x", "other": 1}
    return next_page_token(query, record, returned, scope)


def test_token_contents():
    token = first_token([("_sort", "title")])
    content = decode_token(token)
    assert set(content) == {"last_record", "offset", "scope"}
    assert content["last_record"] == {"title": "x", "last_modified": 20, "id": "b"}
    assert content["offset"] == 2
    assert all(c in string.ascii_letters + string.digits + "-_=" for c in token)


def test_token_round_trip():
    params = [("_sort", "-title"), ("status", "1"), ("_limit", "2")]
    token = first_token(params)
    query = parse(params + [("_token", token)])
    assert query.offset == 2
    assert query.pagination_rules == [
        [Filter("title", "x", COMPARISON.LT)],
        [Filter("title", None, COMPARISON.EQ)],
        [Filter("title", [False, True], COMPARISON.IN)],
        [Filter("title", 0, COMPARISON.MIN)],
        [Filter("title", 0, COMPARISON.LT)],
        [Filter("title", "x", COMPARISON.EQ), Filter("last_modified", 20, COMPARISON.LT)],
        [
            Filter("title", "x", COMPARISON.EQ),
            Filter("last_modified", 20, COMPARISON.EQ),
            Filter("id", "b", COMPARISON.LT),
        ],
    ]
    # The next token accumulates the offset.
    next_token = next_page_token(query, {"id": "c", "last_modified": 5, "title": "w"}, 2, SCOPE)
    assert decode_token(next_token)["offset"] == 4


def test_token_default_sort_rules():
    token = first_token()
    query = parse([("_token", token)])
    assert query.pagination_rules == [
        [Filter("last_modified", 20, COMPARISON.LT)],
        [Filter("last_modified", 20, COMPARISON.EQ), Filter("id", "b", COMPARISON.LT)],
    ]


def test_token_filter_order_does_not_matter():
    token = first_token([("a", "1"), ("b", "2")])
    assert parse([("b", "2"), ("a", "1"), ("_token", token)]).offset == 2


def test_token_without_padding_is_accepted():
    token = first_token()
    assert parse([("_token", token.rstrip("="))]).offset == 2


def test_empty_token_is_first_page():
    query = parse([("_token", "")])
    assert query.pagination_rules == [] and query.offset == 0


def _forge(**changes):
    content = decode_token(first_token())
    content.update(changes)
    return encode_token({k: v for k, v in content.items() if v is not ...})


@pytest.mark.parametrize(
    "token_factory, params",
    [
        pytest.param(lambda: "not base64!", [], id="not-base64"),
        pytest.param(lambda: "abc", [], id="bad-padding"),
        pytest.param(lambda: base64.b64encode(b"\xff\xfe").decode(), [], id="not-utf8"),
        pytest.param(lambda: base64.urlsafe_b64encode(b"{").decode(), [], id="not-json"),
        pytest.param(lambda: encode_token([1, 2]), [], id="json-list"),
        pytest.param(lambda: encode_token("x"), [], id="json-string"),
        pytest.param(lambda: encode_token(None), [], id="json-null"),
        pytest.param(lambda: _forge(scope=...), [], id="missing-scope"),
        pytest.param(lambda: _forge(offset=...), [], id="missing-offset"),
        pytest.param(lambda: _forge(last_record=...), [], id="missing-last-record"),
        pytest.param(lambda: _forge(nonce="x"), [], id="extra-key"),
        pytest.param(lambda: _forge(offset="2"), [], id="offset-string"),
        pytest.param(lambda: _forge(offset=True), [], id="offset-bool"),
        pytest.param(lambda: _forge(offset=-1), [], id="offset-negative"),
        pytest.param(lambda: _forge(offset=2.0), [], id="offset-float"),
        pytest.param(lambda: _forge(offset=2**63), [], id="offset-huge"),
        pytest.param(lambda: _forge(scope=1), [], id="scope-int"),
        pytest.param(lambda: _forge(scope="0" * 32), [], id="scope-forged"),
        pytest.param(lambda: _forge(last_record=[]), [], id="last-record-list"),
        pytest.param(lambda: _forge(last_record={"id": "b"}), [], id="no-last-modified"),
        pytest.param(lambda: _forge(last_record={"last_modified": 1}), [], id="no-id"),
        pytest.param(
            lambda: _forge(last_record={"last_modified": "1", "id": "b"}), [], id="last-modified-str"
        ),
        pytest.param(
            lambda: _forge(last_record={"last_modified": True, "id": "b"}), [], id="last-modified-bool"
        ),
        pytest.param(
            lambda: _forge(last_record={"last_modified": 2**63, "id": "b"}), [], id="last-modified-huge"
        ),
        pytest.param(lambda: _forge(last_record={"last_modified": 1, "id": 2}), [], id="id-int"),
        pytest.param(
            lambda: _forge(last_record={"last_modified": 1, "id": "b", "title": "x"}), [],
            id="extra-sort-field",
        ),
        pytest.param(lambda: first_token(scope="/users|"), [], id="other-collection"),
        pytest.param(lambda: first_token(scope="/articles|bob"), [], id="other-partition"),
        pytest.param(lambda: first_token([("a", "1")]), [("a", "2")], id="changed-filter"),
        pytest.param(lambda: first_token([("a", "1")]), [], id="dropped-filter"),
        pytest.param(lambda: first_token(), [("a", "1")], id="added-filter"),
        pytest.param(lambda: first_token([("_since", "1")]), [("_since", "2")], id="changed-since"),
        pytest.param(lambda: first_token([("_sort", "title")]), [], id="changed-sort"),
        pytest.param(
            lambda: first_token([("_sort", "title")]), [("_sort", "-title")], id="changed-direction"
        ),
        pytest.param(lambda: "A" * 70000, [], id="too-long"),
        pytest.param(lambda: first_token() + "%3D", [], id="url-encoded-twice"),
    ],
)
def test_invalid_tokens(token_factory, params):
    assert error_body(params + [("_token", token_factory())]) == qs_error(None, "_token has invalid content")


_token_texts = st.one_of(
    st.text(max_size=100),
    st.binary(max_size=100).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
        max_leaves=10,
    ).map(encode_token),
    st.fixed_dictionaries(
        {"last_record": st.dictionaries(st.sampled_from(["id", "last_modified", "x"]), st.integers() | st.text()),
         "offset": st.integers(), "scope": st.text(max_size=40)}
    ).map(encode_token),
)


@settings(max_examples=300, deadline=None)
@given(_token_texts)
def test_random_tokens_are_400(text):
    if not text:
        return  # an empty token means the first page
    assert error_body([("_token", text)]) == qs_error(None, "_token has invalid content")


def test_next_page_url():
    params = [("title", "a b"), ("_limit", "5"), ("_token", "old"), ("in_x", "1,2"), ("é", "ü&=")]
    url = next_page_url("https://api.example.com/v1/articles", params, 5, "ab_-c==")
    assert url == (
        "https://api.example.com/v1/articles?title=a+b&in_x=1%2C2&%C3%A9=%C3%BC%26%3D"
        "&_limit=5&_token=ab_-c%3D%3D"
    )
    parts = urlsplit(url)
    assert parse_qsl(parts.query) == [
        ("title", "a b"), ("in_x", "1,2"), ("é", "ü&="), ("_limit", "5"), ("_token", "ab_-c=="),
    ]


def test_next_page_url_keeps_undecodable_bytes():
    # A value decoded with surrogateescape (PEP 3333 bytes) is re-encoded as sent.
    url = next_page_url("http://h/v1/a", [("x", b"\xff".decode("utf-8", "surrogateescape"))], 1, "t")
    assert url == "http://h/v1/a?x=%FF&_limit=1&_token=t"


# -- robustness (RELIABILITY I10, S7) -------------------------------------------------------------

_names = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"(min_|max_|lt_|gt_|not_|in_|exclude_|like_|has_|contains_|contains_any_|_)?[a-z.]{0,8}",
                  fullmatch=True),
    st.sampled_from(["_since", "_before", "_to", "_sort", "_limit", "_token", "_fields", "in_id",
                     "in_last_modified", "last_modified", "has_x", "a" * 300, "a..b", "x\x00"]),
)
_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1", "-1", "0", "1e999", "true", "null", "[1,", "[1,2]", "{}", '"3"', "a,b",
                     "9" * 30, "\x00", "\ud800", "x,-y,+z", "title", "-last_modified"]),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(_names, _values), max_size=6),
    st.sampled_from([None, {"title", "x", "a"}]),
    st.booleans(),
)
def test_random_querystrings_only_raise_400(params, known_fields, for_delete):
    try:
        query = parse(params, known_fields=known_fields, paginate_by=50, max_fetch_size=100,
                      for_delete=for_delete)
    except CliquetError as exc:
        body = exc.to_dict()
        assert (body["code"], body["errno"], body["error"]) == (400, 107, "Invalid parameters")
        assert body["details"][0]["location"] == "querystring"
        return
    allowed = None if known_fields is None else known_fields | {"id", "last_modified", "deleted"}
    for flt in query.filters:
        assert isinstance(flt.operator, COMPARISON)
        assert len(flt.field) <= 256 and SAFE_NAME.fullmatch(flt.field)
        assert allowed is None or flt.field.split(".")[0] in allowed
    assert all(SAFE_NAME.fullmatch(sort.field) for sort in query.sorting)
    assert query.sorting[-1].field in ("id", "last_modified")
    assert (query.limit is None) if for_delete else (1 <= query.limit <= 50)


# -- pagination against the reference semantics ----------------------------------------------------

_scalar_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, -1.5]),
                           st.text(alphabet="abA", max_size=2))
# Arrays and objects too: a walk must resume after any value (canonical JSON order).
_field_values = st.one_of(
    _scalar_values, _scalar_values,
    st.lists(_scalar_values, max_size=2),
    st.dictionaries(st.sampled_from(["k", "a"]), _scalar_values, max_size=2),
)


@st.composite
def _records(draw):
    count = draw(st.integers(0, 25))
    ids = draw(st.lists(st.text(alphabet="xyz0", min_size=1, max_size=3), min_size=count, max_size=count,
                        unique=True))
    records = []
    for record_id in ids:
        record = {"id": record_id, "last_modified": draw(st.integers(1, 6))}  # collisions on purpose
        if draw(st.integers(0, 4)) == 0:
            record["deleted"] = True  # a tombstone: every other sort field is missing
            records.append(record)
            continue
        for name in ("a", "b"):
            if draw(st.booleans()):
                record[name] = draw(_field_values)
        if draw(st.booleans()):
            record["n"] = {"x": draw(_field_values)} if draw(st.booleans()) else draw(_field_values)
        records.append(record)
    return records


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _records(),
    st.lists(st.sampled_from(["a", "-a", "b", "-b", "n", "-n", "n.x", "-n.x", "id", "-id", "last_modified",
                              "-last_modified", "deleted", "-deleted"]), max_size=3),
    st.integers(1, 4),
    st.sampled_from([[], [("has_a", "true")], [("_since", "2")], [("not_b", "true")], [("in_a", "1,x,null")]]),
)
def test_walking_pages_returns_every_record_once_in_order(records, sort, limit, filters):
    params = filters + ([("_sort", ",".join(sort))] if sort else []) + [("_limit", str(limit))]
    query = parse(params)
    expected = filtering.apply(records, query.filters, query.sorting)
    seen = []
    token = None
    for _ in range(len(records) + 2):
        page_query = parse(params + ([("_token", token)] if token else []))
        page = filtering.apply(records, page_query.filters, page_query.sorting,
                               page_query.pagination_rules, page_query.limit)
        assert page_query.offset == len(seen)
        seen.extend(page)
        if len(page) < page_query.limit:
            break
        token = next_page_token(page_query, page[-1], len(page), SCOPE)
    else:
        pytest.fail("pagination did not end")
    assert [r["id"] for r in seen] == [r["id"] for r in expected]


def test_pagination_rules_missing_and_null_values():
    # Ascending: null < bool < number < string < object < missing (storage.Sort).
    records = [
        {"id": "1", "last_modified": 1},
        {"id": "2", "last_modified": 2, "a": None},
        {"id": "3", "last_modified": 3, "a": True},
        {"id": "4", "last_modified": 4, "a": 2},
        {"id": "5", "last_modified": 5, "a": "s"},
        {"id": "6", "last_modified": 6, "a": {"o": 1}},
    ]
    sorting = [Sort("a", 1), Sort("last_modified", -1), Sort("id", -1)]
    after_null = build_pagination_rules(sorting, {"a": None, "last_modified": 2, "id": "2"})
    assert [r["id"] for r in filtering.apply(records, (), sorting, after_null)] == ["3", "4", "5", "6", "1"]
    after_true = build_pagination_rules(sorting, {"a": True, "last_modified": 3, "id": "3"})
    assert after_true[0] == [Filter("a", [None, False, True], COMPARISON.EXCLUDE)]
    assert [r["id"] for r in filtering.apply(records, (), sorting, after_true)] == ["4", "5", "6", "1"]
    descending = [Sort("a", -1), Sort("last_modified", -1), Sort("id", -1)]
    after_missing = build_pagination_rules(descending, {"last_modified": 1, "id": "1"})
    assert [r["id"] for r in filtering.apply(records, (), descending, after_missing)] == [
        "6", "5", "4", "3", "2"
    ]
    after_string = build_pagination_rules(descending, {"a": "s", "last_modified": 5, "id": "5"})
    assert [r["id"] for r in filtering.apply(records, (), descending, after_string)] == ["4", "3", "2"]


# -- pagination through the real storage backends ----------------------------------------------------

_PG_DATABASE = "cliquet_querystring_tests"


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgresql"])
def filled_storage(request, tmp_path_factory):
    """A storage holding mixed-type records, forced timestamp collisions and tombstones."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('qs')}/walk.sqlite"
    else:
        # A database of our own: other suites flush the shared one while we walk.
        url = postgresql_database(_PG_DATABASE)
    try:
        importlib.import_module(BACKEND_SCHEMES[url.split("://", 1)[0]])
    except ImportError as exc:
        if services_required():
            raise
        pytest.skip(f"{request.param} backend not available yet: {exc}")
    storage = build_backend("storage", load_settings({"storage_url": url}, environ={}))
    storage.initialize_schema()
    parent = f"walk-{uuid.uuid4().hex}"
    values = [None, True, False, 0, 2, -1.5, 2.0, "", "a", "B", "é", "a b", "10",
              [], [1, "a"], [1], {}, {"k": 1}, {"k": [2]}, {"a": None}]
    for index in range(40):
        record = {"id": f"r{index:02d}", "last_modified": 1000 + index // 3}  # collisions
        if index % 7:
            record["a"] = values[index % len(values)]
        if index % 3:
            record["b"] = values[(index * 5) % len(values)]
        if index % 4 == 0:
            record["n"] = {"x": values[index % 5]}
        storage.create("article", parent, record)
    for index in range(0, 40, 9):
        storage.delete("article", parent, f"r{index:02d}")
    try:
        yield storage, parent
    finally:
        storage.purge_deleted("article", parent)
        storage.delete_all("article", parent, with_deleted=False)
        storage.close()


@pytest.mark.parametrize("sort", ["", "a", "-a", "b,-a", "-b,a", "n.x,-b", "-n.x", "n", "-n,a", "-deleted,a", "id"])
@pytest.mark.parametrize("extra", [[], [("_since", "1")], [("has_b", "true")], [("not_a", "2")]])
def test_walking_pages_through_storage(filled_storage, sort, extra):
    storage, parent = filled_storage
    params = extra + ([("_sort", sort)] if sort else []) + [("_limit", "3")]
    query = parse(params)
    everything, _ = storage.get_all("article", parent, query.filters, query.sorting,
                                    include_deleted=query.include_deleted)
    seen, token = [], None
    for _ in range(len(everything) + 2):
        page_query = parse(params + ([("_token", token)] if token else []))
        page, _ = storage.get_all("article", parent, page_query.filters, page_query.sorting,
                                  page_query.pagination_rules, page_query.limit,
                                  include_deleted=page_query.include_deleted)
        seen.extend(page)
        if len(page) < page_query.limit:
            break
        token = next_page_token(page_query, page[-1], len(page), SCOPE)
    else:
        pytest.fail("pagination did not end")
    assert everything  # the dataset matches every filter combination above
    assert [r["id"] for r in seen] == [r["id"] for r in everything]
    # The backend's order is the reference order (storage.Sort), so the walk is too.
    reference = filtering.apply(everything, (), query.sorting)
    assert [r["id"] for r in seen] == [r["id"] for r in reference]
