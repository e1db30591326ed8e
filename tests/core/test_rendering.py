import pytest
from hypothesis import given, settings, strategies as st

from cliquet_wsgi.rendering import MAX_JSON_DEPTH, JSONDecodeError, json_dumps, json_loads, status_line


def test_dumps_does_not_escape_slash_nor_unicode():
    assert json_dumps({"url": "http://a.org/b", "name": "é"}) == '{"url":"http://a.org/b","name":"é"}'


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("NaN", id="nan"),
        pytest.param('{"a": Infinity}', id="infinity"),
        pytest.param('"\\ud800"', id="lone-surrogate"),
        pytest.param("\ufeff{}", id="bom"),
        pytest.param(b"\xff{}", id="bad-utf8"),
        pytest.param("{", id="truncated"),
        pytest.param("{} x", id="trailing-garbage"),
        pytest.param("[" * 100_000, id="deep-list"),
        pytest.param('{"a":' * 10_000, id="deep-object"),
        pytest.param("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), id="just-too-deep"),
    ],
)
def test_loads_refuses(text):
    with pytest.raises(JSONDecodeError):
        json_loads(text)


def test_loads_accepts_depth_limit_and_brackets_in_strings():
    assert json_loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    assert json_loads('{"a": "' + "[" * 1000 + '"}') == {"a": "[" * 1000}


def test_status_line():
    assert status_line(404) == "404 Not Found"
    assert status_line(599) == "599 Unknown"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"url": "http://a.org/b", "name": "é", "n": [1, 2.5, True, None]}, id="common"),
        pytest.param({"big": 2**70, "small": -(2**70)}, id="beyond-64-bits-falls-back"),
        pytest.param({"nested": {"a": [{"b": "c"}]}, "empty": {}}, id="nested"),
    ],
)
def test_dumps_bytes_is_the_same_json(value, monkeypatch):
    import json

    from cliquet_wsgi import rendering

    fast = rendering.json_dumps_bytes(value)
    monkeypatch.setattr(rendering, "_orjson", None)
    plain = rendering.json_dumps_bytes(value)
    assert plain == rendering.json_dumps(value).encode("utf-8")
    assert json.loads(fast) == json.loads(plain) == value
    assert b"\\/" not in fast


_json_scalars = (
    st.none() | st.booleans() | st.text()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**18, -(10**19)])
    | st.floats(allow_nan=False, allow_infinity=False)
)
_json_values = st.recursive(
    _json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_json_values)
def test_loads_stored_gives_the_standard_parsers_value(value):
    """orjson (speedups) or not, a stored document decodes to what json.loads gives, types included."""
    import json

    from cliquet_wsgi.rendering import json_loads_stored

    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        decoded = json_loads_stored(text)
        expected = json.loads(text)
        assert decoded == expected
        assert _types(decoded) == _types(expected)


def _types(value):
    if isinstance(value, dict):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_types(item) for item in value]
    return type(value).__name__


def test_loads_stored_without_orjson(monkeypatch):
    from cliquet_wsgi import rendering

    monkeypatch.setattr(rendering, "_orjson", None)
    assert rendering.json_loads_stored('{"big": 123456789012345678901234, "f": 1.5}') == {
        "big": 123456789012345678901234, "f": 1.5,
    }
