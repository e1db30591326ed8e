"""The reference filter/sort module on its own (the storage contract suite exercises it through memory)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cliquet_wsgi import filtering
from cliquet_wsgi.storage import COMPARISON, Filter, Sort


@pytest.mark.parametrize(
    ("record", "field", "expected"),
    [
        pytest.param({"a": {"b": 1}}, "a.b", 1, id="dotted"),
        pytest.param({"a": {"b": None}}, "a.b", None, id="null-is-a-value"),
        pytest.param({"a": [{"b": 1}]}, "a.b", filtering.MISSING, id="through-array"),
        pytest.param({"a": "text"}, "a.b", filtering.MISSING, id="through-string"),
        pytest.param({"a.b": 1}, "a.b", filtering.MISSING, id="dots-always-split"),
        pytest.param({}, "a", filtering.MISSING, id="missing"),
    ],
)
def test_resolve(record, field, expected):
    assert filtering.resolve(record, field) == expected


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        pytest.param(1, 1.0, True, id="int-float"),
        pytest.param(1, True, False, id="int-bool"),
        pytest.param(0, False, False, id="zero-false"),
        pytest.param("1", 1, False, id="str-int"),
        pytest.param([1, [True]], [1.0, [True]], True, id="nested-list"),
        pytest.param([1], [True], False, id="list-int-bool"),
        pytest.param({"a": 1}, {"a": True}, False, id="dict-int-bool"),
        pytest.param({"a": 1, "b": 2}, {"b": 2, "a": 1}, True, id="dict-order"),
        pytest.param(None, None, True, id="null"),
    ],
)
def test_json_equal(a, b, equal):
    assert filtering.json_equal(a, b) is equal


@pytest.mark.parametrize(
    ("value", "needle", "expected"),
    [
        pytest.param("Hello World", "o w", True, id="substring-case-insensitive"),
        pytest.param("Hello", "h*o", True, id="wildcard"),
        pytest.param("Hello", "h*x", False, id="wildcard-miss"),
        pytest.param("100%", "0%", True, id="percent-literal"),
        pytest.param("abc", "a%", False, id="percent-not-wildcard"),
        pytest.param("a_c", "_", True, id="underscore-literal"),
        pytest.param("abc", "_", False, id="underscore-not-wildcard"),
        pytest.param("a.c", ".", True, id="regex-chars-literal"),
        pytest.param("abc", ".", False, id="dot-not-any"),
        pytest.param(12, "1", False, id="numbers-never-like"),
        pytest.param("x12", 12, True, id="number-needle-as-text"),
        pytest.param("ÉTÉ", "été", True, id="unicode-case"),
    ],
)
def test_like(value, needle, expected):
    assert filtering.like(value, needle) is expected


def test_match_and_rules():
    record = {"id": "r", "n": 2, "tags": ["a"]}
    assert filtering.match(record, [Filter("n", 1, COMPARISON.GT), Filter("tags", ["a"], COMPARISON.CONTAINS)])
    assert not filtering.match(record, [Filter("n", 1, COMPARISON.GT), Filter("n", 2, COMPARISON.LT)])
    assert filtering.match_rules(record, [])
    assert filtering.match_rules(record, [[Filter("n", 5, COMPARISON.EQ)], [Filter("id", "r", COMPARISON.EQ)]])
    assert not filtering.match_rules(record, [[Filter("n", 5, COMPARISON.EQ)]])


def test_apply_default_sort_ties_and_limit():
    records = [{"id": "b", "last_modified": 1}, {"id": "a", "last_modified": 1}, {"id": "c", "last_modified": 3}]
    assert [r["id"] for r in filtering.apply(records)] == ["c", "a", "b"]
    assert [r["id"] for r in filtering.apply(records, sorting=[Sort("id", -1)], limit=2)] == ["c", "b"]


def test_sort_descending_puts_missing_first():
    records = [{"id": "1", "v": 1}, {"id": "2"}, {"id": "3", "v": "x"}]
    assert [r["id"] for r in filtering.apply(records, sorting=[Sort("v", -1)])] == ["2", "3", "1"]


# Values that exercise every rank, ties (1 vs 1.0, equal strings) and missing fields.
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, -0.5, 2.5]),
    st.sampled_from(["", "a", "B", "b", "é", "aa"]),
)
_VALUES = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=2), st.dictionaries(st.sampled_from(["x", "y"]), _SCALARS,
                                                                               max_size=2))
_RECORDS = st.lists(
    st.fixed_dictionaries(
        {"id": st.sampled_from(["a", "b", "c", "d"])},
        optional={"last_modified": st.integers(0, 3), "v": _VALUES, "o": st.fixed_dictionaries({}, optional={"w": _VALUES})},
    ),
    max_size=8,
)
_SORTS = st.lists(
    st.builds(Sort, st.sampled_from(["v", "o.w", "last_modified", "id", "absent"]), st.sampled_from([1, -1])),
    max_size=3,
)


# Every record has every field: the single-sort fast path is taken whenever types allow it.
_FULL_RECORDS = st.lists(
    st.fixed_dictionaries({"id": st.sampled_from(["a", "b", "c"]), "last_modified": st.integers(0, 3),
                           "v": st.one_of(_SCALARS, st.lists(_SCALARS, max_size=1)),
                           "o": st.fixed_dictionaries({"w": st.one_of(st.integers(0, 2), st.floats(0, 2))})}),
    max_size=8,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(records=st.one_of(_RECORDS, _FULL_RECORDS), sorting=_SORTS)
def test_sort_records_orders_exactly_like_the_reference_comparison(records, sorting):
    expected = sorted(records, key=filtering.sort_key(sorting))
    fast = list(records)
    filtering.sort_records(fast, sorting)
    # Identity, not equality: ties must keep the input order in both (stable sorts).
    assert [id(r) for r in fast] == [id(r) for r in expected]


@pytest.mark.parametrize(
    ("sorting", "expected"),
    [
        pytest.param([], ["n2", "s", "arr", "n1", "n1f", "gone", "t", "nul", "obj"], id="default-newest-first-then-id"),
        pytest.param([Sort("v", 1)], ["nul", "t", "n1", "n1f", "n2", "s", "arr", "obj", "gone"],
                     id="ascending-rank-then-value-missing-last"),
        pytest.param([Sort("v", -1)], ["gone", "obj", "arr", "s", "n2", "n1", "n1f", "t", "nul"],
                     id="descending-missing-first-ties-by-id"),
        pytest.param([Sort("o.w", -1), Sort("last_modified", 1)],
                     ["obj", "nul", "gone", "t", "arr", "n1", "n1f", "n2", "s"], id="dotted-then-second-field"),
    ],
)
def test_sort_records_fast_path_cases(sorting, expected):
    records = [
        {"id": "n1f", "v": 1.0, "last_modified": 1}, {"id": "s", "v": "z", "last_modified": 2, "o": {"w": "a"}},
        {"id": "gone", "last_modified": 0}, {"id": "n1", "v": 1, "last_modified": 1},
        {"id": "n2", "v": 2, "last_modified": 3, "o": {"w": "b"}}, {"id": "t", "v": True, "last_modified": 0},
        {"id": "nul", "v": None, "last_modified": -1}, {"id": "arr", "v": [1], "last_modified": 1, "o": "w"},
        {"id": "obj", "v": {"a": 1}, "last_modified": -2},
    ]
    filtering.sort_records(records, sorting or filtering.DEFAULT_SORT)
    assert [r["id"] for r in records] == expected
    # The reference comparison agrees.
    assert [r["id"] for r in sorted(records, key=filtering.sort_key(sorting or filtering.DEFAULT_SORT))] == expected


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize(
    "column",
    [
        pytest.param(["x", True, False, "a"], id="str-and-bool"),
        pytest.param([None, 1, None, 0.5], id="null-and-numbers"),
        pytest.param([2, 1.0, 1, -0.0, 0], id="int-float-ties"),
        pytest.param(["b", "a", "é", "B"], id="strings"),
        pytest.param([True, False, True], id="bools"),
        pytest.param([[2], [1, 0], {"a": 1}, [1]], id="arrays-objects"),
    ],
)
def test_sort_records_single_column_types(column, direction):
    records = [{"id": "k", "v": value} for value in column]  # equal ids: ties keep the input order
    expected = sorted(records, key=filtering.sort_key([Sort("v", direction)]))
    filtering.sort_records(records, [Sort("v", direction)])
    assert [id(r) for r in records] == [id(r) for r in expected]


@pytest.mark.parametrize(
    ("pattern", "object_id", "matches"),
    [
        pytest.param("/articles/*", "/articles/a1", True, id="one-segment"),
        pytest.param("/articles/*", "/articles/a1/comments/c1", False, id="star-stops-at-slash"),
        pytest.param("/articles/*", "/articles/", True, id="empty-segment"),
        pytest.param("/a?/*", "/ab/x", False, id="question-mark-literal"),
        pytest.param("/a.c", "/abc", False, id="dot-literal"),
        pytest.param("/*/x", "/a/x", True, id="middle"),
    ],
)
def test_object_id_glob(pattern, object_id, matches):
    assert (filtering.object_id_glob(pattern).fullmatch(object_id) is not None) is matches


@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize(
    "values",
    [
        pytest.param([5, -1, 2.5, 0, 10**20, -3.25], id="distinct-numbers"),
        pytest.param([1, 1.0, 2, 0], id="equal-int-and-float-tie"),
        pytest.param([0, -0.0, 1], id="zero-and-negative-zero-tie"),
        pytest.param([1, True, 0], id="a-boolean-is-not-a-number"),
    ],
)
def test_sort_records_on_a_numeric_first_field_like_the_reference(values, direction):
    records = [{"id": f"r{9 - index}", "last_modified": value} for index, value in enumerate(values)]
    sorting = [Sort("last_modified", direction)]
    expected = sorted(records, key=filtering.sort_key(sorting))
    fast = list(records)
    filtering.sort_records(fast, sorting)
    assert [id(r) for r in fast] == [id(r) for r in expected]
