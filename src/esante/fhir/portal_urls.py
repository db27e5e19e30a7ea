from django.urls import path

from . import views

urlpatterns = [
    path("logiciels/", views.authorised_software, name="authorised_software"),
    path("logiciels/<int:pk>/retirer/", views.authorised_software_revoke, name="authorised_software_revoke"),
]
