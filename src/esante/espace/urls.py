from django.urls import path

from . import views

app_name = "espace"

urlpatterns = [
    path("", views.home, name="home"),
    path("activation/", views.activation, name="activation"),
    path("activation/certificat/", views.activation_by_certificate, name="activation_certificate"),
    path("activation/securisation/", views.activation_security, name="activation_security"),
    path("activation/code/", views.activation_code, name="activation_code"),
    path("connexion/", views.login, name="login"),
    path("connexion/code/", views.login_code, name="login_code"),
    path("connexion/certificat/", views.login_certificate, name="login_certificate"),
    path("certificat/retour/", views.certificate_return, name="certificate_return"),
    path("choix/certificat/", views.certificate_bind, name="certificate_bind"),
    path("deconnexion/", views.logout, name="logout"),
    path("dossier/", views.record, name="record"),
    path("dossier/document/<uuid:document_id>/", views.document, name="document"),
    path("dossier/document/<uuid:document_id>/contenu", views.document_content, name="document_content"),
    path(
        "dossier/document/<uuid:document_id>/masquer/",
        views.document_visibility,
        {"hide": True},
        name="document_hide",
    ),
    path(
        "dossier/document/<uuid:document_id>/afficher/",
        views.document_visibility,
        {"hide": False},
        name="document_show",
    ),
    path(
        "dossier/dispensation/<uuid:dispensation_id>/copie-certifiee.pdf",
        views.certified_copy,
        name="certified_copy",
    ),
    path("journal/", views.journal, name="journal"),
    path("journal/entree/<int:sequence>/", views.journal_entry, name="journal_entry"),
    path("journal/entree/<int:sequence>/evenement.json", views.journal_entry_text, name="journal_entry_text"),
    path("journal/export.csv", views.journal_export, {"fmt": "csv"}, name="journal_csv"),
    path("journal/export.pdf", views.journal_export, {"fmt": "pdf"}, name="journal_pdf"),
    path("choix/", views.choices, name="choices"),
    path("choix/bloquer/<int:professional_id>/", views.block, name="block"),
    path("choix/debloquer/<int:block_id>/", views.unblock, name="unblock"),
    path("choix/fermer/", views.opposition, {"opposed": True}, name="oppose"),
    path("choix/rouvrir/", views.opposition, {"opposed": False}, name="reopen"),
    path("choix/notifications/", views.notifications, name="notifications"),
    path("agir-pour/", views.acting_for, name="acting_for"),
]
