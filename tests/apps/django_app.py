"""A real Django application in one module (see :mod:`tests.apps`).

Importing it configures Django (DEBUG off, this module as ROOT_URLCONF) unless
settings were configured already, e.g. by another test module.
"""
import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests-only-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path, reverse  # noqa: E402
from django.views.decorators.http import require_GET  # noqa: E402


def hello(request):
    return JsonResponse({"hello": "django"})


def whoami(request):
    return JsonResponse({"url": reverse("whoami")})


def boom(request):
    raise RuntimeError("django view exploded /secret/path")


@require_GET
def only_get(request):
    return JsonResponse({"method": request.method})


def remote_user(request):
    return JsonResponse({"remote_user": request.META.get("REMOTE_USER")})


urlpatterns = [
    path("hello", hello, name="hello"),
    path("whoami", whoami, name="whoami"),
    path("boom", boom, name="boom"),
    path("only-get", only_get, name="only-get"),
    path("remote-user", remote_user, name="remote-user"),
]

application = get_wsgi_application()
