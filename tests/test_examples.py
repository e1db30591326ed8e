"""The runnable examples: each framework keeps its views and URL generation below /v1."""
import importlib.util
import os
import sys

import pytest
import webtest

from tests.secrets import basic_header

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALICE = {"Authorization": basic_header("alice", "alice-pa55word-9f2")}


def load_example(name, tmp_path, monkeypatch):
    """Import examples/<name>.py with its databases in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLIQUET_STORAGE_URL", f"sqlite:///{tmp_path}/example.sqlite")
    monkeypatch.setenv("CLIQUET_PERMISSION_URL", f"sqlite:///{tmp_path}/example.sqlite")
    spec = importlib.util.spec_from_file_location(f"examples_{name}", os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name, resource, greeting_url",
    [
        pytest.param("flask_app", "notes", "http://localhost:8000/v1/greeting", id="flask"),
        pytest.param("bottle_app", "tasks", "/v1/greeting", id="bottle"),
    ],
)
def test_example(name, resource, greeting_url, tmp_path, monkeypatch):
    module = load_example(name, tmp_path, monkeypatch)
    app = webtest.TestApp(module.application, extra_environ={"HTTP_HOST": "localhost:8000"})
    greeting = app.get("/v1/greeting", headers=ALICE).json
    assert greeting == {"hello": greeting["hello"], "self": greeting_url}
    assert greeting["hello"].startswith("basicauth:")
    created = app.post_json(f"/v1/{resource}", {"data": {"title": "write the docs"}}, headers=ALICE,
                            status=201).json["data"]
    assert app.get(f"/v1/{resource}", headers=ALICE).json == {"data": [created]}
    assert app.get("/greeting", status=307).headers["Location"] == "http://localhost:8000/v1/greeting"


def test_django_example_in_its_own_process(tmp_path):
    """Django is configured once per process: the example runs as a server, as a user would run it."""
    import json
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, PORT=str(port), CLIQUET_STORAGE_URL=f"sqlite:///{tmp_path}/example.sqlite",
               CLIQUET_PERMISSION_URL=f"sqlite:///{tmp_path}/example.sqlite")
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", "django_app.py")], cwd=tmp_path,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def call(path, method="GET", body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=ALICE,
                                         data=None if body is None else json.dumps(body).encode())
        if body is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, greeting = call("/v1/greeting")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(process.stderr.read().decode(errors="replace")[-2000:])
                time.sleep(0.3)
        assert status == 200
        # RemoteUserMiddleware saw the user authenticated by the auth middleware.
        assert greeting["hello"].startswith("basicauth:")
        assert greeting["self"] == f"http://127.0.0.1:{port}/v1/greeting"
        status, created = call("/v1/contacts", "POST", {"data": {"name": "Ada"}})
        assert status == 201 and created["data"]["name"] == "Ada"
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()
