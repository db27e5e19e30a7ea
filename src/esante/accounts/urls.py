from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("activation/", views.terms, name="activation"),
    path("activation/cgu.pdf", views.terms_download, name="terms_pdf"),
    path("activation/etape/<int:step>/", views.activation_step, name="activation_step"),
    path("activation/confirmation/", views.activation_done, name="activation_done"),
    path("connexion/", views.login, name="login"),
    path("connexion/code/", views.login_code, name="login_code"),
    path("connexion/certificat/", views.login_certificate, name="login_certificate"),
    path("certificat/tls/", views.certificate_origin, name="certificate_origin"),
    path("certificat/retour/", views.certificate_return, name="certificate_return"),
    path("deconnexion/", views.logout, name="logout"),
    path("mot-de-passe-oublie/", views.password_forgotten, name="password_forgotten"),
    path("mot-de-passe/", views.password_change, name="password_change"),
]
