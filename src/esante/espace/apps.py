from typing import Any

from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_save


def _emergency_alert(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """An emergency access was just opened: the patient is told once it commits (the access
    app, below this one, knows nothing of patients' accounts)."""
    if not created or instance.mode != "emergency":
        return
    from .notifications import emergency_alert_send

    patient_id, at = instance.patient_id, instance.granted_at
    transaction.on_commit(lambda: emergency_alert_send(patient_id=patient_id, at=at))


class EspaceConfig(AppConfig):
    name = "esante.espace"
    label = "espace"
    verbose_name = "Espace patient"

    def ready(self) -> None:
        from esante.access.models import AccessGrant

        post_save.connect(_emergency_alert, sender=AccessGrant, dispatch_uid="espace-emergency-alert")
