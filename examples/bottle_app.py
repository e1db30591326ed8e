"""A Bottle app with the cliquet-wsgi stack in front of it.

    python3 examples/bottle_app.py   # http://localhost:8000/v1/

``/v1/greeting`` is Bottle's; ``/v1/tasks`` is a ``task`` resource.
"""
import os

import bottle

from cliquet_wsgi import api, wrap
from cliquet_wsgi.middlewares.resources import Resource

bottle_app = bottle.Bottle()


@bottle_app.get("/greeting", name="greeting")
def greeting():
    return {"hello": api.get_user_id(bottle.request.environ) or "anonymous",
            "self": bottle_app.get_url("greeting")}


application = wrap(
    bottle_app,
    resources=[Resource("task", schema={"type": "object", "properties": {"title": {"type": "string"},
                                                                          "done": {"type": "boolean"}},
                                        "required": ["title"], "additionalProperties": False})],
    project_name="bottle-example",
    storage_url=os.environ.get("CLIQUET_STORAGE_URL", "sqlite:///bottle-example.sqlite"),
    permission_url=os.environ.get("CLIQUET_PERMISSION_URL", "sqlite:///bottle-example.sqlite"),
    userid_hmac_secret=os.environ.get("CLIQUET_USERID_HMAC_SECRET", "development-only-secret"),
)

if __name__ == "__main__":
    import waitress

    waitress.serve(application, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
