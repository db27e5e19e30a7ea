from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "esante.core"
    label = "core"
    verbose_name = "Plateforme"
