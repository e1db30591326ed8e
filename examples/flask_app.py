"""A Flask app with the cliquet-wsgi stack in front of it.

    pip install -e '.[test]'      # Flask is a test/example dependency
    python3 examples/flask_app.py # http://localhost:8000/v1/

Flask's own views keep working below ``/v1`` (``url_for`` generates ``/v1/...``
because the version middleware moves the prefix into ``SCRIPT_NAME``), and a
``note`` resource is served at ``/v1/notes`` with Basic auth.
"""
import os

from flask import Flask, jsonify, request, url_for

from cliquet_wsgi import api, wrap
from cliquet_wsgi.middlewares.resources import Resource

flask_app = Flask(__name__)


@flask_app.route("/greeting")
def greeting():
    return jsonify({"hello": api.get_user_id(request.environ) or "anonymous",
                    "self": url_for("greeting", _external=True)})


application = wrap(
    flask_app,
    resources=[Resource("note")],
    project_name="flask-example",
    storage_url=os.environ.get("CLIQUET_STORAGE_URL", "sqlite:///flask-example.sqlite"),
    permission_url=os.environ.get("CLIQUET_PERMISSION_URL", "sqlite:///flask-example.sqlite"),
    userid_hmac_secret=os.environ.get("CLIQUET_USERID_HMAC_SECRET", "development-only-secret"),
)

if __name__ == "__main__":
    import waitress

    waitress.serve(application, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
