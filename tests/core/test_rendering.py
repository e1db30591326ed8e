import pytest

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
