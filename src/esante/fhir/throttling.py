"""Rate limits of the API's unauthenticated side, per client network, in the database.

Two counters per network (``accounts.throttling.client_network``: an IPv4 address, an IPv6 /64),
each over a fixed window:

- ``token``: token requests (``ESANTE_FHIR_TOKEN_RATE_LIMIT`` per
  ``ESANTE_FHIR_TOKEN_RATE_WINDOW_SECONDS``);
- ``refusal``: requests refused for want of a valid token (``ESANTE_FHIR_REFUSAL_RATE_LIMIT`` per
  ``ESANTE_FHIR_REFUSAL_RATE_WINDOW_SECONDS``). Only refusals count: software with a valid token
  behind the same address is never slowed down by a neighbour's failures.

Within the limit each request is traced as usual. Beyond it the answer is 429 with
``Retry-After``; the first such request of a window is traced (``rate_limited``), the next ones are
only counted; the first request of the network's next window writes, in the same transaction as
the counter's reset, one event saying how many were answered 429 without a trace
(``rate_limited_summary``, ``suppressed``): a flood of bad requests cannot flood the audit trail,
and its size is still on record.
"""

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from esante.accounts.throttling import client_network
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record

from .models import ApiThrottle

LIMITS = {
    ApiThrottle.Scope.TOKEN: ("ESANTE_FHIR_TOKEN_RATE_LIMIT", "ESANTE_FHIR_TOKEN_RATE_WINDOW_SECONDS"),
    ApiThrottle.Scope.REFUSAL: ("ESANTE_FHIR_REFUSAL_RATE_LIMIT", "ESANTE_FHIR_REFUSAL_RATE_WINDOW_SECONDS"),
}


@dataclass(frozen=True)
class Hit:
    """One counted request: whether it is within the limit, whether to trace it (every request
    within it, and the first beyond), and when the window ends."""

    allowed: bool
    trace: bool
    retry_after: int


def hit(scope: ApiThrottle.Scope, address: str | None) -> Hit:
    """Counts one request of ``scope`` from ``address``'s network, in its own transaction."""
    limit_name, window_name = LIMITS[scope]
    limit, window = int(getattr(settings, limit_name)), int(getattr(settings, window_name))
    key = client_network(address) or "unknown"
    now = timezone.now()
    with transaction.atomic():
        # INSERT ... ON CONFLICT DO NOTHING, then lock the row: concurrent requests queue on it.
        ApiThrottle.objects.bulk_create(
            [ApiThrottle(scope=scope, key=key, window_started_at=now)], ignore_conflicts=True
        )
        row = ApiThrottle.objects.select_for_update().get(scope=scope, key=key)
        if now >= row.window_started_at + datetime.timedelta(seconds=window):
            if row.suppressed:
                _trace_suppressed(row, address)
            row.window_started_at, row.count, row.suppressed = now, 0, 0
        row.count += 1
        allowed = row.count <= limit
        trace = allowed or row.count == limit + 1
        if not trace:
            row.suppressed += 1
        row.save(update_fields=["window_started_at", "count", "suppressed"])
    ends = row.window_started_at + datetime.timedelta(seconds=window)
    retry_after = max(1, int((ends - now).total_seconds() + 0.999))
    return Hit(allowed=allowed, trace=trace, retry_after=retry_after)


def _trace_suppressed(row: ApiThrottle, address: str | None) -> None:
    audit_record(
        action=AuditAction.API_TOKEN if row.scope == ApiThrottle.Scope.TOKEN else AuditAction.API_REQUEST,
        outcome=AuditOutcome.REFUSED,
        client_address=address,
        details={
            "reason": "rate_limited_summary",
            "network": row.key,
            "window_started_at": row.window_started_at.isoformat(),
            "suppressed": row.suppressed,
        },
    )


def purge(before: datetime.datetime) -> int:
    """Deletes the counters whose window started before ``before`` (none of them limits anyone)."""
    deleted, _ = ApiThrottle.objects.filter(window_started_at__lt=before).delete()
    return deleted
