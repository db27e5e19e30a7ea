from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "esante.audit"
    label = "audit"
    verbose_name = "Traçabilité"
