"""A real Flask application (see :mod:`tests.apps`)."""
from flask import Flask, jsonify, request, url_for

app = Flask(__name__)


@app.get("/hello")
def hello():
    return jsonify(hello="flask")


@app.get("/whoami")
def whoami():
    return jsonify(url=url_for("whoami"))


@app.get("/boom")
def boom():
    raise RuntimeError("flask view exploded /secret/path")


@app.route("/only-get", methods=["GET"])
def only_get():
    return jsonify(method=request.method)


@app.get("/remote-user")
def remote_user():
    return jsonify(remote_user=request.environ.get("REMOTE_USER"))


#: The WSGI callable.
application = app
