"""The public log, mounted at ``/journal/`` (no login, read-only)."""

from django.urls import path, re_path

from . import views

app_name = "tlog"

INDEX = r"(?P<index>(?:x[0-9]{3}/){0,5}[0-9]{3})"
WIDTH = r"(?:\.p/(?P<width>[0-9]{1,3}))?"

urlpatterns = [
    path("checkpoint", views.checkpoint, name="checkpoint"),
    path("key", views.verifier_key, name="key"),
    re_path(rf"^tile/entries/{INDEX}{WIDTH}$", views.entries, name="entries"),
    re_path(rf"^tile/(?P<level>[0-9]{{1,2}})/{INDEX}{WIDTH}$", views.tile, name="tile"),
    path("proof/inclusion", views.inclusion, name="inclusion"),
    path("proof/consistency", views.consistency, name="consistency"),
]
