from django.urls import path

from . import views

app_name = "documents"

urlpatterns = [
    # The record page: it is the documents that it shows (the access dialog leads to it).
    path("patient/<uuid:public_id>/", views.record, name="record"),
    path("patient/<uuid:public_id>/document/<uuid:document_id>/", views.viewer, name="viewer"),
    path("patient/<uuid:public_id>/document/<uuid:document_id>/contenu", views.content, name="content"),
]
