from django.apps import AppConfig


class TlogConfig(AppConfig):
    name = "esante.tlog"
    label = "tlog"
    verbose_name = "journal public (transparence)"
