from django.urls import path

from . import views
from .outcome import error_response, not_found

app_name = "fhir"


def _unknown(request, rest=""):  # type: ignore[no-untyped-def]
    return error_response(not_found("Aucune ressource à cette adresse."))


urlpatterns = [
    path("R4/auth/authorize", views.authorize, name="authorize"),
    path("R4/auth/token", views.token, name="token"),
    path("R4/auth/revoke", views.revoke, name="revoke"),
    path("R4/", _unknown, name="api-root"),
    path("R4/<path:rest>", _unknown),
]
