from django.urls import path

from . import views

app_name = "access"

urlpatterns = [
    path("", views.my_patients, name="my_patients"),
    path("derniers-dossiers/", views.recent_records, name="recent_records"),
    path("recherche/", views.search, name="search"),
    path("conditions-acces/", views.access_rules, name="access_rules"),
    path("patient/<uuid:public_id>/acces/", views.access_dialog, name="dialog"),
]
