from django.urls import path

from . import views

app_name = "dispensing"

_DOC = "patient/<uuid:public_id>/document/<uuid:document_id>/dispensation/"

urlpatterns = [
    path(_DOC, views.dispense, name="dispense"),
    path(f"{_DOC}<uuid:dispensation_id>/retrait/", views.withdraw, name="withdraw"),
    path(f"{_DOC}<uuid:dispensation_id>/copie-certifiee.pdf", views.certified_copy, name="copy"),
    path(
        f"{_DOC}<uuid:dispensation_id>/copie-certifiee/etat/", views.certified_copy_state, name="copy_state"
    ),
]
