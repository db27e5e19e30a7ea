from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("esante.core.urls")),
    path("operateurs/", admin.site.urls),
]
