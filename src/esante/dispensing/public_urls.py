"""The public verification of certified copies, mounted at ``/verifier/`` (no login)."""

from django.urls import path

from . import views

app_name = "verification"

urlpatterns = [
    path("", views.verify_form, name="form"),
    path("<str:code>/", views.verify, name="verify"),
]
