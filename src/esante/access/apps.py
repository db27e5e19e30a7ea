from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "esante.access"
    label = "access"
    verbose_name = "Accès aux dossiers"
