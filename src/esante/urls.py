from django.contrib import admin
from django.urls import include, path

from esante.fhir.api import api as fhir_api

urlpatterns = [
    path("", include("esante.core.urls")),
    path("professionnel/", include("esante.accounts.urls")),
    path("patient/", include("esante.espace.urls")),
    path("edocuments/", include("esante.access.urls")),
    path("edocuments/", include("esante.documents.urls")),
    path("edocuments/", include("esante.dispensing.urls")),
    # The API's routes (django-ninja, namespace "fhir-api", outside "fhir" so that ninja can
    # reverse its own names), then the authorization server and the API's catch-all 404.
    path("fhir/R4/", fhir_api.urls),
    path("fhir/", include("esante.fhir.urls")),
    path("edocuments/", include(("esante.fhir.portal_urls", "fhir"), namespace="fhir-portal")),
    path("verifier/", include("esante.dispensing.public_urls")),
    # The public transparency log of the audit trail (C2SP checkpoint, tiles; proofs).
    path("journal/", include("esante.tlog.urls")),
    # The header's language switch posts to set_language (/i18n/setlang/).
    path("i18n/", include("django.conf.urls.i18n")),
    path("operateurs/", admin.site.urls),
]
