"""A minimal real Django application that trusts ``REMOTE_USER``.

Uses ``django.contrib.auth.middleware.RemoteUserMiddleware`` with
``RemoteUserBackend`` (users created on first sight) and answers ``GET
/whoami`` with ``{"username": …, "is_authenticated": …}``. Settings are
applied by :func:`django_settings` (an ``override_settings``) so that this app
can share a process with other Django test apps.
"""
from __future__ import annotations

import json

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-not-secret",
        ALLOWED_HOSTS=["*"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpResponse  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.urls import path  # noqa: E402


def whoami(request):
    body = {"username": request.user.username, "is_authenticated": request.user.is_authenticated}
    return HttpResponse(json.dumps(body), content_type="application/json")


urlpatterns = [path("whoami", whoami)]


def django_settings() -> override_settings:
    """The settings this app needs, as a context manager around app creation and requests."""
    return override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.auth.middleware.RemoteUserMiddleware",
        ],
        SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
        AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.RemoteUserBackend"],
    )


def make_application():
    """A fresh Django WSGI handler (call inside :func:`django_settings`)."""
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", "auth", verbosity=0, interactive=False)
    return get_wsgi_application()
