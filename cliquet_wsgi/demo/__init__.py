"""The demo: a small "legacy" WSGI application that the middlewares sit in front of.

It knows nothing of the protocol. It has one custom view in the spirit of the
Cliquet tutorial's ``score`` service, which reads the authenticated user and
the storage through :mod:`cliquet_wsgi.api`, an HTML page, and HTML 404s (the
errors middleware turns them into protocol JSON errors). ``paste.ini`` puts the
whole stack in front of it, with the ``article`` and ``bookmark`` resources.

Views (below the ``/v1`` prefix, which the version middleware moves into
``SCRIPT_NAME``):

* ``GET /score``: ``{"user", "articles", "bookmarks", "score"}`` for the
  authenticated user (401 when anonymous): one point per article, two per bookmark.
* ``GET /about``: an HTML page whose links are built from ``SCRIPT_NAME``.
"""
from __future__ import annotations

import html
from typing import Any, Iterable

from cliquet_wsgi import api
from cliquet_wsgi.errors import method_not_allowed, unauthorized
from cliquet_wsgi.rendering import json_response


def count_records(storage: Any, resource_name: str, user_id: str) -> int:
    """Live records of a per-user resource (parent id = user id)."""
    _, total = storage.get_all(resource_name, user_id, limit=1, count=True)
    return total or 0


def score(environ: dict, start_response) -> Iterable[bytes]:
    user_id = api.get_user_id(environ)
    if user_id is None:
        raise unauthorized()
    storage = api.get_storage(environ)
    articles = count_records(storage, "article", user_id) if storage is not None else 0
    bookmarks = count_records(storage, "bookmark", user_id) if storage is not None else 0
    body = {"user": user_id, "articles": articles, "bookmarks": bookmarks, "score": articles + 2 * bookmarks}
    return json_response(start_response, 200, body, [("Vary", "Authorization")])


def about(environ: dict, start_response) -> Iterable[bytes]:
    base = html.escape(environ.get("SCRIPT_NAME", ""))
    page = (
        "<!doctype html><html><head><title>cliquet-wsgi demo</title></head><body>"
        "<h1>cliquet-wsgi demo</h1><ul>"
        f'<li><a href="{base}/">hello</a></li>'
        f'<li><a href="{base}/articles">articles</a></li>'
        f'<li><a href="{base}/bookmarks">bookmarks</a></li>'
        f'<li><a href="{base}/score">score</a></li>'
        "</ul></body></html>"
    ).encode("utf-8")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))])
    return [page]


VIEWS = {"/score": score, "/about": about}


def application(environ: dict, start_response) -> Iterable[bytes]:
    """The demo WSGI app (GET and HEAD only, like many legacy read-only views)."""
    view = VIEWS.get(environ.get("PATH_INFO", ""))
    if view is None:
        page = b"<html><body><h1>Not Found</h1></body></html>"
        start_response("404 Not Found", [("Content-Type", "text/html"), ("Content-Length", str(len(page)))])
        return [page]
    if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
        raise method_not_allowed(["GET", "HEAD"])
    return view(environ, start_response)


def app_factory(global_conf: dict, **local_conf: Any):
    """PasteDeploy ``paste.app_factory`` for the demo (it takes no settings)."""
    if local_conf:
        raise ValueError(f"The demo app takes no settings, got: {', '.join(sorted(local_conf))}")
    return application
