"""A Django project in one file with the cliquet-wsgi stack in front of it.

    python3 examples/django_app.py   # http://localhost:8000/v1/

Django's ``RemoteUserMiddleware`` sees the user authenticated by the auth
middleware (it always sets ``REMOTE_USER``), ``reverse()`` generates ``/v1/...``
URLs, and a ``contact`` resource is served at ``/v1/contacts``.
"""
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="development-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.auth.middleware.RemoteUserMiddleware",
    ],
    AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.RemoteUserBackend"],
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "django-example.sqlite"}},
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
)
django.setup()

from django.http import JsonResponse  # noqa: E402
from django.urls import path, reverse  # noqa: E402


def greeting(request):
    user = request.user.username if request.user.is_authenticated else "anonymous"
    return JsonResponse({"hello": user, "self": request.build_absolute_uri(reverse("greeting"))})


urlpatterns = [path("greeting", greeting, name="greeting")]

from django.core.wsgi import get_wsgi_application  # noqa: E402

from cliquet_wsgi import wrap  # noqa: E402
from cliquet_wsgi.middlewares.resources import Resource  # noqa: E402

application = wrap(
    get_wsgi_application(),
    resources=[Resource("contact")],
    project_name="django-example",
    storage_url=os.environ.get("CLIQUET_STORAGE_URL", "sqlite:///django-example-cliquet.sqlite"),
    permission_url=os.environ.get("CLIQUET_PERMISSION_URL", "sqlite:///django-example-cliquet.sqlite"),
    userid_hmac_secret=os.environ.get("CLIQUET_USERID_HMAC_SECRET", "development-only-secret"),
)

if __name__ == "__main__":
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import waitress

    waitress.serve(application, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
