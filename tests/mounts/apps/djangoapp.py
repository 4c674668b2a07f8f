"""A Django ASGI application the ASGI tests mount (settings, URLs and views in one file)."""

from __future__ import annotations

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path, reverse

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
)
django.setup()


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Hello from Django", content_type="text/plain")


def where(request: HttpRequest, rest: str) -> JsonResponse:
    return JsonResponse(
        {
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META.get("SCRIPT_NAME"),
            "reverse": reverse("hello"),
            "method": request.method,
            "body": request.body.decode(),
            "get": request.GET.dict(),
        }
    )


urlpatterns = [path("", hello, name="hello"), path("where/<path:rest>", where)]

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
