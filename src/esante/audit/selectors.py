"""Reads of the audit trail for the people it is about."""

from typing import Any

from django.db.models import F, OrderBy, QuerySet

from .models import AuditEvent

# Newest first, the events still waiting for the chainer (batched chaining: no sequence yet)
# before all others; on PostgreSQL, the order of a backward scan of a (..., sequence) index.
NEWEST_FIRST: OrderBy = F("sequence").desc(nulls_first=True)


def events_of_actor(user: Any) -> QuerySet[AuditEvent]:
    """The events of one actor's own actions, newest first (served by the actor/sequence index)."""
    return AuditEvent.objects.filter(actor=user).select_related("patient").order_by(NEWEST_FIRST)
