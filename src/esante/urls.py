from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("esante.core.urls")),
    path("professionnel/", include("esante.accounts.urls")),
    path("edocuments/", include("esante.access.urls")),
    path("edocuments/", include("esante.documents.urls")),
    path("edocuments/", include("esante.dispensing.urls")),
    path("verifier/", include("esante.dispensing.public_urls")),
    path("operateurs/", admin.site.urls),
]
