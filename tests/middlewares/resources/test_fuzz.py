"""Random request bodies never produce a 5xx (RELIABILITY I1), on every backend."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cliquet_wsgi.middlewares.resources import Resource
from tests.middlewares.resources.conftest import as_user

ALICE = as_user("alice")
SCHEMA = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 20},
                                           "n": {"type": "integer"}}, "required": ["title"]}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
envelopes = st.fixed_dictionaries({}, optional={"data": json_values, "permissions": json_values,
                                                "other": json_values})
patch_ops = st.lists(st.fixed_dictionaries({"op": st.sampled_from(["add", "remove", "replace", "move", "copy",
                                                                    "test", "x"]),
                                            "path": st.sampled_from(["/data/title", "/data/n", "/data", "",
                                                                     "/permissions/read/-", "/x/0", "bad"])},
                                           optional={"value": json_values, "from": st.sampled_from(
                                               ["/data/title", "/data", "/nope"])}), max_size=4)
bodies = st.one_of(
    st.binary(max_size=200),
    envelopes.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    patch_ops.map(lambda v: json.dumps(v).encode()),
)
CONTENT_TYPES = ["application/json", "application/merge-patch+json", "application/json-patch+json",
                 "application/msgpack"]


@pytest.mark.parametrize("model", ["user", "shareable"])
def test_random_bodies_never_5xx(make_app, model):
    app = make_app([Resource("article", schema=SCHEMA, model=model)], article_create_principals="system.Authenticated")
    existing = app.post_json("/articles", {"data": {"title": "x"}}, headers=ALICE, status=201).json["data"]
    targets = [("POST", "/articles"), ("PUT", f"/articles/{existing['id']}"),
               ("PATCH", f"/articles/{existing['id']}")]

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=bodies, target=st.sampled_from(targets), content_type=st.sampled_from(CONTENT_TYPES))
    def check(body, target, content_type):
        method, path = target
        response = app.request(path, method=method, body=body,
                               headers={**ALICE, "Content-Type": content_type}, expect_errors=True)
        assert response.status_int < 500, response.text
        if response.status_int >= 400:
            assert {"code", "errno", "error", "message"} <= set(response.json)
            assert response.status_int in (400, 409, 412, 415) and response.json["errno"] in (107, 122, 114)

    check()
