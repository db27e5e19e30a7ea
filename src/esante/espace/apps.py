from django.apps import AppConfig


class EspaceConfig(AppConfig):
    name = "esante.espace"
    label = "espace"
    verbose_name = "Espace patient"
