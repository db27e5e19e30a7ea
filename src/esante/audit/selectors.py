"""Reads of the audit trail for the people it is about."""

from typing import Any

from django.db.models import QuerySet

from .models import AuditEvent


def events_of_actor(user: Any) -> QuerySet[AuditEvent]:
    """The events of one actor's own actions, newest first (served by the actor/sequence index)."""
    return AuditEvent.objects.filter(actor=user).select_related("patient").order_by("-sequence")
