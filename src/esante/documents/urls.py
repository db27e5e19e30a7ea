from django.urls import path

from . import views

app_name = "documents"

urlpatterns = [
    path("patient/<uuid:public_id>/document/<uuid:document_id>/", views.viewer, name="viewer"),
    path("patient/<uuid:public_id>/document/<uuid:document_id>/contenu", views.content, name="content"),
]
